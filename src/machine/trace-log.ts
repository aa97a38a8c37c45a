import { type Cpu, STEP_KIND } from '../cpu/cpu.ts';
import { type IpiMode, OP } from '../cpu/instruction.ts';
import { type CpuState, type ExceptionEvent, type StepEvent, StepRecord, type StopEvent } from '../cpu/step-event.ts';

// The machine's trace, stored as typed-array columns so that recording a step writes a few numbers instead of
// keeping an object alive: a run of a million traced steps would otherwise promote a million events out of the
// young generation, and the copying dominated a traced step. Event objects are built when the trace is read.

const STATES: readonly CpuState[] = ['running', 'halted', 'blocked', 'shutdown', 'stopped'];
const TLB_OUTCOMES = [undefined, 'hit', 'miss'] as const;

/** The fields of a step that are rare (exceptions, IPIs, acceptances, stops), kept per step that has them. */
interface Extras {
  readonly exceptions: readonly ExceptionEvent[] | undefined;
  readonly ipi: { readonly to: readonly number[]; readonly vector: number; readonly mode: IpiMode } | undefined;
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
  private size = new Uint8Array(0);
  private value = new Float64Array(0);
  private tlb = new Uint8Array(0);
  private state = new Uint8Array(0);
  private readonly extras = new Map<number, Extras>();
  /** Mnemonics by index, in order of first use. */
  private readonly ops: string[] = [];
  private readonly opIndex = new Map<string, number>();
  /** Events built so far (index i is step record i). */
  private readonly built: StepEvent[] = [];

  get length(): number {
    return this.count;
  }

  private grow(): void {
    const capacity = Math.max(1024, this.capacity * 2);
    const widen = <T extends Float64Array | Uint8Array>(old: T, make: (n: number) => T): T => {
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
    this.size = widen(this.size, (n) => new Uint8Array(n));
    this.value = widen(this.value, (n) => new Float64Array(n));
    this.tlb = widen(this.tlb, (n) => new Uint8Array(n));
    this.state = widen(this.state, (n) => new Uint8Array(n));
    this.capacity = capacity;
  }

  private opCode(name: string): number {
    let code = this.opIndex.get(name);
    if (code === undefined) {
      code = this.ops.length;
      this.ops.push(name);
      this.opIndex.set(name, code);
    }
    return code;
  }

  /** Records one step; undefined numbers are stored as NaN (size as 0). Returns its index. */
  append(
    step: number,
    cpu: number,
    rip: number,
    op: string,
    va: number | undefined,
    pa: number | undefined,
    size: number | undefined,
    value: number | undefined,
    tlb: 'hit' | 'miss' | undefined,
    state: CpuState,
    extras: Extras | undefined,
  ): number {
    if (this.count === this.capacity) this.grow();
    const i = this.count++;
    this.step[i] = step;
    this.cpu[i] = cpu;
    this.rip[i] = rip;
    this.op[i] = this.opCode(op);
    this.va[i] = va ?? Number.NaN;
    this.pa[i] = pa ?? Number.NaN;
    this.size[i] = size ?? 0;
    this.value[i] = value ?? Number.NaN;
    this.tlb[i] = tlb === undefined ? 0 : tlb === 'hit' ? 1 : 2;
    this.state[i] = STATES.indexOf(state);
    if (extras) this.extras.set(i, extras);
    return i;
  }

  /**
   * Records what `cpu` did in the step it just took (`rip` and `rsp` as they were before it): the instruction and
   * its virtual and physical address, TLB outcome and value, or the interrupt it accepted, plus any exceptions,
   * IPI and stop. Returns the record's index.
   */
  appendStep(cpu: Cpu, step: number, rip: number, rsp: number): number {
    const ins = cpu.lastKind === STEP_KIND.INSTRUCTION ? cpu.lastInstruction : undefined;
    const ex = cpu.exceptionLog;
    const accepted = cpu.lastKind === STEP_KIND.INTERRUPT ? cpu.lastAccepted : undefined;
    const faulted = ex.length > 0 && !accepted;
    let va: number | undefined;
    let size: number | undefined;
    let value: number | undefined;
    let pa: number | undefined;
    let tlb: 'hit' | 'miss' | undefined;
    let ipi: StepEvent['ipi'];
    if (ins) {
      const op = ins.op;
      if (op === OP.PUSH || op === OP.CALL) va = rsp - 8;
      else if (op === OP.POP || op === OP.RET) va = rsp;
      else if (op <= OP.STORE || op === OP.CMPXCHG || op === OP.XCHG || op === OP.SPIN_UNTIL || op === OP.INVLPG) {
        va = ins.va;
        size = ins.size;
      }
      if (op === OP.STORE || op === OP.PUSH) value = ins.value;
      else if (!faulted && cpu.state !== 'blocked' && (op === OP.LOAD || op === OP.POP)) value = cpu.lastResult;
      else if (!faulted && (op === OP.CMPXCHG || op === OP.XCHG || op === OP.SPIN_UNTIL)) value = cpu.lastResult;
      // A faulting instruction has no physical access to show (lastPa would be the frame push's).
      if (va !== undefined && !faulted && op !== OP.INVLPG && cpu.port.lastPa >= 0) {
        pa = cpu.port.lastPa;
        tlb = cpu.port.lastHit ? 'hit' : 'miss';
      }
      if (op === OP.SEND_IPI && cpu.lastIpiTargets) {
        ipi = { to: cpu.lastIpiTargets, vector: ins.value, mode: ins.expected === 1 ? 'nmi' : 'fixed' };
      }
    }
    const name = ins ? ins.name : accepted ? 'interrupt' : cpu.lastKind === STEP_KIND.EXIT ? 'exit' : 'idle';
    const stop = cpu.stopEvent && cpu.isStopped ? cpu.stopEvent : undefined;
    const rare = ex.length > 0 || ipi !== undefined || accepted !== undefined || stop !== undefined;
    const extras = rare ? { exceptions: ex.length > 0 ? ex.slice() : undefined, ipi, accepted, stop } : undefined;
    return this.append(step, cpu.id, rip, name, va, pa, size, value, tlb, cpu.state, extras);
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
      this.ops[this.op[i]!]!,
      number(this.va[i]!),
      number(this.pa[i]!),
      this.size[i] === 0 ? undefined : this.size[i],
      number(this.value[i]!),
      TLB_OUTCOMES[this.tlb[i]! as 0 | 1 | 2],
      extras?.exceptions,
      extras?.ipi,
      extras?.accepted,
      extras?.stop,
      STATES[this.state[i]!]!,
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
