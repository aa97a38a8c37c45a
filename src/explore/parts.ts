import { IPI_DELIVERY_MODES, type IpiDelivery } from '../cpu/ipi-bus.ts';
import type { Machine } from '../machine/machine.ts';
import { describeValue, InputError, requireInteger, requireOneOf, requireOptions } from '../mmu/input-error.ts';
import type { Execution, FinalCheck, StateInvariant, ViolationKind } from './execution.ts';
import { exploreRoot, type PartResult, PartSearch, type Root } from './exhaustive.ts';
import { CACHE_SCOPES, type CacheScope } from './hardware-choices.ts';
import type { ExploreOptions, ExploreResult, StopReason, Strategy } from './options.ts';
import { reportViolations, requireCheck, requireInvariant } from './replay.ts';
import { probeLength, type SamplingOptions, samplePart } from './sampling.ts';
import type { SearchSnapshot } from './search-snapshot.ts';

// How explore() and exploreParallel() divide and merge their work (internal: not part of the public API). The work
// is parts: the subtree under each first choice, per preemption bound, or a range of sampled executions. Parts merge
// in order, each cut at the budget left, so any split (one process, or worker threads) gives the same result.

const STRATEGIES: readonly Strategy[] = ['exhaustive', 'random', 'pct'];

const OPTION_KEYS = [
  'strategy',
  'budget',
  'seed',
  'maxSteps',
  'depth',
  'check',
  'tlbEvents',
  'cacheEvents',
  'preemptions',
  'reduction',
  'timeLimit',
  'ipiDelivery',
  'search',
  'invariant',
  'onProgress',
  'stopAtViolation',
  'saveSearch',
  'saveSearchEvery',
  'resume',
  'deadWords',
] as const;

/** Options checked and defaulted. */
export interface Resolved {
  readonly strategy: Strategy;
  readonly budget: number;
  readonly seed: number;
  readonly maxSteps: number;
  readonly depth: number;
  readonly check: FinalCheck | undefined;
  readonly tlbEvents: number;
  readonly cacheEvents: CacheScope;
  readonly preemptions: number | undefined;
  readonly reduce: boolean;
  /** Wall-clock milliseconds, or undefined: no limit. */
  readonly timeLimit: number | undefined;
  readonly ipiDelivery: IpiDelivery;
  /** Exhaustive: the stateful search (stateful.ts) or the stateless one (exhaustive.ts). */
  readonly search: 'stateful' | 'stateless';
  readonly invariant: StateInvariant | undefined;
  readonly onProgress: ((executions: number, budget: number) => void) | undefined;
  readonly stopAtViolation: boolean;
  readonly saveSearch: boolean;
  readonly saveSearchEvery: ExploreOptions['saveSearchEvery'];
  readonly resume: SearchSnapshot | undefined;
  /** Whether the stateful search leaves dead words out; undefined: its default. */
  readonly deadWords: boolean | undefined;
}

/** deadWords: a boolean, and only for the stateful exhaustive search (the others keep no states). */
function deadWords(value: unknown, strategy: Strategy, search: 'stateful' | 'stateless'): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean')
    throw new InputError(`explore deadWords ${describeValue(value)} must be true or false`);
  if (strategy !== 'exhaustive' || search !== 'stateful') {
    throw new InputError(
      `explore deadWords is for the stateful exhaustive search, not strategy '${strategy}' (search '${search}')`,
    );
  }
  return value;
}

/** stopAtViolation: a boolean, and only for the stateful exhaustive search. */
function stopAtViolation(value: unknown, strategy: Strategy, search: 'stateful' | 'stateless'): boolean {
  if (value === undefined || value === false) return false;
  if (value !== true) throw new InputError(`explore stopAtViolation ${describeValue(value)} must be true or false`);
  if (strategy !== 'exhaustive' || search !== 'stateful') {
    throw new InputError(
      `explore stopAtViolation is for the stateful exhaustive search, not strategy '${strategy}' (search '${search}')`,
    );
  }
  return true;
}

