import type { PhysicalMemory } from '../mmu/physical-memory.ts';
import type { Tlb } from '../mmu/tlb.ts';
import type { Activation } from './activation.ts';
import type { LocalApic } from './apic.ts';
import type { Assembler, Program } from './assembler.ts';
import type { CalledProgram, Instruction, IpiDestination, IpiMode } from './instruction.ts';
import type { MemoryPort } from './memory-port.ts';
import type { Gate, Registers, TaskStateSegment } from './registers.ts';
import type { ExceptionEvent, StopEvent } from './step-event.ts';

// What the instruction families (control-flow.ts, delivery.ts, locked-access.ts, interrupt-control.ts,
// string-copy.ts, system-registers.ts, program-protocol.ts) need of a CPU, so that they depend on this interface
// and not on the Cpu class that uses them: the registers and memory port, the activation stack, the program
// protocol, and raising faults and stop events. `Cpu` (cpu.ts) implements it.

/** What a CPU needs from the machine around it. */
export interface CpuBus {
  /** Delivers an IPI through the APIC bus; returns the target CPU ids. */
  sendIpi(from: number, to: IpiDestination, vector: number, mode: IpiMode): readonly number[];
  /** The code address of a program: return-address tokens are made from it (same program, same RIP). */
  codeAddress(program: Program): number;
  /** The code address of a program run in user mode (a userEntry): in the low half, where user code lives. */
  userCodeAddress(program: Program): number;
  /** CPU `id`'s assembler, if that CPU exists. */
  assembler(id: number): Assembler | undefined;
  /** CPU `id`'s simulated clock in nanoseconds (what RDTSC reads). */
  clock(id: number): number;
}

/** A CPU as its instruction families see it. */
export interface CpuCore {
  readonly id: number;
  // Architectural state.
  readonly regs: Registers;
  readonly tss: TaskStateSegment;
  readonly idt: readonly (Gate | undefined)[];
  readonly tlb: Tlb;
  readonly apic: LocalApic;
  /** The memory port (TLB -> walk -> memory) every access of this CPU goes through. */
  readonly port: MemoryPort;
  readonly memory: PhysicalMemory;
  readonly asm: Assembler;
  readonly bus: CpuBus;
  /** STATUS (status.ts). */
  status: number;
  nmiBlocked: boolean;
  interruptShadow: boolean;
  readonly interruptsEnabled: boolean;
  /** ACCESS.USER at CPL 3, else 0: the user bit of this CPU's accesses. */
  readonly userAccess: number;
  /** RIP of the innermost program's next instruction. */
  readonly rip: number;

  // The activation stack.
  readonly activations: Activation[];
  /** The task program and its arguments, as given to start(). */
  readonly task: { readonly program: Program; readonly args: readonly unknown[] } | undefined;
  /** Programs registered with Assembler.userEntry, by entry RIP: where an iret to user mode may go. */
  readonly userEntries: Map<number, { readonly program: Program; readonly args: readonly unknown[] }>;
  pushActivation(a: Activation): void;
  popActivation(): void;
  /** A context switch: the control stack becomes `list` (innermost last). */
  replaceControlStack(list: readonly Activation[]): void;
  /** Starts `program` as a new activation (program-protocol.ts makeActivation, with this CPU's assembler). */
  activation(
    kind: Activation['kind'],
    program: CalledProgram,
    args: readonly unknown[],
    vector: number,
    errorCodePushed: boolean,
    frameRsp?: number,
    codeBase?: number,
    byException?: boolean,
  ): Activation;
  /** `act`'s pending instruction completed with `result`: the program resumes with it. */
  complete(act: Activation, result: number): void;
  /** Executes a load, store, push or pop (the step's fast path). */
  access(act: Activation, ins: Instruction): void;
  /**
   * Every store in this CPU's store buffer reaches memory, oldest first (MFENCE, locked and serializing
   * instructions, event delivery). False when the frame guard refused one: the CPU has stopped.
   */
  drainStores(): boolean;

  // Faults and stops.
  /** Raises an exception for the current instruction (which stays pending and re-executes after iret). */
  raise(vector: number, errorCode: number, cr2: number): void;
  /** Raises the fault the memory port recorded (a #PF, #GP, #SS, or a memory-safety violation). */
  raiseFault(): void;
  stop(event: StopEvent): void;
  shutdown(reason: string): void;
  /** Exceptions raised in the current step. */
  readonly exceptionLog: ExceptionEvent[];
  lastException: { vector: number; errorCode: number; cr2: number } | undefined;

  // What the last step did, for its trace event.
  lastResult: number;
  lastCopyDestination: number;
  lastIpiTargets: readonly number[] | undefined;

  /** What the last step did (STEP_KIND, status.ts). */
  lastKind: number;

  /** Delivery starts a handler whose frame it pushed. */
  enterHandler(handler: Activation): void;
}
