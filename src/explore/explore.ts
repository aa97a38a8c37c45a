import type { Machine } from '../machine/machine.ts';
import { formatSchedule } from '../machine/schedule.ts';
import { InputError, requireInteger, requireOneOf, requireOptions } from '../mmu/input-error.ts';
import type { Execution, FinalCheck, ViolationKind } from './execution.ts';
import { exploreRoot, type PartResult, PartSearch, type Root } from './exhaustive.ts';
import { type Buildable, minimise, replay, requireBuild, requireCheck } from './replay.ts';
import { probeLength, type SamplingOptions, samplePart } from './sampling.ts';

// Exploring a machine's interleavings (DESIGN.md "Checking"). Programs are generators, which cannot be copied
// mid-run, so exploration is stateless: every execution builds the machine afresh from `build` and runs it under a
// strategy's choices: which CPU moves, which IPI in flight is delivered, and (within `tlbEvents`) a TLB entry
// dropped or filled by the hardware. Every execution's choices are a schedule string that `replay` runs again step
// for step; a violating schedule is minimised before it is reported.
//
// The work is split into parts (exhaustive: the subtree under each first choice, per preemption bound; sampling:
// ranges of executions), merged in order: so `workers` (parallel.ts) gives the same result as one process.

export type { FinalCheck, ViolationKind } from './execution.ts';
export { type Buildable, type ReplayOptions, type ReplayResult, replay } from './replay.ts';

export interface Violation {
  readonly kind: ViolationKind;
  /** The shortest schedule found for this kind, minimised: `replay(build, schedule)` reproduces it. */
  readonly schedule: string;
  /** Entries (steps and events) in the schedule. */
  readonly steps: number;
  /** The stop event's message, when a CPU stopped. */
  readonly message?: string;
}

export interface ExploreResult {
  readonly strategy: Strategy;
  readonly executions: number;
  /** Steps (and hardware events) taken over all executions, replays of a path's prefix included. */
  readonly steps: number;
  /** Whether every interleaving within the bounds was run (never, for the sampling strategies). */
  readonly complete: boolean;
  /** Distinct final states reached (memory written, CPU states and registers, outcome). */
  readonly distinctStates: number;
  /** Exhaustive with `preemptions`: the bound the search reached (it stops early when no choice needed more). */
  readonly preemptionBound?: number;
  /** One per kind found, shortest first. */
  readonly violations: readonly Violation[];
}

export type Strategy = 'exhaustive' | 'random' | 'pct';
const STRATEGIES: readonly Strategy[] = ['exhaustive', 'random', 'pct'];

export interface ExploreOptions {
  /**
   * `exhaustive` (every interleaving, with DPOR and sleep sets), `random` (uniform choice) or `pct` (Burckhardt et
   * al.: random priorities with d - 1 change points). Default `random`.
   */
  readonly strategy?: Strategy;
  /** Executions to run at most. Default 200 for the sampling strategies, 100,000 for exhaustive. */
  readonly budget?: number;
  /** PRNG seed: the same seed, the same executions. Default 1. */
  readonly seed?: number;
  /** Steps an execution may take before it counts as a `step-bound` violation. Default 10,000. */
  readonly maxSteps?: number;
  /** PCT's depth d (bug depth it targets). Default 3. */
  readonly depth?: number;
  /** A predicate on the final machine; false is an `assertion` violation. */
  readonly check?: FinalCheck;
  /** TLB evictions and speculative fills an execution may choose (the hardware's freedom). Default 0. */
  readonly tlbEvents?: number;
  /** Exhaustive: preemptions an execution may take, searched with bound 0, 1, ... up to this. Default: no bound. */
  readonly preemptions?: number;
  /** Exhaustive: `dpor` (default) or `none`, every choice at every point (to measure what DPOR saves). */
  readonly reduction?: 'dpor' | 'none';
  /** Called as executions complete (not more often than every 64), e.g. to drive a progress bar. */
  readonly onProgress?: (executions: number, budget: number) => void;
}

const OPTION_KEYS = [
  'strategy',
  'budget',
  'seed',
  'maxSteps',
  'depth',
  'check',
  'tlbEvents',
  'preemptions',
  'reduction',
  'onProgress',
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
  readonly preemptions: number | undefined;
  readonly reduce: boolean;
  readonly onProgress: ((executions: number, budget: number) => void) | undefined;
}

