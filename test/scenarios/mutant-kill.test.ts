import { describe, expect, it } from 'vitest';
import { firstKill, type KillSearch, PROBE_STATES } from '../../src/scenarios/mutant-kill.ts';
import type { Explored } from '../../src/scenarios/mutate-explore.ts';

// Which configuration kills a mutant (src/scenarios/mutant-kill.ts), with explorations faked: what each finds, and
// when it finishes, are the test's.

const CLEAN: Explored = { config: 'c', complete: true, states: 1000, ms: 1 };
const CUT: Explored = { config: 'c', complete: false, states: PROBE_STATES, ms: 1 };
const kill = (config: string, states = 100): Explored => ({
  config,
  violation: 'lost-write',
  complete: false,
  states,
  ms: 1,
});

/** A deferred result: the test decides when an exploration finishes. */
function later<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * A search over `configs` configurations whose protocol results are `baselines` (known at once unless `slow`),
 * and whose explorations `find(i, quick)` gives (a value, or a promise the test resolves); records the calls.
 */
function fake(
  baselines: readonly Explored[],
  find: (i: number, quick: boolean) => Explored | Promise<Explored>,
  slow = false,
) {
  const calls: string[] = [];
  // Slow: a protocol's result is known only once something waited for it.
  const waited = new Set<number>();
  const search: KillSearch = {
    configs: baselines.length,
    eligible: () => true,
    baseline: async (i) => {
      waited.add(i);
      return baselines[i]!;
    },
    known: (i) => (slow && !waited.has(i) ? undefined : baselines[i]),
    explore: async (i, quick, wanted) => {
      if (!wanted()) {
        calls.push(`dropped ${i}`);
        return undefined;
      }
      calls.push(`${quick ? 'quick' : 'complete'} ${i}`);
      return find(i, quick);
    },
  };
  return { search, calls };
}

describe('the configuration that kills a mutant', () => {
  it('a mutant a later configuration kills at once is not explored completely in those before it', async () => {
    const { search, calls } = fake([CLEAN, CLEAN], (i, quick) => (quick && i === 1 ? kill('reader') : CUT));
    expect(await firstKill(search)).toMatchObject({ config: 'reader', violation: 'lost-write' });
    expect(calls).toEqual(['quick 0', 'quick 1']);
  });

  it('with no quick kill, the first configuration in order whose complete exploration kills it, whenever each finishes', async () => {
    const done = [later<Explored>(), later<Explored>(), later<Explored>()];
    const { search, calls } = fake([CLEAN, CLEAN, CLEAN], (i, quick) => (quick ? CUT : done[i]!.promise));
    const found = firstKill(search);
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toEqual(['quick 0', 'quick 1', 'quick 2', 'complete 0', 'complete 1', 'complete 2']);
    // The last configuration kills it first, then the second; the first finishes last, clean.
    done[2]!.resolve(kill('third'));
    done[1]!.resolve(kill('second'));
    done[0]!.resolve(CLEAN);
    expect(await found).toMatchObject({ config: 'second' });
  });

  it('a violation counts only where the protocol is clean: a quick look may start before that is known', async () => {
    const unclean: Explored = { config: 'csd', violation: 'lost-write', complete: false, states: 220, ms: 1 };
    const { search, calls } = fake(
      [unclean, CLEAN],
      (i, quick) => (i === 0 ? kill('csd') : quick ? CUT : kill('reader', 50_000)),
      true,
    );
    expect(await firstKill(search)).toMatchObject({ config: 'reader', states: 50_000 });
    // Not known when the quick look started: looked at, and its kill not counted; known by the complete ones.
    expect(calls).toEqual(['quick 0', 'quick 1', 'complete 1']);
  });

  it('is not explored in a configuration where the protocol is known to fail, nor completely where a quick look covered it all', async () => {
    const unclean: Explored = { config: 'csd', violation: 'lost-write', complete: false, states: 220, ms: 1 };
    const small: Explored = { config: 'small', complete: true, states: 900, ms: 1 };
    const { search, calls } = fake([unclean, CLEAN, CLEAN], (i, quick) => (i === 1 ? small : quick ? CUT : CLEAN));
    expect(await firstKill(search)).toBeUndefined();
    expect(calls).toEqual(['quick 1', 'quick 2', 'complete 2']);
  });

  it('an exploration not started when an earlier configuration kills the mutant is dropped', async () => {
    const first = later<Explored>();
    const started: string[] = [];
    const search: KillSearch = {
      configs: 2,
      eligible: () => true,
      baseline: async () => CLEAN,
      known: () => CLEAN,
      explore: async (i, quick, wanted) => {
        if (quick) return CUT;
        // One lane: the second complete exploration waits for the first to finish (and, as ExploreLanes does, for
        // what that finish set off).
        if (i === 1) {
          await first.promise;
          await new Promise((r) => setImmediate(r));
        }
        if (!wanted()) return undefined;
        started.push(`complete ${i}`);
        return i === 0 ? first.promise : CLEAN;
      },
    };
    const found = firstKill(search);
    await new Promise((r) => setTimeout(r, 0));
    first.resolve(kill('none'));
    expect(await found).toMatchObject({ config: 'none' });
    expect(started).toEqual(['complete 0']);
  });
});
