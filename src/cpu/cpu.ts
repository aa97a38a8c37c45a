import { NON_CANONICAL } from '../mmu/address.ts';
import { VECTOR_VIOLATION } from '../mmu/frame-guard.ts';
import { describeValue, InputError, requireInteger } from '../mmu/input-error.ts';
import { PagingStructureCache } from '../mmu/paging-structure-cache.ts';
import { type PhysicalMemory, poppedWord } from '../mmu/physical-memory.ts';
import { Tlb, type TlbConfig } from '../mmu/tlb.ts';
import type { TypedArena } from '../mmu/typed-arena.ts';
import { ACCESS, VECTOR_PF } from '../mmu/walker.ts';
import type { Activation } from './activation.ts';
import { LocalApic } from './apic.ts';
import { Assembler, type Program } from './assembler.ts';
import type { CpuBus, CpuCore } from './core.ts';
import { deliverEvent, EVENT_SOURCE } from './delivery.ts';
import { type ExceptionFrame, handlerFrame } from './exception-frame.ts';
import { VECTOR } from './exceptions.ts';
import { executeInstruction } from './execute.ts';
import { checkedGate } from './idt.ts';
import { type CalledProgram, type Instruction, OP } from './instruction.ts';
import { MemoryPort } from './memory-port.ts';
import { stopOnMemoryViolation } from './memory-violation.ts';
import {
  fetchedInstruction,
  generatorNext,
  instructionFailed,
  makeActivation,
  programThrew,
  staleInstruction,
} from './program-protocol.ts';
import {
  defaultRegisters,
  emptyTss,
  type Gate,
  type GateInit,
  type Registers,
  RFLAGS,
  type TaskStateSegment,
} from './registers.ts';
import { boundaryStackAccess } from './stack-boundary.ts';
import { RIP_STRIDE, STATE_NAMES, STATUS, STEP_KIND, type StepKind } from './status.ts';
import type { CpuState, ExceptionEvent, StopEvent } from './step-event.ts';
import { StoreBuffer } from './store-buffer.ts';

export { RIP_STRIDE, STATE_NAMES, STATUS, STEP_KIND, type StepKind } from './status.ts';

// Module-local copies of imported constants: V8 reads an imported binding through a cell with a TDZ check on
// every use, while a local const is folded into the optimised code. This file is on the per-step path.
/** From here up, RSP is at the top of the upper half or non-canonical: see boundaryStackAccess. */
const STACK_TOP = NON_CANONICAL - 8;
/** %GeneratorPrototype%.next, aliased here: every step resumes a program through it. */
const resumeProgram = generatorNext;
const { PUSH: OP_PUSH, POP: OP_POP, LOAD: OP_LOAD } = OP;
const { USER: ACCESS_USER, STACK: ACCESS_STACK } = ACCESS;
const { IF: RFLAGS_IF } = RFLAGS;

export interface CpuConfig {
  readonly tlb?: TlbConfig;
  /** Store-buffer entries (x86-TSO); 0 or absent: none, memory is sequentially consistent. */
  readonly storeBuffer?: number;
  /** Paging-structure-cache entries per level; 0 or absent: none, every TLB miss walks from CR3. */
  readonly pagingStructureCache?: number;
  /** Where the TLB and page cache take their typed arrays (see TypedArena); each makes its own when absent. */
  readonly arena?: TypedArena;
}

const {
  RUNNING: STATUS_RUNNING,
  HALTED: STATUS_HALTED,
  BLOCKED: STATUS_BLOCKED,
  SHUTDOWN: STATUS_SHUTDOWN,
  STOPPED: STATUS_STOPPED,
} = STATUS;

/** An IDT with no gates, copied per CPU (slicing a template is 4x faster than filling a new array). */
const EMPTY_IDT: readonly (Gate | undefined)[] = new Array<Gate | undefined>(256).fill(undefined);

