import { type Cpu, STATE_NAMES, STATUS, STEP_KIND } from '../cpu/cpu.ts';
import { type IpiMode, OP, OP_NAMES } from '../cpu/instruction.ts';
import type { InFlightIpi } from '../cpu/ipi-bus.ts';
import { type ExceptionEvent, type StepEvent, StepRecord, type StopEvent } from '../cpu/step-event.ts';

// The machine's trace, stored as typed-array columns so that recording a step writes a few numbers instead of
// keeping an object alive: a run of a million traced steps would otherwise promote a million events out of the
// young generation, and the copying dominated a traced step. Event objects are built when the trace is read.

const TLB_OUTCOMES = [undefined, 'hit', 'miss'] as const;
const TLB_HIT = 1;
const TLB_MISS = 2;

// The mnemonic column holds an instruction's OP code, or one of these for a step that executed no instruction.
const LABEL_IDLE = 0;
const LABEL_INTERRUPT = 64;
const LABEL_EXIT = 65;
const LABEL_DELIVER = 66;
const LABELS: readonly string[] = (() => {
  const labels: string[] = [];
  for (const [code, name] of Object.entries(OP_NAMES)) labels[Number(code)] = name;
  labels[LABEL_IDLE] = 'idle';
  labels[LABEL_INTERRUPT] = 'interrupt';
  labels[LABEL_EXIT] = 'exit';
  labels[LABEL_DELIVER] = 'deliver';
  return labels;
})();

// Module-local copies of imported constants, read on every traced step (see the note in cpu/cpu.ts).
const {
  LOAD: OP_LOAD,
  STORE: OP_STORE,
  PUSH: OP_PUSH,
  POP: OP_POP,
  CALL: OP_CALL,
  RET: OP_RET,
  CMPXCHG: OP_CMPXCHG,
  XCHG: OP_XCHG,
  SPIN_UNTIL: OP_SPIN_UNTIL,
  INVLPG: OP_INVLPG,
  SEND_IPI: OP_SEND_IPI,
  COPY: OP_COPY,
  ATOMIC: OP_ATOMIC,
  FILL: OP_FILL,
} = OP;
const { INSTRUCTION: KIND_INSTRUCTION, INTERRUPT: KIND_INTERRUPT, EXIT: KIND_EXIT } = STEP_KIND;
const STATUS_BLOCKED = STATUS.BLOCKED;

/** The fields of a step that are rare (exceptions, IPIs, acceptances, stops), kept per step that has them. */
interface Extras {
  readonly exceptions: readonly ExceptionEvent[] | undefined;
  readonly ipi: StepEvent['ipi'];
  readonly accepted: { readonly vector: number; readonly nmi: boolean } | undefined;
  readonly stop: StopEvent | undefined;
}

export class TraceLog {
  private count = 0;
  private capacity = 0;
  private step = new Float64Array(0);
  private cpu = new Uint8Array(0);
  private rip = new Float64Array(0);
  private op = new Uint8Array(0);
  private va = new Float64Array(0);
  private pa = new Float64Array(0);
  private size = new Uint16Array(0);
  private value = new Float64Array(0);
  private tlb = new Uint8Array(0);
  private state = new Uint8Array(0);
  private readonly extras = new Map<number, Extras>();
  /** Events built so far (index i is step record i). */
  private readonly built: StepEvent[] = [];

  get length(): number {
    return this.count;
  }

  private grow(): void {
    const capacity = Math.max(1024, this.capacity * 2);
    const widen = <T extends Float64Array | Uint8Array | Uint16Array>(old: T, make: (n: number) => T): T => {
      const next = make(capacity);
      next.set(old);
      return next;
    };
    this.step = widen(this.step, (n) => new Float64Array(n));
    this.cpu = widen(this.cpu, (n) => new Uint8Array(n));
    this.rip = widen(this.rip, (n) => new Float64Array(n));
    this.op = widen(this.op, (n) => new Uint8Array(n));
    this.va = widen(this.va, (n) => new Float64Array(n));
    this.pa = widen(this.pa, (n) => new Float64Array(n));
    this.size = widen(this.size, (n) => new Uint16Array(n));
    this.value = widen(this.value, (n) => new Float64Array(n));
    this.tlb = widen(this.tlb, (n) => new Uint8Array(n));
    this.state = widen(this.state, (n) => new Uint8Array(n));
    this.capacity = capacity;
  }