/** saveSearch and resume: only for the stateful exhaustive search (on one thread: parallel.ts refuses them). */
function searchSaving(
  o: ExploreOptions,
  strategy: Strategy,
  search: 'stateful' | 'stateless',
): Pick<Resolved, 'saveSearch' | 'saveSearchEvery' | 'resume'> {
  for (const key of ['saveSearch', 'saveSearchEvery', 'resume'] as const) {
    if (o[key] !== undefined && o[key] !== false && (strategy !== 'exhaustive' || search !== 'stateful')) {
      throw new InputError(
        `explore ${key} is for the stateful exhaustive search, not strategy '${strategy}' (search '${search}')`,
      );
    }
  }
  if (o.saveSearch !== undefined && typeof o.saveSearch !== 'boolean') {
    throw new InputError(`explore saveSearch ${describeValue(o.saveSearch)} must be true or false`);
  }
  const resume = o.resume;
  if (
    resume !== undefined &&
    (typeof resume !== 'object' ||
      resume === null ||
      !Array.isArray(resume.visited) ||
      !(
        resume.visited.every((t: unknown) => t instanceof Int32Array) ||
        resume.visited.every((t: unknown) => t instanceof Uint16Array)
      ) ||
      !(resume.next instanceof Int32Array))
  ) {
    throw new InputError(`explore resume ${describeValue(resume)} must be a snapshot a saved search returned`);
  }
  const every = o.saveSearchEvery;
  if (every !== undefined) {
    if (typeof every !== 'object' || every === null || typeof every.save !== 'function') {
      throw new InputError(
        `explore saveSearchEvery ${describeValue(every)} must be { seconds, save: (snapshot) => void }`,
      );
    }
    const seconds = every.seconds;
    if (typeof seconds !== 'number' || !(seconds > 0 && seconds <= MAX_TIME_LIMIT / 1000)) {
      throw new InputError(
        `explore saveSearchEvery.seconds ${describeValue(seconds)} must be a positive number of seconds (at most 30 days)`,
      );
    }
  }
  return { saveSearch: o.saveSearch === true, saveSearchEvery: every, resume };
}

export function resolveOptions(options: ExploreOptions): Resolved {
  const o = requireOptions<ExploreOptions>(options, 'explore options', OPTION_KEYS);
  const strategy = o.strategy === undefined ? 'random' : requireOneOf(o.strategy, 'explore strategy', STRATEGIES);
  if (strategy !== 'exhaustive') {
    for (const key of ['preemptions', 'reduction', 'search'] as const) {
      if (o[key] !== undefined) throw new InputError(`explore ${key} applies to strategy exhaustive, not ${strategy}`);
    }
  }
  const search =
    o.search === undefined ? 'stateless' : requireOneOf(o.search, 'explore search', ['stateful', 'stateless'] as const);
  if (search === 'stateful') {
    if (o.preemptions !== undefined) {
      throw new InputError(
        "explore preemptions applies to the stateless search, not search: 'stateful' (it has no bound)",
      );
    }
  } else if (o.invariant !== undefined) {
    throw new InputError("explore invariant applies to search: 'stateful' (strategy exhaustive)");
  }
  const defaultBudget = strategy !== 'exhaustive' ? 200 : search === 'stateful' ? 10_000_000 : 100_000;
  if (strategy !== 'pct' && o.depth !== undefined) {
    throw new InputError(`explore depth applies to strategy pct, not ${strategy}`);
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
    throw new InputError('explore onProgress must be a function (executions, budget) => void');
  }
  return {
    strategy,
    budget: o.budget === undefined ? defaultBudget : requireInteger(o.budget, 'explore budget', 1, 1e12),
    seed: o.seed === undefined ? 1 : requireInteger(o.seed, 'explore seed', 0, Number.MAX_SAFE_INTEGER),
    maxSteps: o.maxSteps === undefined ? 10_000 : requireInteger(o.maxSteps, 'explore maxSteps', 1, 10_000_000),
    depth: o.depth === undefined ? 3 : requireInteger(o.depth, 'explore depth', 1, 100),
    check: requireCheck(o.check, 'explore'),
    tlbEvents: o.tlbEvents === undefined ? 0 : requireInteger(o.tlbEvents, 'explore tlbEvents', 0, 1000),
    cacheEvents:
      o.cacheEvents === undefined ? 'held' : requireOneOf(o.cacheEvents, 'explore cacheEvents', CACHE_SCOPES),
    preemptions:
      o.preemptions === undefined ? undefined : requireInteger(o.preemptions, 'explore preemptions', 0, 1000),
    // Each search has its own reduction: DPOR for the stateless one, of TLB events for the stateful one.
    reduce:
      o.reduction === undefined
        ? true
        : requireOneOf(
            o.reduction,
            `explore reduction (search: '${search}')`,
            search === 'stateful' ? (['tlb-events', 'none'] as const) : (['dpor', 'none'] as const),
          ) !== 'none',
    timeLimit:
      o.timeLimit === undefined
        ? undefined
        : requireInteger(o.timeLimit, 'explore timeLimit (milliseconds)', 1, MAX_TIME_LIMIT),
    ipiDelivery:
      o.ipiDelivery === undefined
        ? 'scheduled'
        : requireOneOf(o.ipiDelivery, 'explore ipiDelivery', IPI_DELIVERY_MODES),
    search,
    stopAtViolation: stopAtViolation(o.stopAtViolation, strategy, search),
    deadWords: deadWords(o.deadWords, strategy, search),
    ...searchSaving(o, strategy, search),
    invariant: requireInvariant(o.invariant),
    onProgress: o.onProgress,
  };
}

