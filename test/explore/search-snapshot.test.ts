import { describe, expect, it } from 'vitest';
import { compactPairs, emptySegments } from '../../src/explore/compact-set.ts';
import { explore } from '../../src/explore/explore.ts';
import type { ExploreOptions, ExploreResult } from '../../src/explore/options.ts';
import {
  byteViews,
  decodeSnapshotHeader,
  encodeSnapshot,
  type SearchSnapshot,
} from '../../src/explore/search-snapshot.ts';
import type { VisitedTables } from '../../src/explore/visited-set.ts';
import { findScenario } from '../../src/scenarios/catalogue.ts';
import { resolveParams } from '../../src/scenarios/scenario.ts';
import { machineFactory } from '../../src/scenarios/scenario-module.ts';
import { fingerprintsOf, pairTables, snapshotBytes, tablesOf } from './fixtures/snapshot-bytes.ts';

// A stateful search saved when it stops (budget or time limit) and resumed later must end where one search run to
// its end ends: the same states, transitions, final states and violations (schedules included).

function build(params: Record<string, unknown>) {
  const s = findScenario('stack-migration');
  return machineFactory(s, resolveParams(s, { rounds: 3, ...params }));
}

const EXHAUSTIVE: ExploreOptions = { strategy: 'exhaustive', search: 'stateful' };

/** What a finished search reports, for comparing two. */
function outcome(r: ExploreResult) {
  return {
    complete: r.complete,
    states: r.states,
    transitions: r.transitions,
    depth: r.depth,
    finalStates: r.executions,
    violations: r.violations.map((v) => `${v.kind}: ${v.schedule}`),
  };
}

/** The search run `chunk` states at a time, each run resuming the last one's snapshot, until complete. */
function inChunks(params: Record<string, unknown>, options: ExploreOptions, chunk: number) {
  let resume: SearchSnapshot | undefined;
  let runs = 0;
  for (;;) {
    runs++;
    const budget = (resume?.visitedSize ?? 0) + chunk;
    const r = explore(build(params), { ...options, budget, saveSearch: true, ...(resume ? { resume } : {}) });
    if (r.complete) return { result: r, runs };
    expect(r.stoppedBy).toBe('budget');
    expect(r.snapshot, 'a search stopped by its budget returns its snapshot').toBeDefined();
    resume = r.snapshot!;
  }
}

