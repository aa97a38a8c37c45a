import type { Machine } from '../machine/machine.ts';
import type { ScheduleEntry } from '../machine/schedule.ts';
import type { Execution, FinalCheck, StateInvariant } from './execution.ts';
import type { CacheScope } from './hardware-choices.ts';
import type { ProgramStates } from './programs.ts';
import type { SearchSnapshot } from './search-snapshot.ts';
import type { SharedStateSet } from './shared-state-set.ts';

// What the stateful search (stateful.ts) is asked, and what it answers: its options, its result, and the paths it
// keeps for the contract check (contract-check.ts).

export interface StatefulOptions {
  readonly maxSteps: number;
  readonly tlbEvents: number;
  /** Which TLB and paging-structure-cache events are offered (hardware-choices.ts); default `held`. */
  readonly cacheEvents?: CacheScope;
  readonly check: FinalCheck | undefined;
  readonly invariant: StateInvariant | undefined;
  /** States to store at most; the search is incomplete when it stops there. */
  readonly maxStates: number;
  /**
   * When to stop, as a Date.now() time (explore's timeLimit): the search is then incomplete. The wall clock is read
   * by the search, never by the model, every 1,024 transitions.
   */
  readonly deadline?: number;
  /** Stop at the first violation found (explore's stopAtViolation). */
  readonly stopAtViolation?: boolean;
  /** Paths kept for the contract check at most, taken when 64, 128, 256, ... states have been reached. */
  readonly samples: number;
  readonly progress?: (states: number) => void;
  /** A search saved when it stopped (search-snapshot.ts): take it up where it stopped. */
  readonly resume?: SearchSnapshot;
  /**
   * A path to go down first: while the search is on it, its next entry goes first among a state's steps and
   * deliveries. The search run again after a dead word was read takes the path that read it first (a real
   * execution, and where the search with dead words had got to). Only the order changes, never what is searched.
   */
  readonly first?: readonly ScheduleEntry[];
  /** Save the search if it stops with work left (the result's `snapshot`). */
  readonly keepSnapshot?: boolean;
  /**
   * Hand the search as it stands to `save` every `ms` milliseconds (wall clock, read with the deadline), so that a
   * long search killed on the way can be taken up from the last save. The snapshot shares the live visited table:
   * `save` must be done with it before it returns.
   */
  readonly saveEvery?: { readonly ms: number; readonly save: (snapshot: SearchSnapshot) => void };
  /**
   * How the search goes back to a state on its path: `checkpoint` (undo log and checkpoints; the default) or
   * `replay`, building the machine again and taking the path's choices from the start, as the stateless search
   * does (kept to measure the one against the other: bench/stateful.mjs).
   */
  readonly restore?: 'checkpoint' | 'replay';
  /**
   * `tlb-events` (the default): TLB events that cannot make a difference are not offered (tlb-event-reduction.ts);
   * `none`: every TLB event at every state, as the other strategies offer them.
   */
  readonly reduction?: 'tlb-events' | 'none';
  /**
   * Whether a word a stack pop read is dead until written, its value left out of the state (memory-tracker.ts);
   * default: unless `reduction` is `none`. A search that sees a dead word read runs again without.
   */
  readonly deadWords?: boolean;
  /**
   * With dead words: a frame a migration copied away keeps its words in the state until it is freed
   * (memory-tracker.ts). Default false, or a resumed search's; a search that read a word of a copied-away frame runs
   * again with it true (a CPU still translating to the old frame read it), keeping the other dead words.
   */
  readonly copiedLive?: boolean;
  /**
   * Called at each final state (the soundness harness collects them: test/explore/fixtures/soundness.ts), with the
   * search's program states (which tell what each CPU would do next: stutter-step.ts).
   */
  readonly onFinal?: (m: Machine, programs: ProgramStates) => void;
  /**
   * As one worker of the parallel search (stateful-parallel.ts): the set of finished states the workers share,
   * and this worker's number, which turns the order it takes each state's steps and deliveries (so that workers
   * start apart).
   */
  readonly shared?: SharedStateSet;
  readonly worker?: number;
}

