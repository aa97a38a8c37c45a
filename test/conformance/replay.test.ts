import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Case, Observation } from '../../conformance/case.ts';
import { compareObservations, describeDifference } from '../../conformance/compare.ts';
import { departureListing, LISTING_PATH, replay } from '../../conformance/departure-listing.ts';
import { KNOWN_DEPARTURES } from '../../conformance/departures.ts';
import { FAMILIES, generateCases } from '../../conformance/generate.ts';
import { qemuVersion, recordWithQemu, TOOLS } from '../../conformance/oracle/qemu.ts';
import { readRecording } from '../../conformance/recording.ts';

// The differential conformance suite: every case recorded from QEMU (conformance/recordings/qemu.jsonl, written by
// `npm run oracle`) is replayed on the model and compared field by field. A difference that no known departure of
// QEMU from the SDM explains (conformance/departures.ts) is a model bug.

const recording = readRecording();
const replays = replay(recording.cases);

describe('the QEMU recordings', () => {
  it('hold at least 2,000 cases across every family, with unique ids', () => {
    expect(recording.cases.length).toBeGreaterThanOrEqual(2000);
    const families = new Set(recording.cases.map((r) => r.case.family));
    expect([...families].sort()).toEqual([...FAMILIES].sort());
    expect(new Set(recording.cases.map((r) => r.case.id)).size).toBe(recording.cases.length);
  });

  it('are current: they hold exactly the cases the generator makes (run `npm run oracle` after changing it)', () => {
    const generated = generateCases();
    expect(recording.cases.map((r) => r.case.id)).toEqual(generated.map((c) => c.id));
    expect(recording.cases.map((r) => r.case)).toEqual(JSON.parse(JSON.stringify(generated)));
  });

  it('name the QEMU version and command line they were made with', () => {
    expect(recording.header.oracle).toMatch(/^QEMU emulator version \d+\.\d+/);
    expect(recording.header.command).toMatch(/^qemu-system-x86_64 .*-cpu qemu64/);
  });
});

describe('replaying every recorded case on the model', () => {
  for (const family of FAMILIES) {
    it(`${family}: the model agrees with QEMU on every field, or a known departure explains the difference`, () => {
      const bugs = replays
        .filter((r) => r.c.family === family)
        .flatMap((r) => r.comparison.differences.map((d) => describeDifference(r.c, d)));
      expect(bugs.slice(0, 20), `${bugs.length} unexplained differences`).toEqual([]);
    });
  }

  it('every known departure explains at least one recorded difference (none is dead)', () => {
    const used = new Set(replays.flatMap((r) => r.comparison.explained.flatMap((e) => e.departure.split('+'))));
    expect(KNOWN_DEPARTURES.map((d) => d.name).filter((name) => !used.has(name))).toEqual([]);
  });

  it('docs/conformance-departures.md lists every case each departure explains, as the recording gives', () => {
    const listing = departureListing(replays);
    expect(readFileSync(LISTING_PATH, 'utf8'), 'run `npm run oracle` to regenerate it').toBe(listing);
  });

  it('docs/deviations.md lists every known departure with its SDM section', () => {
    const doc = readFileSync(new URL('../../docs/deviations.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');
    for (const d of KNOWN_DEPARTURES) {
      expect(doc, d.name).toContain(d.name);
      expect(doc, d.name).toContain(d.sdm);
    }
  });
});

describe('the comparison', () => {
  const find = (pattern: RegExp) => replays.find((r) => pattern.test(r.c.id) && r.comparison.explained.length > 0);
  const mutate = (o: Observation, f: (copy: { steps: Record<string, unknown>[] }) => void): Observation => {
    const copy = JSON.parse(JSON.stringify(o));
    f(copy);
    return copy;
  };

  it('reports a wrong error code that no departure explains', () => {
    const r = replays.find((x) => x.c.id === 'paging/4k/pte-supervisor/read/cpl3/wp1-nxe1')!;
    expect(r.comparison.differences).toEqual([]);
    const broken = mutate(r.model, (o) => {
      (o.steps[0]!.delivered as { errorCode: number }).errorCode = 4; // P lost: a not-present fault
    });
    expect(compareObservations(r.c, r.oracle, broken).differences).toEqual([
      { path: 'steps[0].delivered.errorCode', oracle: 5, model: 4 },
    ]);
  });

  it('explains a departure only in the exact form it takes (a reserved-bit fault must still have RSVD)', () => {
    const r = find(/^reserved\/4k\/pte-rsvd-bit46\/read\/cpl0$/)!;
    expect(r.comparison.explained.map((e) => e.departure)).toEqual(['qemu-rsvd-without-p']);
    const broken = mutate(r.model, (o) => {
      (o.steps[0]!.delivered as { errorCode: number }).errorCode = 1; // P without RSVD: not what the SDM says
    });
    expect(compareObservations(r.c, r.oracle, broken).differences).toHaveLength(1);
  });

  it('an error code off in both its gate index and its EXT bit needs both departures, not either alone', () => {
    const r = replays.find((x) => x.comparison.explained.some((e) => e.departure.includes('+')))!;
    expect(r.c.id).toMatch(/^delivery\/(ipi0x80|nmi)\//);
    const only = (name: string) => KNOWN_DEPARTURES.filter((d) => d.name === name);
    for (const name of ['qemu-idt-error-code-scaled', 'qemu-no-ext-during-delivery']) {
      expect(compareObservations(r.c, r.oracle, r.model, only(name)).differences).toHaveLength(1);
    }
  });

  it('reports a changed A/D bit, a read value, and a missing event', () => {
    const r = replays.find((x) => x.c.id === 'accessed-dirty/4k/a-----/d0/write/cpl0')!;
    expect(r.comparison.differences).toEqual([]);
    const noDirty = {
      ...r.model,
      entries: r.model.entries!.map((e, i, all) => (i === all.length - 1 ? e.replace(/67$/, '27') : e)),
    };
    expect(compareObservations(r.c, r.oracle, noDirty).differences.map((d) => d.path)).toEqual(['entries']);
    const read = replays.find((x) => x.c.id === 'paging/2m/all/read/cpl3/wp1-nxe1')!;
    const wrongValue = mutate(read.model, (o) => {
      o.steps[0]!.value = '0000000000000000';
    });
    expect(compareObservations(read.c, read.oracle, wrongValue).differences.map((d) => d.path)).toEqual([
      'steps[0].value',
    ]);
    const pf = replays.find((x) => x.c.id === 'delivery/pf/cpl0/gate-default/current-ok')!;
    const noEvent: Observation = { steps: [{ event: false }] };
    expect(compareObservations(pf.c, pf.oracle, noEvent).differences.map((d) => d.path)).toEqual([
      'steps[0].event',
      'steps[0].delivered',
      'steps[0].attempts',
    ]);
  });
});

// The oracle itself needs QEMU and binutils, which `npm test` does not: where they are installed, and QEMU is the
// version the recording names (another version may differ, and `npm run oracle` then records what it does), a
// sample of cases is recorded again and must match the committed recording byte for byte.
const hasTools = TOOLS.every((tool) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).error === undefined);
const sameQemu = hasTools && qemuVersion() === recording.header.oracle;

describe('the oracle', () => {
  it.skipIf(!sameQemu)('records a sample of cases exactly as the committed recording has them', () => {
    const sample: Case[] = recording.cases.filter((_r, i) => i % 97 === 0).map((r) => r.case);
    const observed = recordWithQemu(sample);
    const expected = recording.cases.filter((_r, i) => i % 97 === 0).map((r) => r.observed);
    expect(JSON.stringify(observed)).toBe(JSON.stringify(expected));
  });
});