describe('a stateful search saved and resumed', () => {
  it('a clean search resumed 500 states at a time ends as one search does (the switcheroo)', () => {
    const params = { protocol: 'ipi-switcheroo' };
    const whole = explore(build(params), EXHAUSTIVE);
    expect(whole.complete).toBe(true);
    const { result, runs } = inChunks(params, EXHAUSTIVE, 500);
    expect(runs).toBeGreaterThan(5);
    expect(outcome(result)).toEqual(outcome(whole));
  });

  it('with TLB events and violations, resumed at every 300 states: the same states and shortest counterexamples', () => {
    const params = { protocol: 'naive' };
    const options: ExploreOptions = { ...EXHAUSTIVE, tlbEvents: 1 };
    const whole = explore(build(params), options);
    expect(whole.violations.length).toBeGreaterThan(0);
    const { result, runs } = inChunks(params, options, 300);
    expect(runs).toBeGreaterThan(3);
    expect(outcome(result)).toEqual(outcome(whole));
  });

  it('a search saved with every word in its states (after it read a dead word) resumes so, unless told otherwise', () => {
    const params = { protocol: 'ipi-switcheroo' };
    const every: ExploreOptions = { ...EXHAUSTIVE, deadWords: false };
    const whole = explore(build(params), every);
    expect([whole.complete, whole.deadWords]).toEqual([true, false]);
    const cutAt = (options: ExploreOptions) =>
      explore(build(params), { ...options, budget: 2_000, saveSearch: true }).snapshot!;
    // What a search that read a dead word and ran again without them saves: a resume takes that setting (it was
    // refused as another search's, so a long search stopped after its restart could not be taken up).
    const rest = explore(build(params), { ...EXHAUSTIVE, resume: cutAt(every) });
    expect(rest.deadWords).toBe(false);
    expect(outcome(rest)).toEqual(outcome(whole));
    expect(() => explore(build(params), { ...EXHAUSTIVE, deadWords: true, resume: cutAt(every) })).toThrow(
      /does not match this one: it has deadWords false, copiedLive false, tlbEvents 0, reduction none, stutterSteps true; this search true, false, 0/,
    );
    expect(() => explore(build(params), { strategy: 'pct', deadWords: false })).toThrow(
      /explore deadWords is for the stateful exhaustive search, not strategy 'pct'/,
    );
    expect(() => explore(build(params), { ...EXHAUSTIVE, deadWords: 'no' as never })).toThrow(
      /explore deadWords 'no' must be true or false/,
    );
  });

  it('a search saved after it read a frame copied away resumes with those frames in its states', () => {
    // The remote reader reads the old stack page before the flush reaches it (dead-words.test.ts): the search ran
    // again with copied-away frames' words in its states, and a resume of what it saved goes on so.
    const params = { protocol: 'ipi-switcheroo', remote: 'reader', cpus: 3, rounds: 3, chunk: 4096 };
    const cut = explore(build(params), { ...EXHAUSTIVE, budget: 20_000, saveSearch: true });
    expect([cut.deadWords, cut.copiedLive]).toEqual([true, true]);
    const bytes = snapshotBytes(cut.snapshot!, {});
    const header = decodeSnapshotHeader(bytes, 'the file');
    const saved = header.complete(tablesOf(bytes, header));
    expect(saved.copiedLive).toBe(true);
    const rest = explore(build(params), { ...EXHAUSTIVE, budget: 25_000, resume: saved });
    expect([rest.deadWords, rest.copiedLive, rest.deadWordsOff]).toEqual([true, true, undefined]);
    expect(rest.states).toBeGreaterThan(cut.states!);
  }, 60_000);

  it('writes and reads its visited table in views of at most 1 GiB, so a table past 4 GiB can be saved', () => {
    // Node refuses one byte view of more than 4 GiB: a 4.7 GB table (290 million states) stopped a save.
    const table = Int32Array.from({ length: 10 }, (_, i) => 0x01020304 * i);
    const part = table.subarray(1, 9); // 32 bytes, not at the buffer's start
    const views = byteViews(part, 12);
    expect(views.map((v) => v.length)).toEqual([12, 12, 8]);
    const joined = new Uint8Array(32);
    let at = 0;
    for (const v of views) {
      joined.set(v, at);
      at += v.length;
    }
    expect(joined).toEqual(new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
    expect(byteViews(new Int32Array(2 ** 20)).map((v) => v.length)).toEqual([2 ** 22]);
  });

  it('goes through its byte form unchanged (what --save-search writes and --resume reads)', () => {
    const params = { protocol: 'ipi-switcheroo' };
    const cut = explore(build(params), { ...EXHAUSTIVE, budget: 1_000, saveSearch: true });
    const bytes = snapshotBytes(cut.snapshot!, { scenario: 'stack-migration' });
    const header = decodeSnapshotHeader(bytes, 'the file');
    expect(header.about).toEqual({ scenario: 'stack-migration' });
    const tables = tablesOf(bytes, header);
    expect(bytes.length).toBe(header.tableOffset + tables.reduce((n, t) => n + t.byteLength, 0));
    const back = header.complete(tables);
    expect({ ...back, visited: undefined }).toEqual({ ...cut.snapshot!, visited: undefined });
    expect(back.visited).toEqual(cut.snapshot!.visited);
    const resumed = explore(build(params), { ...EXHAUSTIVE, resume: back });
    expect(outcome(resumed)).toEqual(outcome(explore(build(params), EXHAUSTIVE)));
  });

  it('a search that ran to its end returns no snapshot', () => {
    const r = explore(build({ protocol: 'ipi-switcheroo' }), { ...EXHAUSTIVE, saveSearch: true });
    expect(r.complete).toBe(true);
    expect(r.snapshot).toBeUndefined();
  });
});

describe('bad input to saving and resuming a search', () => {
  const cut = () =>
    explore(build({ protocol: 'ipi-switcheroo' }), { ...EXHAUSTIVE, budget: 1_000, saveSearch: true }).snapshot!;

  it('a snapshot taken up by another scenario configuration is refused, naming the depth where they part', () => {
    expect(() => explore(build({ protocol: 'naive' }), { ...EXHAUSTIVE, resume: cut() })).toThrow(
      /the saved search does not match this one: the state at depth \d+ differs/,
    );
  });

  it('a snapshot taken up with other options is refused, naming them', () => {
    expect(() =>
      explore(build({ protocol: 'ipi-switcheroo' }), { ...EXHAUSTIVE, tlbEvents: 1, resume: cut() }),
    ).toThrow(
      /does not match this one: it has deadWords true, copiedLive false, tlbEvents 0, reduction none, stutterSteps true; this search true, false, 1, tlb-events, true/,
    );
    // Saved before stutter steps were offered alone (the header has no stutterSteps): its stack indexes other
    // choice lists than this search makes.
    const { stutterSteps: _, ...before } = cut();
    expect(before).not.toHaveProperty('stutterSteps');
    expect(() => explore(build({ protocol: 'ipi-switcheroo' }), { ...EXHAUSTIVE, resume: before })).toThrow(
      /does not match this one: it has .*reduction none, stutterSteps false; this search true, false, 0, none, true/,
    );
  });

  it.each([
    [1, 1, 'kept', undefined],
    [2, 64, 'kept', undefined],
    [1, 1, 'turned into 6-byte ones', 0],
    [2, 64, 'turned into 6-byte ones', 0],
  ] as const)(
    'a search saved with 8-byte slots (layout %i: %i tables, %s) resumes, and ends as one search does',
    (layout, n, _, compactAt) => {
      // The csd cell's saves of 2026-12-07 are such files (layout 1 the first, 3.1 GB; layout 2 the later, to 16 GB),
      // large enough to be read into 6-byte slots (COMPACT_AT states; here every size, to try that on a small one).
      const params = { protocol: 'ipi-switcheroo', rounds: 8 };
      const cut = explore(build(params), { ...EXHAUSTIVE, budget: 3_000, saveSearch: true }).snapshot!;
      const tables = pairTables(fingerprintsOf(cut.visited), n);
      const [, header] = encodeSnapshot(cut, {});
      const json = JSON.parse(new TextDecoder().decode(header)) as Record<string, unknown>;
      delete json.visitedSegments;
      const slots = tables.map((t) => t.length / 2);
      const oldHeader = new TextEncoder().encode(
        JSON.stringify({ ...json, ...(layout === 1 ? { visitedSlots: slots[0] } : { visitedSegments: slots }) }),
      );
      const bytes = new Uint8Array([
        ...new TextEncoder().encode(`x86slice-search ${layout}\n${oldHeader.length}\n`),
        ...oldHeader,
        ...tables.flatMap((t) => [...new Uint8Array(t.buffer)]),
      ]);
      const decoded = decodeSnapshotHeader(bytes, 'the file');
      expect([decoded.visitedSegments, decoded.slotBytes]).toEqual([slots, 8]);
      const visited = tablesOf(bytes, decoded, compactAt);
      expect(visited[0] instanceof Uint16Array).toBe(compactAt === 0);
      expect(new Set(fingerprintsOf(visited).map(String))).toEqual(new Set(fingerprintsOf(cut.visited).map(String)));
      const resumed = explore(build(params), { ...EXHAUSTIVE, resume: decoded.complete(visited) });
      expect(outcome(resumed)).toEqual(outcome(explore(build(params), EXHAUSTIVE)));
      if (compactAt === 0) {
        // A table holding a fingerprint twice is no saved search's.
        const t = tables.find((x) => x.some((w) => w !== 0))!;
        const slot = (full: boolean) =>
          [...Array(t.length / 2).keys()].find((k) => ((t[2 * k]! | t[2 * k + 1]!) !== 0) === full)!;
        t.set(t.subarray(2 * slot(true), 2 * slot(true) + 2), 2 * slot(false));
        const twice = new Uint8Array([
          ...bytes.subarray(0, decoded.tableOffset),
          ...tables.flatMap((t) => [...new Uint8Array(t.buffer)]),
        ]);
        expect(() => tablesOf(twice, decoded, 0)).toThrow(
          /the bytes is not a search saved by x86slice: .* holds .* twice/,
        );
      }
    },
  );

  it('a search whose visited set is compact (layout 3: 6-byte slots) goes through its byte form, and resumes', () => {
    // A set turns compact at COMPACT_AT states; this one is made so from a small search's tables.
    const params = { protocol: 'ipi-switcheroo', rounds: 8 };
    const cut = explore(build(params), { ...EXHAUSTIVE, budget: 3_000, saveSearch: true }).snapshot!;
    const compact = emptySegments();
    for (const t of cut.visited as readonly Int32Array[]) compactPairs(t, compact);
    const bytes = snapshotBytes({ ...cut, visited: compact }, {});
    expect(new TextDecoder().decode(bytes.subarray(0, 18))).toBe('x86slice-search 3\n');
    const decoded = decodeSnapshotHeader(bytes, 'the file');
    expect(decoded.slotBytes).toBe(6);
    const visited = tablesOf(bytes, decoded);
    expect(visited).toEqual(compact);
    const resumed = explore(build(params), { ...EXHAUSTIVE, resume: decoded.complete(visited) });
    expect(outcome(resumed)).toEqual(outcome(explore(build(params), EXHAUSTIVE)));
  });

  it('a snapshot resumes once: the search takes its visited table over', () => {
    const snapshot = cut();
    explore(build({ protocol: 'ipi-switcheroo' }), { ...EXHAUSTIVE, budget: 1_500, resume: snapshot });
    expect(() => explore(build({ protocol: 'ipi-switcheroo' }), { ...EXHAUSTIVE, resume: snapshot })).toThrow(
      /explore resume: this snapshot was taken up already/,
    );
    // It lets go of the table as well, which the search frees once it has grown past it.
    expect(snapshot.visited).toHaveLength(0);
    // A frozen snapshot cannot let go of it, and resumes all the same.
    const frozen = Object.freeze(cut());
    const whole = explore(build({ protocol: 'ipi-switcheroo' }), { ...EXHAUSTIVE, resume: frozen });
    expect(whole.complete).toBe(true);
    expect(frozen.visited.length).toBeGreaterThan(0);
  });

  it('saveSearch and resume are for the stateful exhaustive search, and resume takes a snapshot only', () => {
    const m = build({ protocol: 'ipi-switcheroo' });
    expect(() => explore(m, { strategy: 'pct', saveSearch: true })).toThrow(
      /explore saveSearch is for the stateful exhaustive search, not strategy 'pct'/,
    );
    expect(() => explore(m, { strategy: 'exhaustive', search: 'stateless', resume: cut() })).toThrow(
      /explore resume is for the stateful exhaustive search, not strategy 'exhaustive' \(search 'stateless'\)/,
    );
    expect(() => explore(m, { ...EXHAUSTIVE, resume: { visited: [] } as unknown as SearchSnapshot })).toThrow(
      /explore resume .* must be a snapshot a saved search returned/,
    );
  });

  it('bytes that are not a saved search are refused, saying why', () => {
    const bytes = new TextEncoder().encode('hello\n');
    expect(() => decodeSnapshotHeader(bytes, "'notes.txt'")).toThrow(
      /'notes.txt' is not a search saved by x86slice: it does not start with 'x86slice-search 2' or 'x86slice-search 3'/,
    );
    const header = '{"visitedSlots":1024}';
    const truncated = new TextEncoder().encode(`x86slice-search 1\n${header.length}\n${header}`);
    expect(() => decodeSnapshotHeader(truncated, "'cut.search'")).toThrow(
      /'cut.search' is not a search saved by x86slice: its header has no fingerprints/,
    );
  });
});

describe('a stateful search stopped by its time limit', () => {
  it('resumed until complete, ends as one search does (each run cut by a 100 ms limit)', () => {
    // The 40-round switcheroo: about a second of search (107,542 states), so that the limit cuts it several times on
    // any machine. (8 rounds were a second once; since the stutter steps, 17,366 states, once done inside 100 ms.)
    const params = { protocol: 'ipi-switcheroo', rounds: 40 };
    const whole = explore(build(params), EXHAUSTIVE);
    let resume: SearchSnapshot | undefined;
    let runs = 0;
    for (;;) {
      runs++;
      const r = explore(build(params), {
        ...EXHAUSTIVE,
        timeLimit: 100,
        saveSearch: true,
        ...(resume ? { resume } : {}),
      });
      if (r.complete) {
        expect(outcome(r)).toEqual(outcome(whole));
        break;
      }
      expect(r.stoppedBy).toBe('time-limit');
      resume = r.snapshot!;
    }
    expect(runs).toBeGreaterThan(1);
  });
});

describe('a stateful search saved as it runs (saveSearchEvery)', () => {
  it('hands out snapshots on the way, and one taken up ends as the whole search does', () => {
    const params = { protocol: 'ipi-switcheroo', rounds: 8 };
    const saves: SearchSnapshot[] = [];
    // The snapshot shares the live tables: a caller that keeps it copies it (the CLI writes it out).
    const save = (s: SearchSnapshot) =>
      saves.push({ ...s, visited: s.visited.map((t: Int32Array | Uint16Array) => t.slice()) as VisitedTables });
    const whole = explore(build(params), { ...EXHAUSTIVE, saveSearchEvery: { seconds: 0.01, save } });
    expect(whole.complete).toBe(true);
    expect(saves.length).toBeGreaterThanOrEqual(2);
    const middle = saves[Math.floor(saves.length / 2)]!;
    expect(middle.visitedSize).toBeLessThan(whole.states!);
    const resumed = explore(build(params), { ...EXHAUSTIVE, resume: middle });
    expect(outcome(resumed)).toEqual(outcome(whole));
  });

  it('refuses a period that is not a positive number of seconds, or no save function', () => {
    const m = build({ protocol: 'ipi-switcheroo' });
    expect(() => explore(m, { ...EXHAUSTIVE, saveSearchEvery: { seconds: 0, save: () => {} } })).toThrow(
      /explore saveSearchEvery.seconds 0 must be a positive number of seconds/,
    );
    expect(() =>
      explore(m, {
        ...EXHAUSTIVE,
        saveSearchEvery: { seconds: 1 } as unknown as NonNullable<ExploreOptions['saveSearchEvery']>,
      }),
    ).toThrow(/explore saveSearchEvery .* must be \{ seconds, save: \(snapshot\) => void \}/);
  });
});