export function resolveOptions(options: ExploreOptions): Resolved {
  const o = requireOptions<ExploreOptions>(options, 'explore options', OPTION_KEYS);
  const strategy = o.strategy === undefined ? 'random' : requireOneOf(o.strategy, 'explore strategy', STRATEGIES);
  const defaultBudget = strategy === 'exhaustive' ? 100_000 : 200;
  if (strategy !== 'exhaustive') {
    for (const key of ['preemptions', 'reduction'] as const) {
      if (o[key] !== undefined) throw new InputError(`explore ${key} applies to strategy exhaustive, not ${strategy}`);
    }
  }
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
    preemptions:
      o.preemptions === undefined ? undefined : requireInteger(o.preemptions, 'explore preemptions', 0, 1000),
    reduce:
      o.reduction === undefined ? true : requireOneOf(o.reduction, 'explore reduction', ['dpor', 'none']) === 'dpor',
    onProgress: o.onProgress,
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

export function prepare(build: () => Machine, r: Resolved): Shared {
  if (r.strategy === 'exhaustive') return { root: exploreRoot(build, r.tlbEvents) };
  return { length: r.strategy === 'pct' ? probeLength(build, r.maxSteps) : 0 };
}

export function runPart(
  build: () => Machine,
  r: Resolved,
  shared: Shared,
  spec: PartSpec,
  budget: number,
  progress?: (runs: number) => void,
): PartResult {
  if (spec.kind === 'subtree') {
    const o = { ...r, preemptions: spec.bound, budget, ...(progress ? { progress } : {}) };
    return new PartSearch(build, o, shared.root!, spec.index).run();
  }
  const o: SamplingOptions = {
    strategy: r.strategy as 'random' | 'pct',
    seed: r.seed,
    depth: r.depth,
    length: shared.length ?? 0,
    maxSteps: r.maxSteps,
    tlbEvents: r.tlbEvents,
    check: r.check,
  };
  return samplePart(build, o, spec.first, Math.min(spec.count, budget), progress);
}

/** Parts merged in order, each cut at the budget left: the same totals whatever ran them, and in what order. */
export class Merged {
  runs = 0;
  steps = 0;
  complete = true;
  boundHit = false;
  readonly states = new Set<string>();
  readonly best = new Map<ViolationKind, Execution>();

  constructor(readonly budget: number) {}

  /** Adds the next part; false when the budget ran out in it (the search stops there). */
  add(part: PartResult): boolean {
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
      return false;
    }
    this.boundHit ||= part.boundHit;
    return true;
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
export function finish(build: () => Machine, r: Resolved, merged: Merged, bound: number | undefined): ExploreResult {
  const o = { maxSteps: r.maxSteps, ...(r.check ? { check: r.check } : {}) };
  const violations = [...merged.best.values()]
    .map((v): Violation => {
      const entries = minimise(build, v.schedule, v.kind!, o);
      const again = replay(build, entries, o);
      return {
        kind: v.kind!,
        schedule: formatSchedule(entries),
        steps: entries.length,
        ...(again.message === undefined ? {} : { message: again.message }),
      };
    })
    .sort((a, b) => a.steps - b.steps || a.kind.localeCompare(b.kind));
  return {
    strategy: r.strategy,
    executions: merged.runs,
    steps: merged.steps,
    complete: r.strategy === 'exhaustive' && merged.complete,
    distinctStates: merged.states.size,
    ...(bound === undefined ? {} : { preemptionBound: bound }),
    violations,
  };
}

/** Progress reports at most every 64 executions, and at the end of each part. */
function progressReporter(r: Resolved, merged: Merged) {
  if (!r.onProgress) return undefined;
  const report = r.onProgress;
  return (runs: number) => {
    if (runs % 64 === 0) report(merged.runs + runs, r.budget);
  };
}

/**
 * Explores `build`'s machine under many schedules. `build` must make the same machine every time (same programs,
 * same set-up): exploration re-runs it from scratch for every execution.
 */
export function explore(source: Buildable, options: ExploreOptions = {}): ExploreResult {
  const build = requireBuild(source, 'explore', true);
  const r = resolveOptions(options);
  const shared = prepare(build, r);
  const merged = new Merged(r.budget);
  let bound: number | undefined;
  for (const parts of plan(r, shared, merged, 1)) {
    for (const spec of parts) {
      if (spec.kind === 'subtree') bound = spec.bound;
      const part = runPart(build, r, shared, spec, r.budget - merged.runs, progressReporter(r, merged));
      const more = merged.add(part);
      r.onProgress?.(merged.runs, r.budget);
      if (!more) break;
    }
  }
  return finish(build, r, merged, bound);
}
