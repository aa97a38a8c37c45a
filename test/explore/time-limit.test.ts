import { describe, expect, it } from 'vitest';
import { explore, replay } from '../../src/explore/explore.ts';
import { exploreParallel } from '../../src/explore/parallel.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { findScenario } from '../../src/scenarios/catalogue.ts';
import { resolveParams } from '../../src/scenarios/scenario.ts';
import { machineFactory } from '../../src/scenarios/scenario-module.ts';
import { counters, slowCounters } from './fixtures/counters.ts';

// explore's timeLimit: wall-clock milliseconds beside the execution budget. It only decides when to stop; a search
// it does not cut is the search without it, and one it cuts says so (stoppedBy) and is not complete.

describe('explore timeLimit', () => {
  it.each([
    ['exhaustive', { strategy: 'exhaustive' }],
    ['exhaustive with a preemption bound', { strategy: 'exhaustive', preemptions: 1 }],
    ['random', { strategy: 'random', budget: 50, seed: 4 }],
    ['pct', { strategy: 'pct', budget: 50, seed: 4 }],
  ] as const)('%s: a search the time limit does not cut is bit-for-bit the one without it', (_name, options) => {
    const { build, check } = counters(2, 2);
    const without = explore(build, { ...options, check });
    const within = explore(build, { ...options, check, timeLimit: 600_000 });
    expect(JSON.stringify(within)).toBe(JSON.stringify(without));
  });

  it('an exhaustive search cut by the time limit is not complete, says why, and what it found replays', () => {
    const full = explore(counters(2, 3).build, { strategy: 'exhaustive', check: counters(2, 3).check });
    expect(full).toMatchObject({ complete: true, executions: 3432 });
    expect(full.stoppedBy).toBeUndefined();
    // Each build takes 2 ms, so the whole search would take 7 s or more; 150 ms cuts it inside its first part.
    const { build, check } = slowCounters(2, 3, 2);
    const cut = explore(build, { strategy: 'exhaustive', check, timeLimit: 150 });
    expect(cut).toMatchObject({ complete: false, stoppedBy: 'time-limit' });
    expect(cut.executions).toBeLessThan(full.executions / 2);
    for (const v of cut.violations) expect(replay(build, v.schedule, { check }).kind).toBe(v.kind);
  });

  it('a stateful search cut by the time limit is not complete and says why; one it does not cut is the same', () => {
    // The switcheroo's 1.26 million states take seconds: 20 ms cuts it (the clock is read every 1,024 choices).
    const s = findScenario('stack-migration');
    const build = machineFactory(s, resolveParams(s, { protocol: 'ipi-switcheroo' }));
    const cut = explore(build, { strategy: 'exhaustive', search: 'stateful', tlbEvents: 1, timeLimit: 20 });
    expect(cut).toMatchObject({ search: 'stateful', complete: false, stoppedBy: 'time-limit', violations: [] });
    const small = counters(2, 2);
    const without = explore(small.build, { strategy: 'exhaustive', search: 'stateful', check: small.check });
    const within = explore(small.build, {
      strategy: 'exhaustive',
      search: 'stateful',
      check: small.check,
      timeLimit: 600_000,
    });
    expect(without.complete).toBe(true);
    expect(JSON.stringify(within)).toBe(JSON.stringify(without));
  });

  it('a sampling search cut by the time limit runs fewer executions than its budget, and says why', () => {
    const { build, check } = slowCounters(2, 1, 2);
    const cut = explore(build, { strategy: 'random', budget: 100_000, check, timeLimit: 100 });
    expect(cut).toMatchObject({ complete: false, stoppedBy: 'time-limit' });
    expect(cut.executions).toBeLessThan(100_000);
  });

  it('stoppedBy says budget when the budget ended a search with work left, and is absent for a complete one', () => {
    const { build, check } = counters(2, 2);
    expect(explore(build, { strategy: 'exhaustive', check, budget: 3 })).toMatchObject({
      complete: false,
      stoppedBy: 'budget',
    });
    expect(explore(build, { strategy: 'random', check, budget: 3 })).toMatchObject({ stoppedBy: 'budget' });
    const complete = explore(build, { strategy: 'exhaustive', check });
    expect(complete.complete).toBe(true);
    expect('stoppedBy' in complete).toBe(false);
  });

  it('on worker threads too: a worker stops its part at the deadline', async () => {
    // Builds of 4 ms: each of the two parts (one per first choice) takes about 100 s, well past the 4 s limit; the
    // workers start within it (about a second), so the cut lands inside parts that were running.
    const source = {
      module: new URL('./fixtures/counters.ts', import.meta.url).href,
      export: 'slowCounters',
      args: [2, 4, 4],
    };
    const cut = await exploreParallel(source, { strategy: 'exhaustive', workers: 2, timeLimit: 4000 });
    expect(cut).toMatchObject({ complete: false, stoppedBy: 'time-limit' });
    expect(cut.executions).toBeGreaterThan(0);
    expect(cut.executions).toBeLessThan(48_620 / 2); // counters(2, 4): 48,620 executions
  }, 60_000);

  it.each([0, -5, 1.5, Number.NaN, '100', 1e15])('a timeLimit of %s is refused, naming the value', (value) => {
    expect(() => explore(counters(2, 1).build, { timeLimit: value as never })).toThrow(InputError);
    expect(() => explore(counters(2, 1).build, { timeLimit: value as never })).toThrow(
      /^explore timeLimit \(milliseconds\) .* must be an integer in 1\.\.2592000000$/,
    );
  });
});
