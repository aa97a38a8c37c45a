import type { Worker } from 'node:worker_threads';
import { startWorkerBeside } from '../explore/threads.ts';
import { InputError, requireInteger, requireOneOf, requireOptions } from '../mmu/input-error.ts';
import {
  FRAG_POLICIES,
  FRAG_VARIANTS,
  FRAG_WORKLOADS,
  type FragPolicy,
  type FragRunOptions,
  type FragRunResult,
  type FragVariant,
  type FragWorkload,
  requireFragMemory,
  runFrag,
} from './frag.ts';
import { type Estimate, estimate } from './frag-stats.ts';

// The fragmentation experiment as a whole (`x86slice frag`, docs/frag.md): every workload, variant and policy
// over the same seeds, each run on its own machine, spread over worker threads; then each figure's mean and 95%
// confidence interval per (workload, variant, policy). The runs are ordered by their options, not by which worker
// finished first, so the result is the same for any number of workers.

export interface FragExperimentOptions {
  readonly workloads?: readonly FragWorkload[];
  readonly variants?: readonly FragVariant[];
  readonly policies?: readonly FragPolicy[];
  /** How many seeds (1, 2, ... n). Default 10. */
  readonly seeds?: number;
  /** MiB. Default 1024. */
  readonly memory?: number;
  /** Workload operations per run. Default 4000. */
  readonly operations?: number;
  /** Worker threads; 1 runs everything in this thread. Default 1. */
  readonly workers?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

/** The figures summarised per (workload, variant, policy), by name. */
export const FIGURES = {
  'order-9 success, all passes (%)': (r: FragRunResult) =>
    pct({ attempts: sum(r.passes, 'attempts'), successes: sum(r.passes, 'successes') }),
  'order-9 success, pass 1 (%)': (r: FragRunResult) => pct(r.passes[0]),
  'order-9 success, pass 2 (%)': (r: FragRunResult) => pct(r.passes[1]),
  'order-9 success, pass 3 (%)': (r: FragRunResult) => pct(r.passes[2]),
  'extfrag events': (r: FragRunResult) => r.extfrag.events,
  'extfrag events splitting a pageblock': (r: FragRunResult) => r.extfrag.fragmenting,
  'mixed pageblocks': (r: FragRunResult) => r.mixedBlocks,
  'unmovable pages in MOVABLE pageblocks': (r: FragRunResult) => r.unmovableInMovable,
  'compaction: pages scanned (migrate)': (r: FragRunResult) => r.compaction.migrateScanned,
  'compaction: pages scanned (free)': (r: FragRunResult) => r.compaction.freeScanned,
  'compaction: pages migrated': (r: FragRunResult) => r.compaction.migrated,
  'vmalloc: calls': (r: FragRunResult) => r.vmalloc.calls,
  'vmalloc: page allocator calls': (r: FragRunResult) => r.vmalloc.pageAllocs,
  'vmalloc: high-order attempts failed': (r: FragRunResult) => r.vmalloc.highOrderFailures,
  'vmalloc: huge fallbacks': (r: FragRunResult) => r.vmalloc.hugeFallbacks,
  'vmalloc: simulated us': (r: FragRunResult) => r.vmalloc.ns / 1000,
  'vmalloc: share of memory (%)': (r: FragRunResult) => 100 * r.vmalloc.share,
  'IPIs sent': (r: FragRunResult) => r.ipis,
} as const satisfies Record<string, (r: FragRunResult) => number>;
export type FigureName = keyof typeof FIGURES;

function sum(passes: readonly { attempts: number; successes: number }[], key: 'attempts' | 'successes'): number {
  return passes.reduce((a, p) => a + p[key], 0);
}

function pct(p: { attempts: number; successes: number } | undefined): number {
  return p === undefined || p.attempts === 0 ? Number.NaN : (100 * p.successes) / p.attempts;
}

export interface FragSummary {
  readonly workload: FragWorkload;
  readonly variant: FragVariant;
  readonly policy: FragPolicy;
  readonly figures: Readonly<Record<FigureName, Estimate>>;
}

export interface FragExperiment {
  readonly options: Required<Omit<FragExperimentOptions, 'onProgress' | 'workers'>>;
  readonly runs: readonly FragRunResult[];
  readonly summaries: readonly FragSummary[];
}

function list<T extends string>(value: unknown, what: string, allowed: readonly T[]): readonly T[] {
  if (value === undefined) return allowed;
  if (!Array.isArray(value) || value.length === 0) throw new InputError(`${what} must be a non-empty list`);
  return value.map((v) => requireOneOf(v, what, allowed));
}

/** Checks the options (every value, before any run starts). */
export function resolveExperiment(options: FragExperimentOptions) {
  const o = requireOptions<FragExperimentOptions>(options, 'frag options', [
    'workloads',
    'variants',
    'policies',
    'seeds',
    'memory',
    'operations',
    'workers',
    'onProgress',
  ]);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
    throw new InputError('frag onProgress must be a function (done, total) => void');
  }
  return {
    workloads: list(o.workloads, 'frag workload', FRAG_WORKLOADS),
    variants: list(o.variants, 'frag variant', FRAG_VARIANTS),
    policies: list(o.policies, 'frag policy', FRAG_POLICIES),
    seeds: o.seeds === undefined ? 10 : requireInteger(o.seeds, 'frag seeds', 1, 1000),
    memory: o.memory === undefined ? 1024 : requireFragMemory(o.memory),
    operations: o.operations === undefined ? 4000 : requireInteger(o.operations, 'frag operations', 1, 10_000_000),
    workers: o.workers === undefined ? 1 : requireInteger(o.workers, 'frag workers', 1, 64),
    onProgress: o.onProgress,
  };
}