/** The longest time limit: 30 days, in milliseconds. */
const MAX_TIME_LIMIT = 30 * 24 * 3600 * 1000;

/**
 * Whether the time limit has passed, from now (undefined: no limit). Wall-clock time (Date.now), the same in
 * every worker thread, where each thread's performance.now() has its own origin.
 */
export function deadlineOf(r: Resolved): (() => boolean) | undefined {
  return r.timeLimit === undefined ? undefined : expiresAt(Date.now() + r.timeLimit);
}

/** A check of a deadline (Date.now() milliseconds) that stays true once it was true. */
export function expiresAt(deadline: number): () => boolean {
  let expired = false;
  return () => {
    if (!expired && Date.now() >= deadline) expired = true;
    return expired;
  };
}

/** A part's result, and whether the time limit cut it (it then has work left: `finished` is false). */
export interface PartOutcome extends PartResult {
  readonly timedOut: boolean;
}

/** `build`, with every machine it makes set to the exploration's IPI delivery mode. */
export function delivering(build: () => Machine, r: Resolved): () => Machine {
  const mode = r.ipiDelivery;
  return () => {
    const m = build();
    m.ipiDelivery = mode;
    return m;
  };
}

/** One part of the work: a first choice's subtree under a preemption bound, or a range of sampled executions. */
export type PartSpec =
  | { readonly kind: 'subtree'; readonly bound: number | undefined; readonly index: number }
  | { readonly kind: 'sample'; readonly first: number; readonly count: number };

/** What every part needs that is computed once: the exhaustive root, or PCT's length estimate. */
export interface Shared {
  readonly root?: Root;
  readonly length?: number;
}

export function prepare(source: () => Machine, r: Resolved): Shared {
  const build = delivering(source, r);
  if (r.strategy === 'exhaustive') return { root: exploreRoot(build, r.tlbEvents, r.cacheEvents) };
  return { length: r.strategy === 'pct' ? probeLength(build, r.maxSteps) : 0 };
}

/**
 * Runs one part, at most `budget` executions, starting no execution once `expired()` (the time limit) is true.
 */
export function runPart(
  source: () => Machine,
  r: Resolved,
  shared: Shared,
  spec: PartSpec,
  budget: number,
  progress?: (runs: number) => void,
  expired?: () => boolean,
): PartOutcome {
  const build = delivering(source, r);
  if (spec.kind === 'subtree') {
    let timedOut = false;
    const o = { ...r, preemptions: spec.bound, budget, ...(progress ? { progress } : {}) };
    if (expired) {
      // The exhaustive search reads its budget before each execution; once the time limit has passed, the budget
      // reads 0, so the part ends there with its work so far, not finished. (exhaustive.ts is left as it is.)
      Object.defineProperty(o, 'budget', {
        get: () => {
          timedOut ||= expired();
          return timedOut ? 0 : budget;
        },
      });
    }
    const part = new PartSearch(build, o, shared.root!, spec.index).run();
    return { ...part, timedOut: timedOut && !part.finished };
  }
  const o: SamplingOptions = {
    strategy: r.strategy as 'random' | 'pct',
    seed: r.seed,
    depth: r.depth,
    length: shared.length ?? 0,
    maxSteps: r.maxSteps,
    tlbEvents: r.tlbEvents,
    cacheEvents: r.cacheEvents,
    check: r.check,
  };
  return samplePart(build, o, spec.first, Math.min(spec.count, budget), progress, expired);
}