/** The context of a CPU that has no program (Linux's idle loop): interrupts return to it and it halts again. */
const idleLoop: Program = function* idle() {};

/** One x86-64 logical CPU: registers, TLB, local APIC, and a control stack of running programs. */
export class Cpu implements CpuCore {
  readonly regs: Registers = defaultRegisters();
  readonly tss: TaskStateSegment = emptyTss();
  /** The IDT: set it with setGate()/clearGate(), which check what they store. */
  readonly idt: readonly (Gate | undefined)[] = EMPTY_IDT.slice();
  /** Counts IDT changes: an unchanged generation means an unchanged IDT (a machine reset's test). */
  idtGeneration = 0;
  readonly tlb: Tlb;
  readonly apic = new LocalApic();
  readonly port: MemoryPort;
  readonly asm: Assembler;
  /** The state as a small integer (STATUS), which the per-step checks compare; `state` names it. */
  status: number = STATUS_HALTED;
  stopEvent: StopEvent | undefined;
  /** The most recent exception raised on this CPU (vector, error code, CR2 at that time). */
  lastException: { vector: number; errorCode: number; cr2: number } | undefined;
  /** NMIs are blocked from NMI delivery until the next IRET (SDM §6.7.1). */
  nmiBlocked = false;
  /** STI shadow: interrupts are not recognised before the instruction after STI completes. */
  interruptShadow = false;
  /** Exceptions raised in the current step (cleared at each step). */
  readonly exceptionLog: ExceptionEvent[] = [];
  /** Instructions and interrupt acceptances executed. */
  steps = 0;
  /** What the last step did, for its trace event: see StepKind. Set once per step; the fields below are valid per it. */
  lastKind: StepKind = STEP_KIND.IDLE;
  /** The instruction executed by the last step (valid when lastKind is INSTRUCTION). */
  lastInstruction: Instruction | undefined;
  /** Result of the last completed instruction. */
  lastResult = 0;
  /** The interrupt accepted by the last step (valid when lastKind is INTERRUPT). */
  lastAccepted: { vector: number; nmi: boolean } | undefined;
  /** Virtual address the last copy chunk wrote (valid when the last instruction was a copy). */
  lastCopyDestination = 0;
  /** Targets of the last IPI sent (valid when the last instruction was send-IPI). */
  lastIpiTargets: readonly number[] | undefined;
  /** @internal The control stack, innermost last. */
  readonly activations: Activation[] = [];
  /** The innermost activation (the last of `activations`), kept so the step reads one field. */
  private current: Activation | undefined;
  /** The task program and its arguments, as given to start() (machine images restart it in clones). */
  task: { readonly program: Program; readonly args: readonly unknown[] } | undefined;
  /** Programs registered with Assembler.userEntry, by entry RIP: where an iret to user mode may go. */
  /** @internal */
  readonly userEntries = new Map<number, { readonly program: Program; readonly args: readonly unknown[] }>();

  constructor(
    readonly id: number,
    readonly memory: PhysicalMemory,
    /** @internal */
    readonly bus: CpuBus,
    config: CpuConfig = {},
  ) {
    this.tlb = new Tlb(config.tlb, config.arena);
    this.port = new MemoryPort(memory, this.tlb, this.regs, config.arena);
    if (config.storeBuffer) this.port.storeBuffer = new StoreBuffer(config.storeBuffer);
    if (config.pagingStructureCache) this.port.psc = new PagingStructureCache(config.pagingStructureCache);
    this.asm = new Assembler(id, (program, args) => {
      const rip = this.bus.userCodeAddress(program);
      this.userEntries.set(rip, { program, args });
      return rip;
    });
  }