  /**
   * Records what `cpu` did in the step it just took (`rip` and `rsp` as they were before it): the instruction and
   * its virtual and physical address, TLB outcome and value, or the interrupt it accepted, plus any exceptions,
   * IPI and stop. Returns the record's index. Called once per traced step, so it writes numbers only: undefined
   * fields are NaN (size 0), the mnemonic is an op code (see LABELS), the state its STATUS number.
   */
  appendStep(cpu: Cpu, step: number, rip: number, rsp: number): number {
    if (this.count === this.capacity) this.grow();
    const i = this.count++;
    const kind = cpu.lastKind;
    const ins = kind === KIND_INSTRUCTION ? cpu.lastInstruction : undefined;
    const ex = cpu.exceptionLog;
    const accepted = kind === KIND_INTERRUPT ? cpu.lastAccepted : undefined;
    const faulted = ex.length > 0 && accepted === undefined;
    let va = Number.NaN;
    let size = 0;
    let value = Number.NaN;
    let pa = Number.NaN;
    let tlb = 0;
    let ipi: StepEvent['ipi'];
    let label: number = kind === KIND_INTERRUPT ? LABEL_INTERRUPT : kind === KIND_EXIT ? LABEL_EXIT : LABEL_IDLE;
    if (ins !== undefined) {
      const op = ins.op;
      label = op;
      if (op === OP_PUSH || op === OP_CALL) va = rsp - 8;
      else if (op === OP_POP || op === OP_RET) va = rsp;
      else if (op <= OP_STORE || op === OP_CMPXCHG || op === OP_XCHG || op === OP_SPIN_UNTIL || op === OP_INVLPG) {
        va = ins.va;
        size = ins.size;
      } else if (op === OP_COPY || op === OP_FILL) {
        va = cpu.lastCopyDestination;
        size = ins.size;
      }
      if (op === OP_STORE || op === OP_PUSH) value = ins.value;
      else if (!faulted && cpu.status !== STATUS_BLOCKED && (op === OP_LOAD || op === OP_POP)) value = cpu.lastResult;
      else if (!faulted && (op === OP_CMPXCHG || op === OP_XCHG || op === OP_SPIN_UNTIL || op === OP_ATOMIC)) {
        value = cpu.lastResult;
      }
      // A faulting instruction has no physical access to show (lastPa would be the frame push's).
      if (!Number.isNaN(va) && !faulted && op !== OP_INVLPG && cpu.port.lastPa >= 0) {
        pa = cpu.port.lastPa;
        tlb = cpu.port.lastHit ? TLB_HIT : TLB_MISS;
      }
      if (op === OP_SEND_IPI && cpu.lastIpiTargets) {
        ipi = { to: cpu.lastIpiTargets, vector: ins.value, mode: ins.expected === 1 ? 'nmi' : 'fixed' };
      }
    }
    this.step[i] = step;
    this.cpu[i] = cpu.id;
    this.rip[i] = rip;
    this.op[i] = label;
    this.va[i] = va;
    this.pa[i] = pa;
    this.size[i] = size;
    this.value[i] = value;
    this.tlb[i] = tlb;
    this.state[i] = cpu.status;
    const stop = cpu.stopEvent !== undefined && cpu.isStopped ? cpu.stopEvent : undefined;
    if (ex.length > 0 || ipi !== undefined || accepted !== undefined || stop !== undefined) {
      this.extras.set(i, { exceptions: ex.length > 0 ? ex.slice() : undefined, ipi, accepted, stop });
    }
    return i;
  }

  /**
   * Records a delivery event: an in-flight IPI reached `cpu`'s IRR (or NMI latch) between steps. It is numbered with
   * the step it precedes (`step`), takes no step of its own, and shows the target's RIP and state.
   */
  appendDelivery(cpu: Cpu, step: number, ipi: InFlightIpi): number {
    if (this.count === this.capacity) this.grow();
    const i = this.count++;
    this.step[i] = step;
    this.cpu[i] = cpu.id;
    this.rip[i] = cpu.rip;
    this.op[i] = LABEL_DELIVER;
    this.va[i] = Number.NaN;
    this.pa[i] = Number.NaN;
    this.size[i] = 0;
    this.value[i] = Number.NaN;
    this.tlb[i] = 0;
    this.state[i] = cpu.status;
    const mode: IpiMode = ipi.nmi ? 'nmi' : 'fixed';
    this.extras.set(i, {
      exceptions: undefined,
      ipi: { to: [ipi.to], vector: ipi.vector, mode, from: ipi.from },
      accepted: undefined,
      stop: undefined,
    });
    return i;
  }

  /** The event at index `i` (0 <= i < length); events are built in order, each once. */
  at(i: number): StepEvent {
    while (this.built.length <= i) this.built.push(this.build(this.built.length));
    return this.built[i]!;
  }

  private build(i: number): StepEvent {
    const number = (x: number) => (Number.isNaN(x) ? undefined : x);
    const extras = this.extras.get(i);
    return new StepRecord(
      this.step[i]!,
      this.cpu[i]!,
      this.rip[i]!,
      LABELS[this.op[i]!]!,
      number(this.va[i]!),
      number(this.pa[i]!),
      this.size[i] === 0 ? undefined : this.size[i],
      number(this.value[i]!),
      TLB_OUTCOMES[this.tlb[i]! as 0 | 1 | 2],
      extras?.exceptions,
      extras?.ipi,
      extras?.accepted,
      extras?.stop,
      STATE_NAMES[this.state[i]!]!,
    );
  }

  /** All events, as one array that grows as the trace does (built on first read). */
  events(): readonly StepEvent[] {
    if (this.count > 0) this.at(this.count - 1);
    return this.built;
  }

  /** Forgets every recorded step (long runs that only need the recent past). */
  clear(): void {
    this.count = 0;
    this.extras.clear();
    this.built.length = 0;
  }
}
