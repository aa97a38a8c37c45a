import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/mmu/input-error.ts';
import { FRAG_POLICIES, runFrag } from '../../src/scenarios/frag.ts';
import { runFragExperiment } from '../../src/scenarios/frag-experiment.ts';
import { estimate, tQuantile975 } from '../../src/scenarios/frag-stats.ts';

// The fragmentation experiment on small machines: what a run is made of, and that the figures mean what they say.

const small = { memory: 64, operations: 400, seed: 3, variant: 'default', workload: 'stress-highalloc' } as const;
const SLOW = 60_000; // seconds on a loaded machine

describe('a fragmentation run', { timeout: SLOW }, () => {
  it('is deterministic for a seed', () => {
    const a = runFrag({ ...small, policy: 'high-order' });
    const b = runFrag({ ...small, policy: 'high-order' });
    expect(a).toEqual(b);
  });

  it('asks for the same vmalloc areas under every policy: only how they are backed differs', () => {
    const runs = FRAG_POLICIES.map((policy) => runFrag({ ...small, policy }));
    expect(new Set(runs.map((r) => r.vmalloc.calls)).size).toBe(1);
    expect(runs.find((r) => r.policy === 'order0')!.vmalloc.highOrderFailures).toBe(0);
    expect(runs.find((r) => r.policy === 'huge')!.vmalloc.hugeAreas).toBeGreaterThan(0);
    for (const r of runs.filter((x) => x.policy !== 'huge')) expect(r.vmalloc.hugeAreas).toBe(0);
    // vmalloc's pages are migrated only when they are movable.
    for (const r of runs.filter((x) => x.policy !== 'high-order+migratable')) expect(r.ipis).toBeLessThan(50);
  });

  it('vmalloc holds a few percent of memory (at 64 MiB one large table alone is more)', () => {
    const r = runFrag({ ...small, memory: 256, operations: 200, policy: 'order0' });
    expect(r.vmalloc.share).toBeGreaterThan(0.02);
    expect(r.vmalloc.share).toBeLessThan(0.05);
  });

  it('the no-2m variant has no vmalloc area of 2 MiB or more, so the huge policy maps nothing huge', () => {
    const r = runFrag({ ...small, variant: 'no-2m', policy: 'huge' });
    expect(r.vmalloc.largestArea).toBeLessThan(2 * 1024 * 1024);
    expect(r.vmalloc.hugeAreas).toBe(0);
    const d = runFrag({ ...small, policy: 'huge' });
    expect(d.vmalloc.largestArea).toBeGreaterThanOrEqual(2 * 1024 * 1024);
  });

  it('memory fills: kswapd reclaims, and the passes make compaction work', () => {
    const r = runFrag({ ...small, policy: 'order0' });
    expect(r.reclaim.kswapd).toBeGreaterThan(0);
    expect(r.passes).toHaveLength(3);
    expect(r.passes[0]!.attempts).toBe(Math.round((0.9 * (56 * 256)) / 512));
    expect(r.compaction.migrateScanned).toBeGreaterThan(0);
  });

  it('thpchallenge counts its THP faults per third of the run', () => {
    const r = runFrag({ ...small, workload: 'thpchallenge', policy: 'order0' });
    expect(r.passes).toHaveLength(3);
    expect(r.passes.reduce((a, p) => a + p.attempts, 0)).toBeGreaterThan(0);
  });

  it('bad options are refused, naming the value and the rule', () => {
    expect(() => runFrag({ ...small, policy: 'best' as never })).toThrow(InputError);
    expect(() => runFrag({ ...small, policy: 'best' as never })).toThrow(/frag policy 'best'/);
    expect(() => runFrag({ ...small, policy: 'order0', memory: 102 })).toThrow(/multiple of 4 MiB/);
    expect(() => runFrag({ ...small, policy: 'order0', memory: 8192 })).toThrow(/64\.\.4096/);
  });
});

describe('the experiment', { timeout: SLOW }, () => {
  it('summarises each figure by its mean and 95% confidence interval over the seeds', async () => {
    const e = await runFragExperiment({
      workloads: ['stress-highalloc'],
      variants: ['no-2m'],
      policies: ['order0'],
      seeds: 3,
      memory: 64,
      operations: 200,
    });
    expect(e.runs).toHaveLength(3);
    const values = e.runs.map((r) => r.extfrag.events);
    expect(e.summaries[0]!.figures['extfrag events']).toEqual(estimate(values));
  });

  it('the t quantiles are the table values', () => {
    expect(tQuantile975(9)).toBe(2.262);
    expect(estimate([1, 2, 3])).toEqual({ mean: 2, ci95: 4.303 * Math.sqrt(1 / 3), n: 3 });
  });
});
