import type { IpiDelivery } from '../cpu/ipi-bus.ts';
import type { Machine } from '../machine/machine.ts';
import { checkContract } from './contract-check.ts';
import type { FinalCheck, StateInvariant } from './execution.ts';
import type { CacheScope } from './hardware-choices.ts';
import type { StopReason, Violation } from './options.ts';
import { reportViolations } from './replay.ts';
import type { SearchSnapshot } from './search-snapshot.ts';
import { StatefulSearch } from './stateful.ts';
import type { StatefulOptions, StatefulResult } from './stateful-result.ts';
import { collisionProbability } from './visited-set.ts';

// explore() with `search: 'stateful'`: the search on one machine from `build`, then the contract check on a sample
// of its paths, then each violation's schedule minimised and replayed for its message, as the stateless search's are.

/** How many paths the contract check runs again at most (taken at 64, 128, 256, ... states). */
const CONTRACT_SAMPLES = 16;

/** What explore() hands the stateful search (its options, checked). */
export interface StatefulExploreOptions {
  readonly maxSteps: number;
  readonly tlbEvents: number;
  readonly cacheEvents?: CacheScope;
  /** The IPI delivery the search's machines use: the counterexamples replay under it. */
  readonly ipiDelivery?: IpiDelivery;
  readonly check: FinalCheck | undefined;
  readonly invariant: StateInvariant | undefined;
  /** Whether TLB events that cannot make a difference are left out (tlb-event-reduction.ts). */
  readonly reduce: boolean;
  /** States to store at most. */
  readonly budget: number;
  /** Wall-clock milliseconds the search may take (explore's timeLimit), if any. */
  readonly timeLimit?: number | undefined;
  /** Stop at the first violation (explore's stopAtViolation). */
  readonly stopAtViolation?: boolean;
  readonly onProgress: ((states: number, budget: number) => void) | undefined;
  /** Keep the search if it stops with work left (the result's snapshot), and a saved search to take up. */
  readonly saveSearch?: boolean;
  readonly saveSearchEvery?:
    | { readonly seconds: number; readonly save: (snapshot: SearchSnapshot) => void }
    | undefined;
  readonly resume?: SearchSnapshot | undefined;
  /** Whether states leave dead words out (explore's deadWords); undefined: the search's default. */
  readonly deadWords?: boolean | undefined;
}

/** The stateful search's result, in explore()'s terms (explore.ts's ExploreResult). */
export interface StatefulExploreResult {
  readonly strategy: 'exhaustive';
  readonly search: 'stateful';
  readonly executions: number;
  readonly steps: number;
  readonly complete: boolean;
  /** What ended the search with work left: the budget of states (or the step bound), or the time limit. */
  readonly stoppedBy?: StopReason;
  readonly distinctStates: number;
  readonly violations: readonly Violation[];
  readonly states: number;
  readonly transitions: number;
  readonly depth: number;
  readonly visitedBytes: number;
  readonly collisionProbability: number;
  /** Worker threads the search ran on, when more than one. */
  readonly workers?: number;
  /** Whether the states left out dead words (popped, or in frames freed or copied away: memory-tracker.ts). */
  readonly deadWords: boolean;
  /** With dead words: whether copied-away frames' words stayed in the states (StatefulOptions.copiedLive). */
  readonly copiedLive?: boolean;
  /** Why they did not (a dead word was read, and the search ran again), when asked for. */
  readonly deadWordsOff?: string;
  /** With saveSearch, a search stopped with work left: what resume takes. */
  readonly snapshot?: SearchSnapshot;
}

export function exploreStateful(build: () => Machine, r: StatefulExploreOptions): StatefulExploreResult {
  const options = {
    ...statefulOptions(r),
    ...(r.saveSearch ? { keepSnapshot: true } : {}),
    ...(r.saveSearchEvery ? { saveEvery: { ms: r.saveSearchEvery.seconds * 1000, save: r.saveSearchEvery.save } } : {}),
    ...(r.resume === undefined ? {} : { resume: r.resume }),
  };
  const result = new StatefulSearch(build, options).run();
  const found = finishStateful(build, r, result);
  return result.snapshot === undefined ? found : { ...found, snapshot: result.snapshot };
}

/** The search's options for explore()'s (a worker of the parallel search adds its own). */
export function statefulOptions(r: StatefulExploreOptions, deadline?: number): StatefulOptions {
  const until = deadline ?? (r.timeLimit === undefined ? undefined : Date.now() + r.timeLimit);
  return {
    maxSteps: r.maxSteps,
    tlbEvents: r.tlbEvents,
    ...(r.cacheEvents === undefined ? {} : { cacheEvents: r.cacheEvents }),
    check: r.check,
    invariant: r.invariant,
    maxStates: r.budget,
    ...(until === undefined ? {} : { deadline: until }),
    ...(r.stopAtViolation ? { stopAtViolation: true } : {}),
    samples: CONTRACT_SAMPLES,
    reduction: r.reduce ? 'tlb-events' : 'none',
    ...(r.deadWords === undefined ? {} : { deadWords: r.deadWords }),
    ...(r.onProgress ? { progress: (states: number) => r.onProgress!(states, r.budget) } : {}),
  };
}

/** Why an incomplete search stopped. */
function stopReason(result: Pick<StatefulResult, 'timedOut' | 'stoppedAtViolation'>): StopReason {
  if (result.stoppedAtViolation) return 'violation';
  return result.timedOut ? 'time-limit' : 'budget';
}

/** What a stateful search (one process, threads, or the distributed search) hands finishStateful. */
export type StatefulFindings = Pick<
  StatefulResult,
  | 'samples'
  | 'violations'
  | 'finalStates'
  | 'transitions'
  | 'complete'
  | 'timedOut'
  | 'stoppedAtViolation'
  | 'states'
  | 'depth'
  | 'visitedBytes'
  | 'deadWords'
  | 'deadWordsOff'
> &
  Partial<Pick<StatefulResult, 'copiedLive'>>;

/** What the search found, in explore()'s terms: after the contract check, with each violation replayed. */
export function finishStateful(
  build: () => Machine,
  r: StatefulExploreOptions,
  result: StatefulFindings,
  workers = 1,
): StatefulExploreResult {
  checkContract(build, result.samples, result.deadWords, result.copiedLive ?? false);
  // The counterexamples replay under the delivery the search used (replay() defaults to 'scheduled': with an
  // 'immediate' search, a replayed schedule used to reach a run the search never had, and report its message).
  const o = {
    maxSteps: r.maxSteps,
    ...(r.ipiDelivery === undefined ? {} : { ipiDelivery: r.ipiDelivery }),
    ...(r.check ? { check: r.check } : {}),
    ...(r.invariant ? { invariant: r.invariant } : {}),
  };
  const violations = reportViolations(build, result.violations, o);
  return {
    strategy: 'exhaustive',
    search: 'stateful',
    executions: result.finalStates,
    steps: result.transitions,
    complete: result.complete,
    ...(result.complete ? {} : { stoppedBy: stopReason(result) }),
    distinctStates: result.finalStates,
    violations,
    states: result.states,
    transitions: result.transitions,
    depth: result.depth,
    visitedBytes: result.visitedBytes,
    collisionProbability: collisionProbability(result.states),
    ...(workers > 1 ? { workers } : {}),
    deadWords: result.deadWords,
    ...(result.copiedLive ? { copiedLive: true } : {}),
    ...(result.deadWordsOff === undefined ? {} : { deadWordsOff: result.deadWordsOff }),
  };
}