/** A path the contract check runs again: its entries and, per depth, the fingerprint and its parts. */
export interface Sample {
  readonly entries: readonly ScheduleEntry[];
  /** Fingerprint lanes per depth (0: the initial state), two per depth. */
  readonly fingerprints: Int32Array;
  /** TLB events left per depth. */
  readonly tlbLeft: Int32Array;
  /** The fingerprint's parts per depth (see MachineState.partNames). */
  readonly parts: readonly Int32Array[];
}

export interface StatefulResult {
  /** Distinct states reached (stored in the visited set). */
  readonly states: number;
  /** Choices taken: each leads to a new state or to one seen before. */
  readonly transitions: number;
  /** The longest path the search held (its depth-first stack). */
  readonly depth: number;
  /** States where the run ends (no choice left, or a CPU stopped). */
  readonly finalStates: number;
  /** Per kind, the violation reached by the shortest path found. */
  readonly violations: readonly Execution[];
  /** Every reachable state was visited (not cut by maxStates, maxSteps or the deadline). */
  readonly complete: boolean;
  /** The deadline cut the search. */
  readonly timedOut: boolean;
  /** The search stopped at its first violation (stopAtViolation). */
  readonly stoppedAtViolation: boolean;
  readonly visitedBytes: number;
  readonly samples: readonly Sample[];
  /** Program outcomes computed (cache misses), generators made again, generator resumes. */
  readonly programOutcomes: number;
  readonly generatorsRemade: number;
  readonly generatorResumes: number;
  /** Memory's hash as built: a re-run starts from it. */
  readonly initialMemory: readonly [number, number];
  /** With `restore: 'replay'`: the restores made by replay, and the steps they took. */
  readonly replays: number;
  readonly replayedSteps: number;
  /** The reduction the result stands on: `tlb-events`, or `none` (asked for, or turned off: see reductionOff). */
  readonly reduction: 'tlb-events' | 'none';
  /** Why the TLB-event reduction was asked for and not used (the search ran without it), if it was. */
  readonly reductionOff?: string;
  /** Whether the result stands on dead words (left out of states: memory-tracker.ts). */
  readonly deadWords: boolean;
  /** With dead words: whether copied-away frames' words stayed in the states (StatefulOptions.copiedLive). */
  readonly copiedLive: boolean;
  /** Why dead words were asked for and not used (a dead word was read: the search ran again without), if so. */
  readonly deadWordsOff?: string;
  /** As a worker: the physical address of a dead word read, or -1 (the result does not stand). */
  readonly deadRead: number;
  /** Whether the frame of that word was one a migration copied away (a search with copiedLive need not drop all). */
  readonly deadReadCopied: boolean;
  /** The path to the step (or check) that read it: a schedule that replays to that read. */
  readonly deadReadSchedule?: string;
  /** With keepSnapshot, a search that stopped with work left: the snapshot to resume it from. */
  readonly snapshot?: SearchSnapshot;
  /**
   * New states by the kind of choice that reached them: CPU steps, deliveries, evictions and fills (of the TLB or a
   * paging-structure cache), store-buffer drains.
   */
  readonly statesBy: {
    readonly step: number;
    readonly delivery: number;
    readonly eviction: number;
    readonly fill: number;
    readonly drain: number;
  };
  /** States reached with no TLB event left. */
  readonly statesWithoutEvents: number;
  /** TLB events the reduction left out: evictions and fills at states, fills a choice did not change. */
  readonly eventsLeftOut: number;
  /** States reached and cut because the same state with more TLB events left was visited. */
  readonly subsumed: number;
  /** As a worker of the parallel search: whether it finished the initial state, and whether a path hit maxSteps. */
  readonly rootFinished: boolean;
  readonly depthCut: boolean;
  /**
   * As a worker: a TLB set came too close to full for the TLB-event reduction, so its result does not stand and
   * the search must run again without it (alone, the search does that itself).
   */
  readonly reductionOverflowed: boolean;
}