/** Every run of the experiment, in a fixed order. */
function plan(r: ReturnType<typeof resolveExperiment>): FragRunOptions[] {
  const runs: FragRunOptions[] = [];
  for (const workload of r.workloads) {
    for (const variant of r.variants) {
      for (const policy of r.policies) {
        for (let seed = 1; seed <= r.seeds; seed++) {
          runs.push({ workload, variant, policy, seed, memory: r.memory, operations: r.operations });
        }
      }
    }
  }
  return runs;
}

function startWorker(): Worker {
  return startWorkerBeside(import.meta.url, 'frag-worker');
}

/** Runs `runs` over `count` worker threads; results in the order of `runs`. */
async function runInWorkers(
  runs: readonly FragRunOptions[],
  count: number,
  progress: () => void,
): Promise<FragRunResult[]> {
  const results: FragRunResult[] = new Array(runs.length);
  let next = 0;
  const drive = (worker: Worker): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      // One handler for the worker's life: 'ready', then one reply per run sent.
      const send = () => {
        if (next >= runs.length) {
          worker.postMessage('exit');
          resolve();
          return;
        }
        const id = next++;
        worker.postMessage({ id, run: runs[id] });
      };
      worker.on('error', reject);
      worker.on('message', (m: 'ready' | { id: number; result?: FragRunResult; error?: string }) => {
        if (m === 'ready') return send();
        if (m.error !== undefined) return reject(new Error(m.error));
        results[m.id] = m.result!;
        progress();
        send();
      });
    });
  const pool = Array.from({ length: Math.min(count, runs.length) }, startWorker);
  try {
    await Promise.all(pool.map(drive));
  } finally {
    for (const w of pool) void w.terminate();
  }
  return results;
}

function summarise(runs: readonly FragRunResult[]): FragSummary[] {
  const groups = new Map<string, FragRunResult[]>();
  for (const r of runs) {
    const key = `${r.workload}|${r.variant}|${r.policy}`;
    const g = groups.get(key);
    if (g) g.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.values()].map((g) => {
    const figures = {} as Record<FigureName, Estimate>;
    for (const [name, of] of Object.entries(FIGURES) as [FigureName, (r: FragRunResult) => number][]) {
      figures[name] = estimate(g.map(of));
    }
    return { workload: g[0]!.workload, variant: g[0]!.variant, policy: g[0]!.policy, figures };
  });
}

/** The whole experiment; see FragExperimentOptions. */
export async function runFragExperiment(options: FragExperimentOptions = {}): Promise<FragExperiment> {
  const r = resolveExperiment(options);
  const runs = plan(r);
  let done = 0;
  const progress = () => r.onProgress?.(++done, runs.length);
  let results: FragRunResult[];
  if (r.workers === 1) {
    results = [];
    for (const run of runs) {
      results.push(runFrag(run));
      progress();
    }
  } else results = await runInWorkers(runs, r.workers, progress);
  const { workers: _w, onProgress: _p, ...kept } = r;
  return { options: kept, runs: results, summaries: summarise(results) };
}
