import { describe, expect, it } from 'vitest';
import { type ExploreOptions, explore } from '../../src/explore/explore.ts';
import { exploreParallel } from '../../src/explore/parallel.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { counters } from './fixtures/counters.ts';

const source = (cpus: number, rounds: number) => ({
  module: new URL('./fixtures/counters.ts', import.meta.url).href,
  export: 'counters',
  args: [cpus, rounds],
});

/** What one process gives for the same source. */
function single(cpus: number, rounds: number, options: ExploreOptions) {
  const { build, check } = counters(cpus, rounds);
  return explore(build, { ...options, check });
}

describe('exploreParallel: workers split the search and give the result one process gives', () => {
  it.each([
    ['exhaustive', { strategy: 'exhaustive' }],
    ['exhaustive cut by the budget', { strategy: 'exhaustive', budget: 7 }],
    ['exhaustive with a preemption bound', { strategy: 'exhaustive', preemptions: 1 }],
    ['random', { strategy: 'random', budget: 60, seed: 3 }],
    ['pct', { strategy: 'pct', budget: 60, seed: 5 }],
  ] as const)(
    '%s, 3 workers',
    async (_name, options) => {
      const parallel = await exploreParallel(source(3, 1), { ...options, workers: 3 });
      expect(parallel).toEqual(single(3, 1, options));
      expect(parallel.violations.map((v) => v.kind)).toEqual(['assertion']);
    },
    60_000,
  );

  it('the same result with 1, 2 and 4 workers', async () => {
    const results = await Promise.all(
      [1, 2, 4].map((workers) => exploreParallel(source(2, 2), { strategy: 'exhaustive', workers })),
    );
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  }, 60_000);

  it('reports progress, and refuses what cannot cross to a worker', async () => {
    const seen: number[] = [];
    await exploreParallel(source(2, 1), {
      strategy: 'random',
      budget: 20,
      workers: 2,
      onProgress: (done) => seen.push(done),
    });
    expect(seen.at(-1)).toBe(20);
    await expect(exploreParallel(source(2, 1), { strategy: 'random', workers: 2, check: () => true })).rejects.toThrow(
      /check cannot be sent to workers/,
    );
    await expect(exploreParallel(source(2, 1), { workers: 0 })).rejects.toThrow(InputError);
    await expect(exploreParallel({ ...source(2, 1), export: 'nothing' }, { workers: 2 })).rejects.toThrow(
      /has no function export 'nothing'/,
    );
  }, 60_000);
});
