import type { Outcome } from '../cpu/instruction.ts';
import type { Machine } from '../machine/machine.ts';
import type { ScheduleEntry } from '../machine/schedule.ts';

// One execution as every strategy sees it: its schedule, and what it ended in.

/** What a violation is: any outcome but ok, or the step bound reached with CPUs still able to move. */
export type ViolationKind = Exclude<Outcome, 'ok'> | 'step-bound';

/**
 * A check of the final machine (run when no CPU stopped and the step bound was not reached). It returns `true` when
 * the state is fine; `false` for an `assertion` violation with the generic message FAILED_CHECK; or a non-empty
 * string for an `assertion` violation whose message is that string (the reason). Anything else (undefined, '', a
 * number, a Promise) is refused with an InputError: a checker must not read a malformed answer as a verdict.
 */
export type FinalCheck = (machine: Machine) => boolean | string;

/** The message of a violation from a check that returned false. */
export const FAILED_CHECK = 'the final-state check failed';

export interface Execution {
  readonly schedule: readonly ScheduleEntry[];
  readonly kind: ViolationKind | undefined;
  readonly message: string | undefined;
}

/** The violation an ended run shows, if any: its outcome, else the step bound, else the user's check. */
export function classify(
  m: Machine,
  limitReached: boolean,
  check: FinalCheck | undefined,
): Omit<Execution, 'schedule'> {
  const outcome = m.outcome;
  if (outcome !== 'ok') return { kind: outcome, message: m.firstStop?.message ?? m.deadlockReport() };
  if (limitReached) return { kind: 'step-bound', message: undefined };
  const verdict = check === undefined ? true : check(m);
  if (verdict !== true) return { kind: 'assertion', message: verdict === false ? FAILED_CHECK : verdict };
  return { kind: undefined, message: undefined };
}

/**
 * Violations found so far, the shortest schedule per kind (the first found among equals), and every improvement
 * in the order found, so that a search split into parts merges to the same result as one search (see merge()).
 */
export class Findings {
  readonly best = new Map<ViolationKind, Execution>();
  /** [execution index, execution] for each time a kind's best changed. */
  readonly improvements: [number, Execution][] = [];

  note(index: number, run: Execution): void {
    if (run.kind === undefined) return;
    const best = this.best.get(run.kind);
    if (best && run.schedule.length >= best.schedule.length) return;
    this.best.set(run.kind, run);
    this.improvements.push([index, run]);
  }
}
