import type { Activation } from './activation.ts';
import type { CalledProgram } from './instruction.ts';

// An execution context: what a CPU runs, saved while it runs something else. A kernel task is one (its control
// stack of program activations and its RSP); `x.switchContext(from, to)` is the switch_to() that swaps them, one
// step, after which the CPU runs `to` on `to`'s stack. The CPU layer knows nothing of tasks: the kernel (src/mm)
// gives each task a context.

export class ExecutionContext {
  /** The saved control stack, innermost last; undefined until the context first runs and is switched away from. */
  saved: Activation[] | undefined;
  /** RSP to run on: the initial stack top, then wherever it was when the context was switched away from. */
  rsp: number;

  constructor(
    /** The program a fresh context starts with; undefined for a context that is running already (the boot task). */
    readonly program: CalledProgram | undefined,
    readonly args: readonly unknown[],
    initialRsp: number,
    /** A name for reports ("task 2"). */
    readonly name: string,
  ) {
    this.rsp = initialRsp;
  }
}
