import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { exploreLevelsInProcess } from '../../../src/explore/distributed/in-process.ts';
import { replay } from '../../../src/explore/explore.ts';
import { StatefulSearch } from '../../../src/explore/stateful.ts';
import { appendToSchedule, formatSchedule, type ScheduleEntry } from '../../../src/machine/schedule.ts';
import { findScenario } from '../../../src/scenarios/catalogue.ts';
import { resolveParams } from '../../../src/scenarios/scenario.ts';
import { machineFactory } from '../../../src/scenarios/scenario-module.ts';
import { copiedReader } from '../fixtures/copied-reader.ts';

// The distributed search's level-by-level engine (src/explore/distributed/level-search.ts), with its owners in one
// process: it must store exactly the states the stateful search stores, and report shortest counterexamples that do
// not depend on how the ranges are shared out.

const MAX_STEPS = 10_000;

function scenario(protocol: string) {
  const s = findScenario('stack-migration');
  const params = resolveParams(s, { protocol, rounds: 3 });
  return { builds: () => machineFactory(s, params), params };
}

function levels(protocol: string, owners: number) {
  const o = { maxSteps: MAX_STEPS, tlbEvents: 0, cacheEvents: 'held' as const, check: undefined, deadWords: true };
  return exploreLevelsInProcess(
    scenario(protocol).builds,
    { ...o, ranges: 4 },
    { budget: 1e7, stopAtViolation: false },
    owners,
  );
}

function single(protocol: string) {
  return new StatefulSearch(scenario(protocol).builds(), {
    maxSteps: MAX_STEPS,
    tlbEvents: 0,
    check: undefined,
    invariant: undefined,
    maxStates: 1e7,
    samples: 0,
  }).run();
}

describe('the level-by-level search', () => {
  for (const [protocol, owners] of [
    ['ipi-switcheroo', 3],
    ['no-wait', 2],
  ] as const) {
    it(`stores the states, transitions and final states the stateful search stores (${protocol})`, () => {
      const reference = single(protocol);
      expect(reference.complete).toBe(true);
      {
        const r = levels(protocol, owners);
        expect(r.complete).toBe(true);
        expect([r.states, r.transitions, r.finalStates]).toEqual([
          reference.states,
          reference.transitions,
          reference.finalStates,
        ]);
        expect(r.violations.map((v) => v.kind).sort()).toEqual(reference.violations.map((v) => v.kind).sort());
      }
    }, 60_000);
  }

  it('reports each kind of violation by a shortest path, the same one for any number of owners', () => {
    const reference = single('naive');
    const runs = [1, 2, 3].map((owners) => levels('naive', owners));
    const texts = runs.map((r) => r.violations.map((v) => `${v.kind} ${formatSchedule(v.schedule)}`));
    expect(texts[1]).toEqual(texts[0]);
    expect(texts[2]).toEqual(texts[0]);
    expect(runs[0]!.violations.length).toBeGreaterThan(0);
    const build = scenario('naive').builds();
    for (const v of runs[0]!.violations) {
      const dfs = reference.violations.find((w) => w.kind === v.kind)!;
      expect(v.schedule.length).toBeLessThanOrEqual(dfs.schedule.length);
      expect(replay(build, formatSchedule(v.schedule)).kind).toBe(v.kind);
    }
  }, 60_000);

  it('runs again with copied-away frames in its states when an owner reads one, as the stateful search does', () => {
    const o = { maxSteps: MAX_STEPS, tlbEvents: 0, cacheEvents: 'held' as const, check: undefined, deadWords: true };
    const r = exploreLevelsInProcess(
      () => copiedReader,
      { ...o, ranges: 4 },
      { budget: 1e6, stopAtViolation: false },
      2,
    );
    const reference = new StatefulSearch(copiedReader, {
      maxSteps: MAX_STEPS,
      tlbEvents: 0,
      check: undefined,
      invariant: undefined,
      maxStates: 1e6,
      samples: 0,
    }).run();
    expect([reference.deadWords, reference.copiedLive]).toEqual([true, true]);
    expect([r.complete, r.deadWords, r.copiedLive]).toEqual([true, true, true]);
    expect(r.deadWordsOff).toMatch(/a word of a frame a migration copied away was read \(physical 0x[0-9a-f]+\)/);
    expect([r.states, r.transitions, r.finalStates]).toEqual([
      reference.states,
      reference.transitions,
      reference.finalStates,
    ]);
  });
});

describe('appendToSchedule', () => {
  const entry = fc.oneof(
    fc.integer({ min: 0, max: 3 }),
    fc.record({ cpu: fc.integer({ min: 0, max: 3 }), deliver: fc.constantFrom(0xfb, 0xec, 'nmi' as const) }),
  ) as fc.Arbitrary<ScheduleEntry>;
  it('gives the text formatSchedule gives the longer schedule', () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 30 }), entry, (entries, e) => {
        const text = formatSchedule(entries);
        expect(appendToSchedule(text, entries[entries.length - 1], e)).toBe(formatSchedule([...entries, e]));
      }),
    );
  });
});
