import { type Cpu, STATE_NAMES, STATUS, STEP_KIND } from '../cpu/cpu.ts';
import { type IpiMode, OP, OP_NAMES } from '../cpu/instruction.ts';
import type { InFlightIpi } from '../cpu/ipi-bus.ts';
import { type ExceptionEvent, type StepEvent, StepRecord, type StopEvent } from '../cpu/step-event.ts';
import { describeValue, InputError } from '../mmu/input-error.ts';

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

/** Flags per slot: what to forget when the ring overwrites it. */
const HAS_EXTRAS = 1;
const HAS_BUILT = 2;

/**
 * The recorded steps, oldest first. With a `limit` the log keeps only the last `limit` events: the columns become a
 * ring once they hold that many, and each append overwrites the oldest (counted in `dropped`), so a long run keeps
 * the recent past in bounded memory without copying or allocating per step.
 */
export class TraceLog {
  /** Most events kept (Infinity: no limit). */
  readonly limit: number;
  /** Events kept. */
  private count = 0;
  /** Slot of the oldest kept event: 0 until the ring is full. */
  private head = 0;
  /** Events the limit evicted since creation or the last clear(). */
  private evicted = 0;
  /** Sequence number (counted from creation, across clears) of the oldest kept event; cache keys use it. */
  private first = 0;
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
  private flags = new Uint8Array(0);
  /** Rare fields, by slot. */
  private readonly extras = new Map<number, Extras>();
  /** Events built one at a time by at(), by slot (so an eviction can forget one). */
  private readonly built = new Map<number, StepEvent>();
  /** The array events() returns; view[k] is the event with sequence number viewFirst + k. */
  private view: StepEvent[] = [];
  private viewFirst = 0;

  constructor(limit: number = Number.POSITIVE_INFINITY) {
    if (limit !== Number.POSITIVE_INFINITY && !(Number.isSafeInteger(limit) && limit >= 1)) {
      throw new InputError(`trace limit ${describeValue(limit)} must be an integer >= 1 (events kept)`);
    }
    this.limit = limit;
  }

  /** Events kept (at most `limit`). */
  get length(): number {
    return this.count;
  }

  /** Events the limit evicted to make room, since the log was created or last cleared. */
  get dropped(): number {
    return this.evicted;
  }

  private grow(): void {
    // Only a log that has not wrapped grows (the ring is full only at `limit`), so the kept events are in order.
    const capacity = Math.min(this.limit, Math.max(1024, this.capacity * 2));
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
    this.flags = widen(this.flags, (n) => new Uint8Array(n));
    this.capacity = capacity;
  }

  /**
   * The slot for a new event when every slot is in use: a new one after growing the columns, or, at the limit, the
   * oldest event's, which is evicted.
   */
  private claim(): number {
    if (this.count < this.limit) {
      this.grow();
      return this.count++;
    }
    const slot = this.head;
    this.head = slot + 1 === this.capacity ? 0 : slot + 1;
    this.first++;
    this.evicted++;
    if (this.flags[slot] !== 0) {
      this.extras.delete(slot);
      this.built.delete(slot);
    }
    return slot;
  }

  /**
   * Records what `cpu` did in the step it just took (`rip` and `rsp` as they were before it): the instruction and
   * its virtual and physical address, TLB outcome and value, or the interrupt it accepted, plus any exceptions,
   * IPI and stop. Returns the event's index (for at()). Called once per traced step, so it writes numbers only:
   * undefined fields are NaN (size 0), the mnemonic is an op code (see LABELS), the state its STATUS number.
   */
  appendStep(cpu: Cpu, step: number, rip: number, rsp: number): number {
    // Below capacity the log has not wrapped (head is 0), so the next slot is `count`.
    const i = this.count < this.capacity ? this.count++ : this.claim();
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
      this.flags[i] = HAS_EXTRAS;
    } else {
      this.flags[i] = 0;
    }
    return this.count - 1;
  }

  /**
   * Records a delivery event: an in-flight IPI reached `cpu`'s IRR (or NMI latch) between steps. It is numbered with
   * the step it precedes (`step`), takes no step of its own, and shows the target's RIP and state.
   */
  appendDelivery(cpu: Cpu, step: number, ipi: InFlightIpi): number {
    const i = this.count < this.capacity ? this.count++ : this.claim();
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
    this.flags[i] = HAS_EXTRAS;
    const mode: IpiMode = ipi.nmi ? 'nmi' : 'fixed';
    this.extras.set(i, {
      exceptions: undefined,
      ipi: { to: [ipi.to], vector: ipi.vector, mode, from: ipi.from },
      accepted: undefined,
      stop: undefined,
    });
    return this.count - 1;
  }

  /**
   * The kept event at index `i` (0 is the oldest kept, `length - 1` the newest). Only that event is built, once:
   * reading it again, here or through events(), gives the same object.
   */
  at(i: number): StepEvent {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new InputError(
        `trace index ${describeValue(i)} is out of range: ` +
          (this.count === 0 ? 'the trace is empty' : `the trace holds events 0..${this.count - 1}`),
      );
    }
    const inView = this.first + i - this.viewFirst;
    if (inView >= 0 && inView < this.view.length) return this.view[inView]!;
    const slot = this.head + i < this.capacity ? this.head + i : this.head + i - this.capacity;
    let event = this.built.get(slot);
    if (event === undefined) {
      event = this.build(slot);
      this.built.set(slot, event);
      this.flags[slot]! |= HAS_BUILT;
    }
    return event;
  }

  private build(slot: number): StepEvent {
    const number = (x: number) => (Number.isNaN(x) ? undefined : x);
    const extras = this.extras.get(slot);
    return new StepRecord(
      this.step[slot]!,
      this.cpu[slot]!,
      this.rip[slot]!,
      LABELS[this.op[slot]!]!,
      number(this.va[slot]!),
      number(this.pa[slot]!),
      this.size[slot] === 0 ? undefined : this.size[slot],
      number(this.value[slot]!),
      TLB_OUTCOMES[this.tlb[slot]! as 0 | 1 | 2],
      extras?.exceptions,
      extras?.ipi,
      extras?.accepted,
      extras?.stop,
      STATE_NAMES[this.state[slot]!]!,
    );
  }

  /**
   * Every kept event, oldest first, built on first read. While nothing is dropped the same array is extended as the
   * log grows; after a drop or clear() a new array is returned (one read earlier keeps what it held).
   */
  events(): readonly StepEvent[] {
    if (this.viewFirst !== this.first) {
      const view: StepEvent[] = [];
      // at() still reads the old view, so events already built keep their identity.
      for (let i = 0; i < this.count; i++) view.push(this.at(i));
      this.view = view;
      this.viewFirst = this.first;
    } else {
      for (let i = this.view.length; i < this.count; i++) this.view.push(this.at(i));
    }
    return this.view;
  }

  /** Forgets every kept event and the dropped count (long runs that only need the recent past). */
  clear(): void {
    this.first += this.count;
    this.count = 0;
    this.head = 0;
    this.evicted = 0;
    this.extras.clear();
    this.built.clear();
    if (this.view.length > 0) this.view = [];
    this.viewFirst = this.first;
  }
}