  /**
   * Back to the state the constructor leaves, but for the architectural state a machine image copies in anyway
   * (registers, TSS, IDT, TLB, APIC): what a step leaves behind, and the program. For MachineImage.reset;
   * test/machine/image-reset.test.ts compares a reset CPU with a new one field by field.
   */
  resetRunState(): void {
    this.port.reset();
    this.port.storeBuffer?.clear();
    // An image's instances start with nothing cached (walks fill the caches; the image copies no entries).
    this.port.psc?.clear();
    this.asm.builds = 0;
    this.asm.consumed = 0;
    this.status = STATUS_HALTED;
    this.stopEvent = undefined;
    this.lastException = undefined;
    this.nmiBlocked = false;
    this.interruptShadow = false;
    if (this.exceptionLog.length !== 0) this.exceptionLog.length = 0;
    this.steps = 0;
    this.lastKind = STEP_KIND.IDLE;
    this.lastInstruction = undefined;
    this.lastResult = 0;
    this.lastAccepted = undefined;
    this.lastCopyDestination = 0;
    this.lastIpiTargets = undefined;
    if (this.activations.length !== 0) this.activations.length = 0;
    this.current = undefined;
    this.task = undefined;
    if (this.userEntries.size !== 0) this.userEntries.clear();
  }

  /** RIP of the next instruction of the innermost program (0 before any program starts). */
  get rip(): number {
    const top = this.activations[this.activations.length - 1];
    return top ? top.codeBase + RIP_STRIDE * top.index : 0;
  }

  /** The address a blocked CPU spins on (its pending spin-until), or undefined. */
  get spinningOn(): number | undefined {
    if (this.status !== STATUS_BLOCKED) return undefined;
    return this.activations[this.activations.length - 1]?.pending?.va;
  }

  /** Depth of the control stack (task, calls and handlers). */
  get depth(): number {
    return this.activations.length;
  }

  get interruptsEnabled(): boolean {
    return (this.regs.rflags & RFLAGS_IF) !== 0;
  }

  /** running, halted, blocked (spinning on a false condition), shutdown (triple fault) or stopped (an event). */
  get state(): CpuState {
    return STATE_NAMES[this.status]!;
  }

  /** Whether the CPU was given a task program. */
  get started(): boolean {
    return this.task !== undefined;
  }

  /** Starts the task program on this CPU. */
  start<A extends readonly unknown[]>(program: Program<A>, ...args: A): void {
    if (this.task) {
      throw new InputError(`CPU ${this.id} already runs a program; start() may be called once per CPU`);
    }
    if (this.activations.length > 1) {
      throw new InputError(`CPU ${this.id} is in an interrupt handler; start its program when it is idle`);
    }
    const task = this.activation('task', program as Program, args, 0, false);
    if (this.activations.length !== 0) this.activations.length = 0; // drop an idle context an interrupt created
    this.task = { program: program as Program, args };
    this.pushActivation(task);
    this.status = STATUS_RUNNING;
  }

  /** @internal */
  pushActivation(a: Activation): void {
    this.activations.push(a);
    this.current = a;
  }

  /** @internal A context switch: the control stack becomes `list` (innermost last). */
  replaceControlStack(list: readonly Activation[]): void {
    // In place, with no spread and no length set unless it changes (the stateful search restores a stack per state).
    const acts = this.activations;
    const n = list.length;
    for (let i = 0; i < n; i++) acts[i] = list[i]!;
    if (acts.length !== n) acts.length = n;
    this.current = acts[n - 1];
  }

  /** @internal */
  popActivation(): void {
    this.activations.pop();
    this.current = this.activations[this.activations.length - 1];
  }

  /**
   * Installs an IDT gate, checked whole before anything changes: the handler a generator function, IST 0..7
   * (0 = none), type 'interrupt' or 'trap', DPL 0..3, a 16-bit selector; present, DPL 0 and __KERNEL_CS unless given.
   * A selector that names no 64-bit code segment is accepted here and faults at delivery, as on hardware.
   */
  setGate(vector: number, gate: GateInit): void {
    const where = `CPU ${this.id} setGate(${describeValue(vector)})`;
    requireInteger(vector, `${where}: IDT vector`, 0, 255);
    (this.idt as (Gate | undefined)[])[vector] = checkedGate(gate, where);
    this.idtGeneration++;
  }

