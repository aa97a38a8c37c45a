import type { FinalCheck, StateInvariant, ViolationKind } from './execution.ts';
import { finish, Merged, plan, prepare, progressReporter, resolveOptions, runPart } from './parts.ts';
import { type Buildable, requireBuild } from './replay.ts';
import { exploreStateful } from './stateful-explore.ts';

// Exploring a machine's interleavings (DESIGN.md "Checking"). Programs are generators, which cannot be copied
// mid-run, so exploration is stateless: every execution builds the machine afresh from `build` and runs it under a
// strategy's choices: which CPU moves, which IPI in flight is delivered, and (within `tlbEvents`) a TLB entry
// dropped or filled by the hardware. Every execution's choices are a schedule string that `replay` runs again step
// for step; a violating schedule is minimised before it is reported.
//
// The work is split into parts (exhaustive: the subtree under each first choice, per preemption bound; sampling:
// ranges of executions), merged in order: so `workers` (parallel.ts) gives the same result as one process.

export type { FinalCheck, StateInvariant, ViolationKind } from './execution.ts';
export { type Buildable, type ReplayOptions, type ReplayResult, replay } from './replay.ts';
export { collisionProbability } from './visited-set.ts';

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
  /** Exhaustive: which search ran, `stateful` or `stateless`. */
  readonly search?: 'stateful' | 'stateless';
  /** Executions run; for the stateful search, the final states reached (each ends one run at least). */
  readonly executions: number;
  /**
   * Steps (and hardware events) taken over all executions, replays of a path's prefix included; for the stateful
   * search, its transitions.
   */
  readonly steps: number;
  /** Whether every interleaving within the bounds was run (never, for the sampling strategies). */
  readonly complete: boolean;
  /** Distinct final states reached (memory written, CPU states and registers, outcome). */
  readonly distinctStates: number;
  /** Exhaustive with `preemptions`: the bound the search reached (it stops early when no choice needed more). */
  readonly preemptionBound?: number;
  /** One per kind found, shortest first. */
  readonly violations: readonly Violation[];
  /** Stateful: the distinct states reached (each stored once, as a 64-bit fingerprint). */
  readonly states?: number;
  /** Stateful: choices taken, each to a new state or to one seen before. */
  readonly transitions?: number;
  /** Stateful: the longest path held by the depth-first search. */
  readonly depth?: number;
  /** Stateful: bytes of the visited set (at most 16 per state). */
  readonly visitedBytes?: number;
  /**
   * Stateful: the probability that two of the states reached share a fingerprint, so that one was taken for the
   * other and its successors were not explored: about states^2 / 2^65.
   */
  readonly collisionProbability?: number;
}

export type Strategy = 'exhaustive' | 'random' | 'pct';

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
  /**
   * Exhaustive: `stateless` (default: every execution from the start, DPOR, an optional preemption bound) or
   * `stateful` (every reachable state once, with a visited set of fingerprints: complete with no bound; `budget`
   * then counts states, default 10,000,000). See docs/checker.md "The stateful search".
   */
  readonly search?: 'stateful' | 'stateless';
  /** Stateful: a predicate on every state reached; false is an `invariant` violation. */
  readonly invariant?: StateInvariant;
  /** Called as executions complete (not more often than every 64), e.g. to drive a progress bar. */
  readonly onProgress?: (executions: number, budget: number) => void;
}

/**
 * Explores `build`'s machine under many schedules. `build` must make the same machine every time (same programs,
 * same set-up): exploration re-runs it from scratch for every execution.
 */
export function explore(source: Buildable, options: ExploreOptions = {}): ExploreResult {
  const build = requireBuild(source, 'explore', true);
  const r = resolveOptions(options);
  if (r.strategy === 'exhaustive' && r.search === 'stateful') return exploreStateful(build, r);
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
