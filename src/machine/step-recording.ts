import createDebug from 'debug';
import type { Cpu } from '../cpu/cpu.ts';
import type { StepEvent, StopEvent } from '../cpu/step-event.ts';
import { describeStep } from '../cpu/step-format.ts';
import { formatVirtual } from '../mmu/address.ts';
import { Footprint } from '../mmu/footprint.ts';
import { TraceLog } from './trace-log.ts';

// One step of a machine and what it records: the step's number, the first CPU to stop, the trace, the footprint
// and the debug logs. Machine extends SteppedMachine, so Machine.step() and the run loops (run-loops.ts) call
// these as methods of the machine: V8 then inlines the small unrecorded and traced steps into the run loops with
// no check of the call's target (docs/architecture.md "Cost of a step").

const log = {
  cpu: createDebug('x86slice:cpu'),
  mmu: createDebug('x86slice:mmu'),
};

/** The first CPU that stopped with an event, and at which step. */
export type FirstStop = StopEvent & { readonly cpu: number; readonly step: number };

/** What a run's steps record (recordingMode): nothing, the trace only, or everything through stepObserved. */
const RECORD_NOTHING = 0;
const RECORD_TRACE = 1;
const RECORD_ALL = 2;

/** Whether steps build their event: for the trace, or for the debug logs. */
export function stepsObserved(trace: boolean): boolean {
  return trace || log.cpu.enabled || log.mmu.enabled;
}

/** A machine as its steps see it: the step count, the first stop, and what each step records. */
export class SteppedMachine {
  /** The recorded steps, when tracing is on (see `trace`). */
  readonly traceLog: TraceLog;
  /** Footprint of the last step, when footprints are on (config `footprint`, or recordFootprints()). */
  footprint: Footprint | undefined;
  /** Steps taken since creation. */
  stepCount = 0;
  /** The first CPU that stopped with an event. */
  firstStop: FirstStop | undefined;
  /** Steps are recorded in `traceLog` (config `trace`). */
  private readonly traced: boolean;
  /** One-step log for debug output when tracing is off. */
  private readonly logScratch = new TraceLog();

  protected constructor(config: {
    readonly trace: boolean;
    readonly traceLimit: number | undefined;
    readonly footprint: boolean;
  }) {
    this.traced = config.trace;
    this.traceLog = new TraceLog(config.traceLimit);
    this.footprint = config.footprint ? new Footprint() : undefined;
  }

  /** Back to no steps taken, nothing recorded (a machine image's reset). */
  protected resetSteps(): void {
    if (this.traceLog.length !== 0) this.traceLog.clear();
    if (this.logScratch.length !== 0) this.logScratch.clear();
    this.footprint?.clear();
    this.stepCount = 0;
    this.firstStop = undefined;
  }

  /**
   * Internal (run-loops.ts): what the steps of a run record, decided once per run (debug's `enabled` is a getter
   * worth not calling).
   */
  recordingMode(observe: boolean): number {
    if (this.footprint !== undefined || log.cpu.enabled || log.mmu.enabled) return RECORD_ALL;
    return observe ? RECORD_TRACE : RECORD_NOTHING;
  }

  /** Internal (run-loops.ts): one step of a run loop, recording what `mode` (from recordingMode()) says. */
  stepRecording(cpu: Cpu, mode: number, observe: boolean): void {
    if (mode === RECORD_NOTHING) this.stepUnrecorded(cpu);
    else if (mode === RECORD_TRACE) this.stepTraced(cpu);
    else this.stepObserved(cpu, observe);
  }

  /** A step of a checked CPU; `observe` builds the event (tracing or debug logging), returned if `wanted`. */
  protected stepObserved(cpu: Cpu, observe: boolean, wanted = false): StepEvent | undefined {
    if (!observe && this.footprint === undefined) return this.stepUnrecorded(cpu);
    const rip = observe ? cpu.rip : 0;
    const rsp = observe ? cpu.regs.rsp : 0;
    if (this.footprint) this.footprint.clear();
    try {
      cpu.step();
    } catch (error) {
      // Program code threw (a failed expect): the CPU stopped, and the run's outcome must say so.
      this.countStep(cpu);
      throw error;
    }
    const step = this.countStep(cpu);
    if (!observe) return undefined;
    const logging = log.cpu.enabled || log.mmu.enabled;
    const event = this.describe(cpu, step, rip, rsp, wanted || logging);
    if (event && log.cpu.enabled) log.cpu('#%d cpu%d %s %s', step, cpu.id, formatVirtual(rip), describeStep(event));
    if (event && log.mmu.enabled && event.tlb === 'miss') {
      log.mmu('cpu%d TLB miss %s -> walk', cpu.id, describeStep(event));
    }
    return event;
  }

  /** A traced step with no footprint or debug log to feed: the run loops' second fast case. */
  private stepTraced(cpu: Cpu): void {
    const rip = cpu.rip;
    const rsp = cpu.regs.rsp;
    try {
      cpu.step();
    } catch (error) {
      this.countStep(cpu);
      throw error;
    }
    this.traceLog.appendStep(cpu, this.countStep(cpu), rip, rsp);
  }

  /** A step with nothing to record: small, so the run loops inline it. */
  private stepUnrecorded(cpu: Cpu): undefined {
    // A program that threw (a failed expect) stopped its CPU; the step still counts, so the outcome says so.
    try {
      cpu.step();
    } catch (error) {
      this.countStep(cpu);
      throw error;
    }
    this.countStep(cpu);
    return undefined;
  }

  /** Numbers the step just taken and records the first CPU to stop. */
  private countStep(cpu: Cpu): number {
    const step = this.stepCount++;
    if (cpu.stopEvent !== undefined) this.noteStop(cpu, step);
    return step;
  }

  /** Records `cpu`'s stop as the machine's first, if it is (a step's, or an event's: a refused store drain). */
  protected noteStop(cpu: Cpu, step: number): void {
    if (this.firstStop === undefined && cpu.isStopped) this.firstStop = { ...cpu.stopEvent!, cpu: cpu.id, step };
  }

  /** Records the step in the trace (or, for debug logs only, the scratch log) and returns its event if `wanted`. */
  private describe(cpu: Cpu, step: number, rip: number, rsp: number, wanted: boolean): StepEvent | undefined {
    const log = this.traced ? this.traceLog : this.logScratch;
    if (!this.traced) log.clear();
    const index = log.appendStep(cpu, step, rip, rsp);
    // Only a caller that wants the event (step(), debug logs) pays for building it.
    return wanted ? log.at(index) : undefined;
  }
}