  /**
   * @internal Installs a whole IDT whose gates setGate already checked (a machine image's copy of another CPU's
   * IDT): one array copy rather than 256 checks, which made up half of an image instantiation.
   */
  loadIdt(gates: readonly (Gate | undefined)[]): void {
    const idt = this.idt as (Gate | undefined)[];
    for (let v = 0; v < 256; v++) idt[v] = gates[v];
    this.idtGeneration++;
  }

  /** Removes the gate for `vector`, as a zeroed IDT descriptor: delivering it raises #GP(vector*8+2+EXT). */
  clearGate(vector: number): void {
    requireInteger(vector, `CPU ${this.id} clearGate: IDT vector`, 0, 255);
    (this.idt as (Gate | undefined)[])[vector] = undefined;
    this.idtGeneration++;
  }

  /** @internal Starts `program` as a new activation on this CPU (program-protocol.ts). */
  activation(
    kind: Activation['kind'],
    program: CalledProgram,
    args: readonly unknown[],
    vector: number,
    errorCodePushed: boolean,
    frameRsp = 0,
    codeBase = -1,
    byException = false,
  ): Activation {
    return makeActivation(this, kind, program, args, vector, errorCodePushed, frameRsp, codeBase, byException);
  }

  /** @internal Called by delivery once the frame is pushed. */
  enterHandler(handler: Activation): void {
    this.pushActivation(handler);
    this.status = STATUS_RUNNING;
  }

  /** Stops the CPU in the shutdown state (triple fault); only NMI/INIT/RESET would leave it. */
  shutdown(reason: string): void {
    this.status = STATUS_SHUTDOWN;
    this.stopEvent = { outcome: 'triple-fault', message: reason };
  }

  /** Stops the CPU with an event (die/panic, failed assertion, stack corruption). */
  stop(event: StopEvent): void {
    this.status = STATUS_STOPPED;
    this.stopEvent = event;
    this.memory.unwatch(this.id);
  }

  /** Stopped with an event or shut down: this CPU will not move again. */
  get isStopped(): boolean {
    return this.status === STATUS_STOPPED || this.status === STATUS_SHUTDOWN;
  }

  /** Whether an interrupt or NMI would be accepted at the next boundary. */
  get interruptDeliverable(): boolean {
    if (this.apic.nmiPending && !this.nmiBlocked) return true;
    return this.interruptsEnabled && !this.interruptShadow && this.apic.deliverable() >= 0;
  }

  /** Whether step() can make progress: not stopped, and not halted/blocked unless an interrupt can be taken. */
  get runnable(): boolean {
    if (this.status === STATUS_RUNNING) return true;
    if (this.status === STATUS_HALTED || this.status === STATUS_BLOCKED) return this.interruptDeliverable;
    return false;
  }

  /** A spinning CPU's watched bytes were written (or its TLB changed): it re-checks its condition when stepped. */
  wake(): void {
    if (this.status === STATUS_BLOCKED) {
      this.status = STATUS_RUNNING;
      this.memory.unwatch(this.id);
    }
  }

