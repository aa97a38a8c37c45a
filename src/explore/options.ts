import type { IpiDelivery } from '../cpu/ipi-bus.ts';
import type { FinalCheck, StateInvariant, ViolationKind } from './execution.ts';
import type { SearchSnapshot } from './search-snapshot.ts';

// What explore() takes and what it returns: its options and its verdict (a module below explore.ts and parts.ts,
// which both use them).

export interface Violation {
  readonly kind: ViolationKind;
  /** The shortest schedule found for this kind, minimised: `replay(build, schedule)` reproduces it. */
  readonly schedule: string;
  /**
   * Entries in the schedule (CPU steps and hardware events, `1*3` counting 3): not the steps the run takes, which
   * include the completion after the schedule.
   */
  readonly scheduleLength: number;
  /**
   * @deprecated Use `scheduleLength`: this counts schedule entries, not machine steps (as `ExploreResult.steps`
   * does). The same value; kept because 0.1 documented it, to be removed in 0.2.
   */
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
  /** Stateful, with `workers` (parallel.ts): the worker threads it ran on. */
  readonly workers?: number;
  /**
   * Stateful, with `saveSearch`, when the search stopped with work left (budget or time limit): the search as it
   * stood, for `resume` (search-snapshot.ts; the CLI writes it with --save-search).
   */
  readonly snapshot?: SearchSnapshot;
  /**
   * Stateful: whether states left out dead words (read by a stack pop, or in a frame freed or copied away, and not
   * written since: what lies below a stack pointer, or in a page no one holds), which nothing read
   * (memory-tracker.ts).
   */
  readonly deadWords?: boolean;
  /**
   * Stateful: true when the words of frames a migration copied away stayed in the states (a CPU still translating
   * to such a frame read one, and the search ran again so: the other dead words stayed out).
   */
  readonly copiedLive?: boolean;
  /**
   * Stateful: why they did not, when a dead word was read (the search then ran again with every word, or with the
   * words of copied-away frames).
   */
  readonly deadWordsOff?: string;
  /**
   * What ended the search while it had work left: `budget` (the execution budget was used up: always, for the
   * sampling strategies, which never run out of work), `time-limit` (the `timeLimit` ran out first), or absent
   * when the search ran out of work (an exhaustive search that is `complete`).
   */
  readonly stoppedBy?: StopReason;
}

/** Why a search stopped with work left (see ExploreResult.stoppedBy). */
export type StopReason = 'budget' | 'time-limit' | 'violation';

export type Strategy = 'exhaustive' | 'random' | 'pct';

export interface ExploreOptions {
  /**
   * `exhaustive` (every interleaving, with DPOR or the stateful search), `random` (uniform choice) or `pct`
   * (Burckhardt et al.: random priorities with d - 1 change points). Default `random`.
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
  /** A check of the final machine: true (ok), false or a non-empty reason string (an `assertion`); see FinalCheck. */
  readonly check?: FinalCheck;
  /**
   * TLB and paging-structure-cache events (evictions and speculative fills: the hardware's freedom) an execution may
   * choose. Default 0. Store-buffer drains are not counted: they are offered while a buffer holds a store.
   */
  readonly tlbEvents?: number;
  /**
   * Which cache events are offered within `tlbEvents`: `held` (default) evictions of the 4 KiB TLB entries and
   * paging-structure-cache entries a CPU holds, and fills of 4 KiB pages another CPU holds; `mapped` adds evictions
   * of 2 MiB and 1 GiB entries, speculative fills of every translation present through the CPU's CR3 (any page
   * size), and paging-structure-cache fills of every present upper entry (SDM §4.10.2.3, §4.10.3.1). See
   * docs/checker.md "What the checker explores".
   */
  readonly cacheEvents?: 'held' | 'mapped';
  /** Exhaustive: preemptions an execution may take, searched with bound 0, 1, ... up to this. Default: no bound. */
  readonly preemptions?: number;
  /**
   * Exhaustive. Stateless: `dpor` (default) or `none`, every choice at every point (to measure what DPOR saves).
   * Stateful: `tlb-events` (default: TLB events that cannot make a difference are not offered; see docs/checker.md
   * "What complete means") or `none`, every TLB event at every state.
   */
  readonly reduction?: 'dpor' | 'tlb-events' | 'none';
  /**
   * When a sent IPI reaches its target, whatever the machine was made with: `scheduled` (default; in flight until a
   * delivery, which is a choice like a step) or `immediate` (in the sending step, which hides the window between the
   * ICR write and the target's IRR). `replay` takes the same option, with the same default.
   */
  readonly ipiDelivery?: IpiDelivery;
  /**
   * Exhaustive: `stateless` (default: every execution from the start, DPOR, an optional preemption bound) or
   * `stateful` (every reachable state once, with a visited set of fingerprints: complete with no bound; `budget`
   * then counts states, default 10,000,000). See docs/checker.md "The stateful search".
   */
  readonly search?: 'stateful' | 'stateless';
  /** Stateful: a predicate on every state reached; false is an `invariant` violation. */
  readonly invariant?: StateInvariant;
  /**
   * Wall-clock milliseconds the search may take, beside the execution budget: once they have passed, no new
   * execution starts, the result says `stoppedBy: 'time-limit'`, and an exhaustive result is not `complete`. The
   * model stays deterministic (the limit only decides when to stop, and a search it does not cut gives exactly
   * the result it gives without one), but where a search is cut depends on the machine's speed: a time-limited
   * result is not reproducible. Minimising the violations found is not limited. Default: none.
   */
  readonly timeLimit?: number;
  /**
   * The stateful exhaustive search only: stop at the first violation found (the result is not `complete`, says
   * `stoppedBy: 'violation'`, and its violation's schedule is the path that reached it, not the shortest). For
   * questions that need one counterexample, not all kinds (`x86slice mutate`). Default false.
   */
  readonly stopAtViolation?: boolean;
  /** Called as executions complete (not more often than every 64), e.g. to drive a progress bar. */
  readonly onProgress?: (executions: number, budget: number) => void;
  /**
   * The stateful exhaustive search on one thread: keep the search as it stands when it stops with work left (the
   * budget or the time limit), as the result's `snapshot`, so that a later run can take it up (`resume`).
   */
  readonly saveSearch?: boolean;
  /**
   * The stateful exhaustive search on one thread: call `save` with the search as it stands every `seconds` (wall
   * clock; a fraction is allowed), so that a long search that is killed can be taken up from the last one
   * (`resume`). The snapshot shares the search's live visited table: `save` must be done with it (e.g. have
   * written it) before it returns.
   */
  readonly saveSearchEvery?: { readonly seconds: number; readonly save: (snapshot: SearchSnapshot) => void };
  /**
   * The stateful exhaustive search on one thread: take up the search saved in this snapshot where it stopped, with
   * the same machine and options (a mismatch is refused, naming it). `budget` counts the states of both runs. The
   * result of a search resumed until complete is that of one search run to its end.
   */
  readonly resume?: SearchSnapshot;
  /**
   * The stateful exhaustive search: leave words a stack pop read (and frames freed or copied away) out of the state
   * until something writes them (memory-tracker.ts). Default true (false with `reduction: 'none'`). A search that
   * reads such a word anyway starts again with every word (the result's `deadWordsOff` says where): false starts
   * with every word, for a long search known to read one (it saves the first run). A resumed search takes the
   * setting of the search it resumes unless this is given.
   */
  readonly deadWords?: boolean;
}
