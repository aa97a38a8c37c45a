import { parseSchedule } from '../../machine/schedule.ts';
import type { Execution, ViolationKind } from '../execution.ts';
import type { StatefulFindings } from '../stateful-explore.ts';
import { better, type FoundViolation, type LevelReport } from './level-search.ts';

// The coordinator's view of the level-by-level search (level-search.ts): the owners' reports summed level by level,
// the best violation per kind, and when to stop. The same whether the owners are in this process or behind a broker.

export interface LevelLimits {
  /** States to store at most (explore's budget). */
  readonly budget: number;
  readonly stopAtViolation: boolean;
  /** Date.now() time to stop at, checked between levels. */
  readonly deadline?: number;
}

/** What the search had done when it stopped, in the stateful search's result's terms. */
export type LevelResult = Omit<StatefulFindings, 'deadWordsOff'>;

export class LevelMerge {
  states = 0;
  transitions = 0;
  finalStates = 0;
  /** Levels done (the deepest state's path length + 1). */
  levels = 0;
  depthCut = false;
  deadRead = -1;
  /** Whether the dead word read was in a frame copied away (level-search.ts). */
  deadReadCopied = false;
  timedOut = false;
  private readonly best = new Map<ViolationKind, FoundViolation>();
  /** States sent for the next level (successors, counted at their senders). */
  sent = 0;

  constructor(private readonly limits: LevelLimits) {}

  /** One owner's report of one range for the level being done. */
  add(r: LevelReport): void {
    this.states += r.states;
    this.transitions += r.transitions;
    this.finalStates += r.finalStates;
    this.depthCut ||= r.depthCut;
    if (r.deadRead >= 0 && this.deadRead < 0) {
      this.deadRead = r.deadRead;
      this.deadReadCopied = r.deadReadCopied === true;
    }
    for (const v of r.violations) if (better(v, this.best.get(v.kind))) this.best.set(v.kind, v);
  }

  /** Whether to go on to the next level, given the states sent for it. */
  next(sent: number): boolean {
    this.levels++;
    this.sent = sent;
    if (this.deadRead >= 0) return false;
    if (sent === 0) return false;
    if (this.limits.stopAtViolation && this.best.size > 0) return false;
    if (this.states >= this.limits.budget) return false;
    if (this.limits.deadline !== undefined && Date.now() >= this.limits.deadline) {
      this.timedOut = true;
      return false;
    }
    return true;
  }

  /** The violations found, best per kind, in kind order (deterministic). */
  violations(): Execution[] {
    return [...this.best.values()]
      .sort((a, b) => (a.kind < b.kind ? -1 : 1))
      .map((v) => ({ schedule: parseSchedule(v.schedule), kind: v.kind, message: v.message }));
  }

  /** The result; complete when the last level sent nothing and no path met the step bound. */
  result(visitedBytes: number, deadWords: boolean, copiedLive = false): LevelResult {
    const stoppedAtViolation = this.limits.stopAtViolation && this.best.size > 0 && this.sent > 0;
    const complete = this.sent === 0 && !this.depthCut && !this.timedOut && this.deadRead < 0;
    return {
      samples: [],
      violations: this.violations(),
      finalStates: this.finalStates,
      transitions: this.transitions,
      complete,
      timedOut: this.timedOut,
      stoppedAtViolation,
      states: this.states,
      depth: Math.max(0, this.levels - 1),
      visitedBytes,
      deadWords,
      ...(copiedLive ? { copiedLive: true } : {}),
    };
  }
}