  /**
   * Executes exactly one instruction or one interrupt acceptance. A halted CPU with nothing to accept does
   * nothing (an idle step). Exceptions thrown by program code propagate (the CPU stops with `assertion`).
   * Footprints are recorded into `port.footprint` when the machine set one.
   */
  step(): void {
    // Setting length on an empty array is a slow runtime call in V8; most steps raise nothing.
    if (this.exceptionLog.length !== 0) this.exceptionLog.length = 0;
    this.lastKind = STEP_KIND.IDLE;
    if (this.status === STATUS_SHUTDOWN || this.status === STATUS_STOPPED) return;
    this.steps++;
    const apic = this.apic;
    // Interrupt acceptance at the instruction boundary (SDM §6.9: NMI first, then the highest deliverable IRR
    // vector when IF=1 and no STI shadow). Most steps find nothing to accept on a running CPU.
    if (this.status !== STATUS_RUNNING || apic.pendingCount !== 0 || apic.nmiPending || this.interruptShadow) {
      const shadowed = this.interruptShadow;
      this.interruptShadow = false;
      if (apic.nmiPending && !this.nmiBlocked) {
        apic.nmiPending = false;
        this.nmiBlocked = true;
        return this.acceptInterrupt(VECTOR.NMI);
      }
      if (apic.pendingCount !== 0 && (this.regs.rflags & RFLAGS_IF) !== 0 && !shadowed) {
        const vector = apic.deliverable();
        if (vector >= 0) {
          apic.accept(vector);
          return this.acceptInterrupt(vector);
        }
      }
      if (this.status === STATUS_HALTED) return;
      if (this.status === STATUS_BLOCKED) this.wake();
    }
    const top = this.current!;
    // A faulted or spinning instruction is re-executed; otherwise the program yields its next one.
    if (top.pending !== undefined) return this.executeNext(top, top.pending);
    if (top.finished) return;
    let next: IteratorResult<Instruction, number | undefined | void>;
    try {
      // Through the one %GeneratorPrototype%.next rather than top.gen.next: each program's generators have their
      // own map, so the property lookup went megamorphic as soon as a machine had run a few programs.
      next = resumeProgram.call(top.gen, top.resume);
    } catch (error) {
      return programThrew(this, error);
    }
    // The hot case: a load, store, push or pop in the Assembler's reused object (or an xchg or cmpxchg in it, which
    // only skips the fetch checks and the allocation here). It is written out here, not in a helper, so that step()
    // stays too large for V8 to inline into the run loop: compiled on its own, it has the inlining budget (counted
    // in bytecode) to take access() and the memory access in as well.
    const asm = this.asm;
    if (next.value === asm.reused && next.done !== true) {
      const unexecuted = asm.builds - asm.consumed;
      if (unexecuted !== 1) staleInstruction(this, unexecuted);
      asm.consumed = asm.builds;
      // An xchg or cmpxchg: the locked family's own path (it drains the store buffer first), pending meanwhile so
      // that a fault keeps it (raise() copies it out of the reused object).
      if (asm.reused.op > OP_POP) {
        top.pending = asm.reused;
        return this.executeNext(top, asm.reused);
      }
      this.lastKind = STEP_KIND.INSTRUCTION;
      this.lastInstruction = asm.reused;
      return this.access(top, asm.reused);
    }
    const instruction = fetchedInstruction(this, top, next);
    if (instruction !== undefined) this.executeNext(top, instruction);
  }

  private executeNext(top: Activation, instruction: Instruction): void {
    this.lastKind = STEP_KIND.INSTRUCTION;
    this.lastInstruction = instruction;
    try {
      executeInstruction(this, top, instruction);
    } catch (error) {
      instructionFailed(this, instruction, error);
    }
  }

  private acceptInterrupt(vector: number): void {
    // A CPU with no program is in the idle loop: give the interrupt a context to return to.
    if (this.activations.length === 0) {
      const idle = this.activation('task', idleLoop, [], 0, false);
      idle.finished = true;
      this.pushActivation(idle);
    }
    this.lastKind = STEP_KIND.INTERRUPT;
    this.lastAccepted = { vector, nmi: vector === VECTOR.NMI };
    this.memory.unwatch(this.id);
    deliverEvent(this, vector, 0, EVENT_SOURCE.EXTERNAL, this.rip);
  }

  /** @internal */
  complete(act: Activation, result: number): void {
    act.pending = undefined;
    act.index++;
    act.resume = result;
    this.lastResult = result;
  }

