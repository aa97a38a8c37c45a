import type { FinalCheck, ViolationKind } from './execution.ts';

// What explore() takes and what it returns: its options and its verdict (a module below explore.ts and parts.ts,
// which both use them).

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
