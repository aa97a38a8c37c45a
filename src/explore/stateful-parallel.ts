import type { Machine } from '../machine/machine.ts';
import { parseSchedule } from '../machine/schedule.ts';
import { InputError } from '../mmu/input-error.ts';
import { checkContract } from './contract-check.ts';
import type { Execution } from './execution.ts';
import type { ExploreResult } from './options.ts';
import { delivering, type Resolved } from './parts.ts';
import { SharedStateSet, type SharedStateSetBuffers } from './shared-state-set.ts';
import type { BuildSource, WorkerOptions } from './source.ts';
import { copiedWordRead, deadWordsRead, StatefulSearch } from './stateful.ts';
import { finishStateful, statefulOptions } from './stateful-explore.ts';
import type { StatefulResult } from './stateful-result.ts';
import { startWorker } from './threads.ts';

// The stateful search on worker threads (explore's `workers` with `search: 'stateful'`; issue 18). Every worker
// searches depth-first from the initial state, as stateful.ts does alone, and they share one set of *finished*
// states (shared-state-set.ts): a state goes into it when every choice from it has been taken. A worker cuts a
// path at a state on its own stack (a cycle, reported as the search alone reports it) or at a finished one, and
// explores again a state another worker has entered and not finished. Each worker takes each state's steps and
// deliveries in an order turned by its number, so that they start apart and mostly meet finished states.
//
// Why finished states, not entered ones (which would never explore a state twice): the search also decides
// whether some run goes on forever (a cycle). Depth-first search finds a cycle as a step back to a state on the
// stack; with workers cutting at states other workers have entered, a cycle whose states are shared out between
// two stacks is missed by both. Cutting only at finished states keeps the sequential argument: when a worker
// finishes a state, every successor was explored to its end, by it or by another worker, so every cycle reachable
// from it was found; and the first worker to finish the initial state has finished the search (the others stop).
// The price is the work done twice where two workers meet states neither has finished (stateful-parallel bench:
// bench/stateful.mjs).
//
// The designs of distributed model checkers (PReach, DiVinE) partition the states among workers by fingerprint
// and send each successor to its owner. Programs are generators that cannot cross threads, so a worker would have
// to rebuild a state sent to it by replaying its path (~200 µs a state here), which costs more than the search.

/** What a worker is given (stateful-worker.ts). */
export interface StatefulWorkerSetup {
  readonly source: BuildSource;
  readonly options: WorkerOptions;
  readonly buffers: SharedStateSetBuffers;
  readonly worker: number;
  readonly deadline?: number;
  /** Whether dead words are left out (StatefulOptions.deadWords); the search's default when absent. */
  readonly deadWords?: boolean;
  /** The path to go down first, as a schedule (StatefulOptions.first): where a search with dead words read one. */
  readonly first?: string;
  /** StatefulOptions.copiedLive. */
  readonly copiedLive?: boolean;
}

type WorkerMessage = { result: StatefulResult } | { error: { name: string; message: string } | string };

/** How often this thread reports progress (the states finished so far), in milliseconds. */
const PROGRESS_MS = 200;

/** The most states the shared set is made for (its last table takes 1.4 GB): a larger budget is refused. */
export const MAX_CAPACITY = 2 ** 27;

/**
 * The stateful search on `workers` threads. In the compiled package this thread is worker 0 (it needs no start-up:
 * the search begins while the other workers load), and workers - 1 worker threads help; under a TypeScript loader
 * (tests), all are worker threads, as this thread's modules are transformed otherwise than a worker's and a
 * program's fingerprint hashes its source text (the threads check that they agree on the initial state).
 */
