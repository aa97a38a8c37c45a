import type { CalledProgram, Instruction, ProgramGenerator } from './instruction.ts';

// The CPU's control stack is a list of activations, innermost last: the task program, the programs it called, and
// the handlers that interrupted them. Each is a generator plus where it is (RIP = codeBase + 4 * index).

/** One level of the CPU's control stack: the task program, a called program, or a handler. */
export interface Activation {
  readonly kind: 'task' | 'call' | 'handler';
  readonly gen: ProgramGenerator;
  /** The program and arguments `gen` was made from (the stateful checker makes it again from them). */
  readonly program: CalledProgram;
  readonly args: readonly unknown[];
  readonly codeBase: number;
  /** Instructions completed; RIP = codeBase + 4 * index. */
  index: number;
  /** The instruction to execute next (a faulted or blocked one is re-executed from here). */
  pending: Instruction | undefined;
  /** Value to resume the generator with. */
  resume: number;
  /** The task program returned: the CPU idles (halted) under it. */
  finished: boolean;
  /** Handler only: the vector pushed an error code (the entry code drops it before iret). */
  readonly errorCodePushed: boolean;
  readonly vector: number;
  /** Handler only: RSP just after its frame was pushed (where exceptionFrame() reads it). */
  readonly frameRsp: number;
  /** Handler only: entered by an exception (not INT n or an interrupt), so an abort vector's frame is undefined. */
  readonly byException: boolean;
  /** Bytes a pending `copy` has moved so far (its RSI/RDI/RCX progress); 0 otherwise. */
  progress: number;
}
