import type { Worker } from 'node:worker_threads';
import { InputError, requireInteger } from '../mmu/input-error.ts';
import type { ExploreOptions, ExploreResult } from './options.ts';
import {
  expiresAt,
  finish,
  Merged,
  type PartOutcome,
  type PartSpec,
  partNotRun,
  plan,
  prepare,
  resolveOptions,
} from './parts.ts';
import { type BuildSource, loadSource, type WorkerOptions } from './source.ts';
import { exploreStatefulParallel } from './stateful-parallel.ts';
import { startWorker } from './threads.ts';

export type { BuildSource } from './source.ts';

// Exploration split across worker threads. The work is the same parts explore() runs (explore.ts: the subtree
// under each first choice per preemption bound, or ranges of sampled executions); each worker runs whole parts and
// the results merge in part order, each cut at the budget left. So the result is the one a single process gives
// (same executions, violations and minimised schedules), whatever the timing.

export interface ParallelOptions extends ExploreOptions {
  /** Worker threads. */
  readonly workers: number;
}

interface Pending {
  readonly resolve: (part: PartOutcome) => void;
  readonly reject: (error: Error) => void;
  progress: number;
}

export async function exploreParallel(source: BuildSource, options: ParallelOptions): Promise<ExploreResult> {
  const { workers: count, ...rest } = options;
  const workers = requireInteger(count, 'explore workers', 1, 64);
  if (rest.check !== undefined) {
    throw new InputError('explore check cannot be sent to workers: return { build, check } from the source factory');
  }
  for (const key of ['saveSearch', 'saveSearchEvery', 'resume'] as const) {
    if (rest[key] !== undefined && rest[key] !== false) {
      throw new InputError(`explore ${key} is for the stateful search on one thread: use explore(), not workers`);
    }
  }
  const { build, check } = await loadSource(source);
  const r = resolveOptions({ ...rest, ...(check ? { check } : {}) });
  const { onProgress: _progress, ...cloneable } = rest;
  const workerOptions: WorkerOptions = cloneable;
  if (r.strategy === 'exhaustive' && r.search === 'stateful') {
    return exploreStatefulParallel(source, build, r, workerOptions, workers);
  }
  // The time limit as a wall-clock deadline, which each worker checks before each execution it starts.
  const deadline = r.timeLimit === undefined ? undefined : Date.now() + r.timeLimit;
  const shared = prepare(build, r);
  const merged = new Merged(r.budget);
  const pending = new Map<number, Pending>();
  let nextId = 0;
  const pool = await Promise.all(
    Array.from({ length: workers }, () => {
      const worker = startWorker('worker', { source, options: workerOptions });
      return new Promise<Worker>((resolve, reject) => {
        worker.once('error', reject);
        worker.once('message', (m) => (m === 'ready' ? resolve(worker) : reject(new Error(`worker said ${m}`))));
      });
    }),
  );
  const failAll = (error: Error) => {
    for (const p of pending.values()) p.reject(error);
    pending.clear();
  };
  const report = () => {
    if (!r.onProgress) return;
    let running = 0;
    for (const p of pending.values()) running += p.progress;
    r.onProgress(Math.min(r.budget, merged.runs + running), r.budget);
  };
  for (const worker of pool) {
    worker.on('message', (m: { id: number; part?: PartOutcome; progress?: number }) => {
      const p = pending.get(m.id);
      if (!p) return;
      if (m.part) {
        pending.delete(m.id);
        p.resolve(m.part);
      } else {
        p.progress = m.progress ?? p.progress;
        report();
      }
    });
    worker.on('error', failAll);
  }
  let bound: number | undefined;
  try {
    for (const parts of plan(r, shared, merged, workers)) {
      const budget = r.budget - merged.runs;
      const results = await runLevel(pool, parts, budget, deadline, pending, () => nextId++);
      for (const [i, part] of results.entries()) {
        const spec = parts[i]!;
        if (spec.kind === 'subtree') bound = spec.bound;
        const more = merged.add(part);
        report();
        if (!more) break;
      }
    }
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
  return finish(build, r, merged, bound);
}

/**
 * Runs a level's parts on the pool, each worker taking the next part when it is free; results in part order. A
 * part not begun when the deadline passes is not sent (partNotRun), and a worker stops its part at the deadline.
 */
async function runLevel(
  pool: readonly Worker[],
  parts: readonly PartSpec[],
  budget: number,
  deadline: number | undefined,
  pending: Map<number, Pending>,
  newId: () => number,
): Promise<PartOutcome[]> {
  const results: PartOutcome[] = new Array(parts.length);
  const expired = deadline === undefined ? undefined : expiresAt(deadline);
  let next = 0;
  const drive = async (worker: Worker): Promise<void> => {
    while (next < parts.length) {
      const index = next++;
      if (expired?.()) {
        results[index] = partNotRun();
        continue;
      }
      const id = newId();
      results[index] = await new Promise<PartOutcome>((resolve, reject) => {
        pending.set(id, { resolve, reject, progress: 0 });
        worker.postMessage({ id, spec: parts[index], budget, ...(deadline === undefined ? {} : { deadline }) });
      });
    }
  };
  await Promise.all(pool.map(drive));
  return results;
}
