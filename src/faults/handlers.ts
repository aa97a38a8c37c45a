import type { Program } from '../cpu/assembler.ts';
import { EXCEPTIONS, VECTOR } from '../cpu/exceptions.ts';
import type { GateInit, HandlerContext } from '../cpu/registers.ts';
import type { Kernel } from '../mm/kernel.ts';
import { LOCAL_TIMER_VECTOR, localTimerHandler } from '../mm/sched.ts';
import { CALL_FUNCTION_VECTOR, callFunctionHandler } from '../mm/smp.ts';
import { formatVirtual, PAGE_SIZE } from '../mmu/address.ts';
import { pageFaultHandler } from './page-fault.ts';
import { describeChain } from './reports.ts';

// The kernel's IDT (arch/x86/kernel/idt.c, traps.c): #PF through the fault dispatcher on the current stack, #DF on
// IST1 with the stack-guard check, NMI on IST2, every other exception an oops.

/** A task stack as the #DF handler knows it: the guard page is the one just below `bottom`. */
export interface GuardedStack {
  readonly bottom: number;
  readonly top: number;
  readonly guard: number;
}

/**
 * exc_double_fault (arch/x86/kernel/traps.c): CR2 in the page below the current task's stack (task_stack_page(
 * current) - 1 - cr2 < PAGE_SIZE) is a stack overflow; otherwise a panic. The current task's stack is the one the
 * kernel's contextSwitch last switched this CPU to, or the CPU's boot stack. Both reports end with the chain of
 * faults that led here.
 */
export function doubleFaultHandler(stacks: readonly GuardedStack[], kernel?: Kernel): Program<[HandlerContext]> {
  return function* doubleFault(x, ctx) {
    const chain = describeChain(ctx.chain);
    const tail = chain ? `\n${chain}` : '';
    const stack = currentStack(x.cpuId, stacks, kernel);
    if (stack && ctx.cr2 >= stack.guard && ctx.cr2 < stack.bottom) {
      yield x.die(
        'double-fault',
        'kernel stack overflow (double-fault)\n' +
          `BUG: stack guard page was hit at ${formatVirtual(ctx.cr2)} ` +
          `(stack is ${formatVirtual(stack.bottom)}..${formatVirtual(stack.top - 1)})${tail}`,
      );
    }
    yield x.die('double-fault', `PANIC: double fault, error_code: 0x${ctx.errorCode.toString(16)}${tail}`);
  };
}

/** The stack of the task CPU `cpu` runs: the kernel's `currentStack`, or the boot stack before any switch. */
function currentStack(cpu: number, stacks: readonly GuardedStack[], kernel?: Kernel): GuardedStack | undefined {
  const bottom = kernel?.currentStack[2 * cpu];
  if (bottom === undefined) return stacks[cpu];
  return { bottom, top: kernel!.currentStack[2 * cpu + 1]!, guard: bottom - PAGE_SIZE };
}

const nmi: Program<[HandlerContext]> = function* nmi(x) {
  yield x.iret();
};

const otherException: Program<[HandlerContext]> = function* otherException(x, ctx) {
  const name = EXCEPTIONS[ctx.vector]?.mnemonic ?? `vector ${ctx.vector}`;
  const detail = ctx.vector === VECTOR.GP ? 'general protection fault' : `${name} exception`;
  yield x.die('oops', `${detail}, error_code: 0x${ctx.errorCode.toString(16)} in kernel mode`);
};

/**
 * The gates for vectors 0..21: the minimal boot's (no kernel) or a booted kernel's (with the fault dispatcher),
 * and with a kernel the call-function IPI's and the local timer's.
 */
export function exceptionGates(stacks: readonly GuardedStack[], kernel?: Kernel): Map<number, GateInit> {
  const gates = new Map<number, GateInit>();
  for (const info of EXCEPTIONS) gates.set(info.vector, { handler: otherException, ist: 0, type: 'interrupt' });
  gates.set(VECTOR.PF, { handler: pageFaultHandler(kernel), ist: 0, type: 'interrupt' });
  gates.set(VECTOR.DF, { handler: doubleFaultHandler(stacks, kernel), ist: 1, type: 'interrupt' });
  gates.set(VECTOR.NMI, { handler: nmi, ist: 2, type: 'interrupt' });
  // smp_call_function's IPI: an interrupt gate, so the function runs with IF=0.
  if (kernel) gates.set(CALL_FUNCTION_VECTOR, { handler: callFunctionHandler(kernel), ist: 0, type: 'interrupt' });
  // The local timer's tick (sched.ts): an interrupt gate too; it does the scheduler's work when one is set up.
  if (kernel) gates.set(LOCAL_TIMER_VECTOR, { handler: localTimerHandler(kernel), ist: 0, type: 'interrupt' });
  return gates;
}
