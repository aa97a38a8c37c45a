import type { Escalation } from './exceptions.ts';
import type { IpiMode, Outcome } from './instruction.ts';

/** Lifecycle of a CPU as the scheduler sees it. */
export type CpuState = 'running' | 'halted' | 'blocked' | 'shutdown' | 'stopped';

/**
 * One exception raised in a step, in order. The first is the instruction's fault or the interrupt accepted; each
 * later one was raised while delivering the one before it (`during`).
 * - `delivered`: its frame was pushed and its handler started;
 * - `gate-fault`: its IDT gate or the gate's code segment raised the next entry (a missing or not-present gate,
 *   an INT n through a gate of lower DPL, a bad selector);
 * - `frame-fault`: pushing its frame raised the next entry;
 * - `double-fault`, `triple-fault`: SDM Table 6-5 turned this fault, raised during delivery, into #DF (the next
 *   entry) or a shutdown. A fault raised during delivery that the table handles serially is simply delivered
 *   (or frame-faults) itself, with `during` set.
 */
export interface ExceptionEvent {
  readonly vector: number;
  readonly name: string;
  readonly errorCode: number;
  /** CR2 for a #PF (model address form). */
  readonly cr2?: number;
  /** Vector whose delivery raised this one. */
  readonly during?: number;
  readonly outcome: 'delivered' | 'gate-fault' | 'frame-fault' | Exclude<Escalation, 'serial'>;
  /** Stack the frame went to: `ist1`..`ist7`, `rsp0` or `current` (delivered events only). */
  readonly stack?: string;
  /** RSP after the frame push (delivered events only). */
  readonly rsp?: number;
}

/** Why a CPU stopped: a kernel die()/panic, a failed assertion, stack corruption, or a triple fault. */
export interface StopEvent {
  readonly outcome: Exclude<Outcome, 'ok'>;
  readonly message: string;
}

/**
 * One step of one CPU (DESIGN.md: every step emits a trace event). Fields that do not apply are undefined (every
 * event has the same shape, which keeps tracing cheap); JSON output omits them.
 */
export interface StepEvent {
  /** Machine-wide step number, from 0. */
  readonly step: number;
  readonly cpu: number;
  /** RIP of the instruction (or of the interrupted instruction for an accepted interrupt). */
  readonly rip: number;
  /**
   * Mnemonic: an instruction name, `interrupt` (an IPI or NMI accepted), `exit` (the task program returned and the
   * CPU idles), `idle` (a halted CPU stepped with nothing to accept), or `deliver` (not a step: an IPI in flight
   * reached this CPU's IRR before step `step`).
   */
  readonly op: string;
  readonly va?: number | undefined;
  readonly pa?: number | undefined;
  readonly size?: number | undefined;
  /** Value stored, loaded, pushed or popped. */
  readonly value?: number | undefined;
  readonly tlb?: 'hit' | 'miss' | undefined;
  readonly exceptions?: readonly ExceptionEvent[] | undefined;
  /** An IPI sent (op `send-ipi`: its targets) or delivered (op `deliver`: the target, and `from`, its sender). */
  readonly ipi?:
    | { readonly to: readonly number[]; readonly vector: number; readonly mode: IpiMode; readonly from?: number }
    | undefined;
  readonly accepted?: { readonly vector: number; readonly nmi: boolean } | undefined;
  readonly stop?: StopEvent | undefined;
  /** The CPU's state after the step. */
  readonly state: CpuState;
}

/**
 * The concrete step event. A class with every field assigned in its constructor allocates inline; a 15-field
 * object literal went through V8's slow literal path and cost more than the step it described.
 */
export class StepRecord implements StepEvent {
  constructor(
    readonly step: number,
    readonly cpu: number,
    readonly rip: number,
    readonly op: string,
    readonly va: number | undefined,
    readonly pa: number | undefined,
    readonly size: number | undefined,
    readonly value: number | undefined,
    readonly tlb: 'hit' | 'miss' | undefined,
    readonly exceptions: readonly ExceptionEvent[] | undefined,
    readonly ipi: StepEvent['ipi'],
    readonly accepted: StepEvent['accepted'],
    readonly stop: StopEvent | undefined,
    readonly state: CpuState,
  ) {}
}