  /** Raises an exception for the current instruction (which stays pending and re-executes after iret). */
  raise(vector: number, errorCode: number, cr2: number): void {
    // The faulting instruction stays pending across the handler, whose builds refill the reused object: copy it.
    const top = this.activations[this.activations.length - 1];
    if (top?.pending === this.asm.reused) top.pending = this.asm.reused.copy();
    if (vector === VECTOR_PF) this.regs.cr2 = cr2;
    this.lastException = { vector, errorCode, cr2: this.regs.cr2 };
    deliverEvent(this, vector, errorCode, EVENT_SOURCE.EXCEPTION, this.rip);
  }

  /** `ins` faulted: it stays pending, to re-execute after the handler irets (or complete through a fixup). */
  private faulted(act: Activation, ins: Instruction): void {
    act.pending = ins;
    this.raiseFault();
  }

  /** @internal */
  drainStores(): boolean {
    const sb = this.port.storeBuffer;
    if (sb === undefined || sb.length === 0 || this.port.drainAll()) return true;
    stopOnMemoryViolation(this);
    return false;
  }

  /** @internal */
  raiseFault(): void {
    const f = this.port.fault;
    if (f.vector === VECTOR_VIOLATION) return stopOnMemoryViolation(this);
    this.raise(f.vector, f.errorCode, f.cr2);
  }

  /** @internal */
  get userAccess(): number {
    return this.regs.cpl === 3 ? ACCESS_USER : 0;
  }

  /**
   * Load, store, push and pop: the instructions the Assembler builds in its reused object, executed by the fast
   * path in step() and by execute() (an instruction re-executed after a fault, or one with a fixup).
   */
  /** @internal */
  access(act: Activation, ins: Instruction): void {
    // One read and one write call site for the four operations keeps what V8 inlines into step() within budget.
    const op = ins.op;
    const stack = op === OP_PUSH || op === OP_POP;
    const rsp = this.regs.rsp;
    // RSP within 8 bytes of a canonical boundary (0, bit 47, the top) or non-canonical takes the exact 64-bit
    // arithmetic out of line. The boundaries are multiples of 4 GiB, so RSP + 8 there has low 32 bits below 16: one
    // cheap test (that also sends the rare RSP just above any 4 GiB multiple out of line, where it is exact too).
    if (stack && (rsp >= STACK_TOP || (rsp + 8) >>> 0 < 16)) {
      return boundaryStackAccess(this, act, ins);
    }
    const access = (this.regs.cpl === 3 ? ACCESS_USER : 0) | (stack ? ACCESS_STACK : 0);
    let result = 0;
    if (op === OP_LOAD || op === OP_POP) {
      result = this.port.read(stack ? rsp : ins.va, ins.size, access);
      if (result < 0) return this.faulted(act, ins);
      if (stack) {
        this.regs.rsp = rsp + 8;
        // The stateful checker leaves a popped word out of the state until it is written again (DeadWords).
        if (this.memory.dead !== undefined) poppedWord(this.memory, this.port.lastPa);
      }
    } else {
      // A push writes below RSP and moves RSP only once the write succeeded (a faulting push changes nothing).
      if (!this.port.write(stack ? rsp - 8 : ins.va, ins.size, ins.value, access)) return this.faulted(act, ins);
      if (stack) this.regs.rsp = rsp - 8;
    }
    this.complete(act, result);
  }

  /**
   * The frame the handler at control-stack `level` received (default: the innermost handler), read from memory as
   * it is now, through this CPU's current page tables without touching TLB or A/D bits. Undefined when no handler
   * is running at that level, or when a slot is unmapped.
   */
  exceptionFrame(level?: number): ExceptionFrame | undefined {
    return handlerFrame(this, level);
  }

  /** Control stack, innermost last, for snapshots: kind, RIP and pending instruction name. */
  controlStack(): { kind: Activation['kind']; rip: number; vector: number; pending: string | undefined }[] {
    return this.activations.map((a) => ({
      kind: a.kind,
      rip: a.codeBase + RIP_STRIDE * a.index,
      vector: a.vector,
      pending: a.pending?.name,
    }));
  }
}