/** A part the time limit cut before it began. */
export function partNotRun(): PartOutcome {
  return { runs: 0, steps: [], states: [], improvements: [], finished: false, boundHit: false, timedOut: true };
}

/** Parts merged in order, each cut at the budget left: the same totals whatever ran them, and in what order. */
export class Merged {
  runs = 0;
  steps = 0;
  complete = true;
  boundHit = false;
  /** What cut the search, when something did. */
  stoppedBy: StopReason | undefined;
  readonly states = new Set<string>();
  readonly best = new Map<ViolationKind, Execution>();

  constructor(readonly budget: number) {}

  /** Adds the next part; false when the budget or the time limit ran out in it (the search stops there). */
  add(part: PartOutcome): boolean {
    const take = Math.min(part.runs, this.budget - this.runs);
    for (let i = 0; i < take; i++) {
      this.steps += part.steps[i]!;
      if (part.states[i]) this.states.add(part.states[i]!);
    }
    for (const [i, run] of part.improvements) {
      if (i >= take) break;
      const best = this.best.get(run.kind!);
      if (!best || run.schedule.length < best.schedule.length) this.best.set(run.kind!, run);
    }
    this.runs += take;
    if (take < part.runs || !part.finished) {
      this.complete = false;
      this.stoppedBy = take === part.runs && part.timedOut ? 'time-limit' : 'budget';
      return false;
    }
    this.boundHit ||= part.boundHit;
    return true;
  }

  /** The time limit ran out before the next part began. */
  cutByTime(): void {
    this.complete = false;
    this.stoppedBy = 'time-limit';
  }
}

/**
 * The order the parts run and merge in, level by level: `next` gets each level's merged state and gives the next
 * level's parts, or undefined when the search is over. Exhaustive levels are the preemption bounds (one level
 * without a bound); a sampling strategy has one level.
 */
export function* plan(r: Resolved, shared: Shared, merged: Merged, workers: number): Generator<PartSpec[]> {
  if (r.strategy !== 'exhaustive') {
    const chunks = Math.max(1, Math.min(workers, r.budget));
    const size = Math.ceil(r.budget / chunks);
    const parts: PartSpec[] = [];
    for (let first = 0; first < r.budget; first += size) {
      parts.push({ kind: 'sample', first, count: Math.min(size, r.budget - first) });
    }
    yield parts;
    return;
  }
  const bounds = r.preemptions === undefined ? [undefined] : Array.from({ length: r.preemptions + 1 }, (_, b) => b);
  for (const bound of bounds) {
    merged.boundHit = false;
    yield shared.root!.choices.map((_, index): PartSpec => ({ kind: 'subtree', bound, index }));
    if (!merged.complete || !merged.boundHit) return;
  }
}

/** The result, with each kind's best schedule minimised and replayed for its message. */
export function finish(source: () => Machine, r: Resolved, merged: Merged, bound: number | undefined): ExploreResult {
  const build = delivering(source, r);
  const o = { maxSteps: r.maxSteps, ipiDelivery: r.ipiDelivery, ...(r.check ? { check: r.check } : {}) };
  const violations = reportViolations(build, [...merged.best.values()], o);
  return {
    strategy: r.strategy,
    ...(r.strategy === 'exhaustive' ? { search: 'stateless' as const } : {}),
    executions: merged.runs,
    steps: merged.steps,
    complete: r.strategy === 'exhaustive' && merged.complete,
    distinctStates: merged.states.size,
    ...(bound === undefined ? {} : { preemptionBound: bound }),
    violations,
    ...stopReason(r, merged),
  };
}

/** What cut the search: the time limit, or the budget (a sampling search always ends at its budget). */
function stopReason(r: Resolved, merged: Merged): { stoppedBy?: StopReason } {
  const why = merged.stoppedBy ?? (r.strategy === 'exhaustive' ? undefined : 'budget');
  return why === undefined ? {} : { stoppedBy: why };
}

/** Progress reports at most every 64 executions, and at the end of each part. */
export function progressReporter(r: Resolved, merged: Merged) {
  if (!r.onProgress) return undefined;
  const report = r.onProgress;
  return (runs: number) => {
    if (runs % 64 === 0) report(merged.runs + runs, r.budget);
  };
}