export async function exploreStatefulParallel(
  source: BuildSource,
  build: () => Machine,
  r: Resolved,
  options: WorkerOptions,
  workers: number,
  deadWords?: boolean,
  first?: string,
  copiedLive?: boolean,
): Promise<ExploreResult> {
  if (r.invariant !== undefined) {
    throw new InputError('explore invariant cannot be sent to workers: run the stateful search in one process');
  }
  if (r.budget > MAX_CAPACITY) {
    // Refused before it starts: a search that outgrew the set would stop with nothing to show for its hours.
    throw new InputError(
      `budget ${r.budget} with ${workers} workers: the parallel search's shared set holds at most ` +
        `${MAX_CAPACITY.toLocaleString('en-US')} states; give a smaller budget, or search on one thread (its set ` +
        'grows with the search) or over machines (--broker)',
    );
  }
  const set = SharedStateSet.create(r.budget);
  const deadline = r.timeLimit === undefined ? undefined : Date.now() + r.timeLimit;
  const built = delivering(build, r);
  const here = !import.meta.url.endsWith('.ts');
  const firstWorker = here ? 1 : 0;
  const threads = Array.from({ length: workers - firstWorker }, (_, k) =>
    runWorker(
      {
        source,
        options,
        buffers: set.buffers,
        worker: firstWorker + k,
        ...(deadline === undefined ? {} : { deadline }),
        ...(deadWords === undefined ? {} : { deadWords }),
        ...(first === undefined ? {} : { first }),
        ...(copiedLive === undefined ? {} : { copiedLive }),
      },
      set,
    ),
  );
  const settled = Promise.allSettled(threads);
  const results: StatefulResult[] = [];
  let failure: unknown;
  if (here) {
    try {
      const o = {
        ...statefulOptions(r, deadline),
        ...(deadWords === undefined ? {} : { deadWords }),
        ...(first === undefined ? {} : { first: parseSchedule(first) }),
        ...(copiedLive === undefined ? {} : { copiedLive }),
      };
      const progress = r.onProgress ? { progress: () => r.onProgress!(set.size, r.budget) } : {};
      const own = new StatefulSearch(built, { ...o, ...progress, shared: set, worker: 0 }).run();
      checkContract(built, own.samples, own.deadWords, own.copiedLive);
      results.push({ ...own, samples: [] });
    } catch (error) {
      set.stop();
      failure = error;
    }
  }
  const progress =
    here || r.onProgress === undefined ? undefined : setInterval(() => r.onProgress!(set.size, r.budget), PROGRESS_MS);
  const outcomes = await settled;
  if (progress !== undefined) clearInterval(progress);
  if (failure !== undefined) throw failure;
  for (const outcome of outcomes) {
    if (outcome.status === 'rejected') throw outcome.reason;
    results.push(outcome.value);
  }
  const reader = results.find((w) => w.deadRead >= 0);
  if (reader?.deadReadCopied && !reader.copiedLive) {
    // As the search alone does: a word of a frame copied away was read, so search again with those frames' words in
    // the state (and the other dead words left out), down the path that read it first.
    const s = reader.deadReadSchedule;
    const again = await exploreStatefulParallel(source, build, r, options, workers, true, s, true);
    return { ...again, deadWordsOff: copiedWordRead(reader.deadRead, s, again.deadWordsOff) };
  }
  if (reader !== undefined) {
    // As the search alone does (stateful.ts): a dead word was read, so search again with every word in the state,
    // down the path that read it first.
    const again = await exploreStatefulParallel(source, build, r, options, workers, false, reader.deadReadSchedule);
    return { ...again, deadWordsOff: deadWordsRead(reader.deadRead, reader.deadReadSchedule) };
  }
  if (results.some((w) => w.reductionOverflowed)) {
    // As the search alone does (stateful.ts): the TLB-event reduction's argument failed, so search again without it.
    return exploreStatefulParallel(
      source,
      build,
      { ...r, reduce: false },
      { ...options, reduction: 'none' },
      workers,
      deadWords,
      first,
      copiedLive,
    );
  }
  return finishStateful(built, r, merge(results, set, r.budget), workers);
}

function runWorker(setup: StatefulWorkerSetup, set: SharedStateSet): Promise<StatefulResult> {
  const thread = startWorker('stateful-worker', setup);
  return new Promise<StatefulResult>((resolve, reject) => {
    thread.once('error', (error) => {
      set.stop();
      reject(error);
    });
    thread.once('message', (m: WorkerMessage) => {
      void thread.terminate();
      if ('result' in m) {
        resolve(m.result);
        return;
      }
      set.stop();
      const e = m.error;
      reject(
        typeof e === 'string'
          ? new Error(e)
          : e.name === 'InputError'
            ? new InputError(e.message)
            : new Error(`a worker of the stateful search failed: ${e.message}`),
      );
    });
  });
}

/**
 * The workers' results as one: states are the finished states (each stored once); final states are counted by the
 * worker that finished them first; transitions are every worker's (work done twice included). Complete when a
 * worker finished the initial state with no path cut by the step bound, the budget or the time limit.
 */
function merge(results: readonly StatefulResult[], set: SharedStateSet, budget: number) {
  const best = new Map<string, Execution>();
  for (const r of results) {
    for (const v of r.violations) {
      const kind = v.kind!;
      const known = best.get(kind);
      if (known === undefined || v.schedule.length < known.schedule.length) best.set(kind, v);
    }
  }
  const states = set.size;
  const timedOut = results.some((r) => r.timedOut);
  const stoppedAtViolation = results.some((r) => r.stoppedAtViolation);
  const complete =
    results.some((r) => r.rootFinished) &&
    !results.some((r) => r.depthCut) &&
    !timedOut &&
    !stoppedAtViolation &&
    states < budget;
  return {
    samples: [], // each worker checked its own paths (stateful-worker.ts)
    violations: [...best.values()],
    finalStates: results.reduce((n, r) => n + r.finalStates, 0),
    transitions: results.reduce((n, r) => n + r.transitions, 0),
    complete,
    timedOut,
    stoppedAtViolation,
    states,
    depth: Math.max(...results.map((r) => r.depth)),
    visitedBytes: set.bytes,
    deadWords: results.every((r) => r.deadWords),
    copiedLive: results.some((r) => r.copiedLive),
  };
}
