import type { Assembler, Program } from '../cpu/assembler.ts';
import { ExecutionContext } from '../cpu/context.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { PTE_LO, tableIndex } from '../mmu/pte.ts';
import { type Kernel, LOCK } from './kernel.ts';
import { direct, type KernelProgram } from './kernel-page-tables.ts';
import { type VmallocRange, vmalloc } from './vmalloc.ts';

// Tasks (kernel/fork.c, arch/x86/kernel/process_64.c): a VMAP stack (THREAD_SIZE, THREAD_SIZE-aligned, an unmapped
// page below it), an mm (its PGD) and an execution context. A context switch is what context_switch() does, in
// order: switch_mm() loads CR3, then switch_to() pushes the callee-saved registers on the old stack, swaps stacks
// and control, and the next task pops its own. Each is a step, so the window between them exists.

/** THREAD_SIZE on x86-64 with 4 KiB pages (16 KiB, CONFIG_VMAP_STACK). */
export const THREAD_SIZE = 16 * 1024;

export interface TaskStack {
  readonly bottom: number;
  readonly top: number;
  /** The unmapped page just below `bottom`. */
  readonly guard: number;
}

export interface Task {
  readonly name: string;
  readonly context: ExecutionContext;
  /** The mm's PGD: the CR3 value switch_mm loads. */
  readonly pgd: number;
  readonly stack: TaskStack;
}

/** The task already running on a CPU (the boot task: its stack and mm), so that it can be switched away from. */
export function runningTask(name: string, pgd: number, stack: TaskStack): Task {
  return { name, context: new ExecutionContext(undefined, [], stack.top, name), pgd, stack };
}

/**
 * copy_process() for a kernel thread or a process: allocates a VMAP stack with vmalloc (in `range`, THREAD_SIZE
 * aligned, so the page below it is some area's guard or a gap) and makes a task that will start `program` on it
 * with `pgd` as its mm. Returns undefined (NULL) when the stack cannot be had.
 */
export function* taskCreate<A extends readonly unknown[]>(
  x: Assembler,
  kernel: Kernel,
  name: string,
  pgd: number,
  program: Program<A>,
  args: A,
  range: VmallocRange = {},
): KernelProgram<Task | undefined> {
  const bottom = yield* vmalloc(x, kernel, THREAD_SIZE, { ...range, align: THREAD_SIZE });
  if (bottom === 0) return undefined;
  const stack = { bottom, top: bottom + THREAD_SIZE, guard: bottom - PAGE_SIZE };
  return { name, context: new ExecutionContext(program as Program, args, stack.top, name), pgd, stack };
}

export interface SwitchOptions {
  /**
   * Pre-5.8 VMAP_STACK safety, with `sync: 'lazy-fault'`: probe the next task's stack (vmalloc_fault maps it into
   * the current mm) and copy the top-level entry covering the current stack into the next mm before loading CR3
   * (sync_current_stack_to_mm()). Without it, a next mm that lacks that entry makes the first push after the CR3
   * load fault on a stack the #PF cannot be delivered on: a double fault.
   */
  readonly syncStack: boolean;
}

/** context_switch(prev, next) on this CPU. Returns (in prev) when some later switch resumes prev. */
export function* contextSwitch(
  x: Assembler,
  kernel: Kernel,
  prev: Task,
  next: Task,
  options: SwitchOptions,
): KernelProgram<void> {
  const sync = options.syncStack && kernel.sync === 'lazy-fault';
  if (prev.pgd !== next.pgd) {
    if (sync) {
      // sync_current_stack_to_mm() in switch_mm_irqs_off() (arch/x86/mm/tlb.c, 4.15-5.7): the current stack's
      // top-level entry goes into the next mm before its CR3 is loaded.
      const index = tableIndex(prev.stack.bottom, 4) * 8;
      const lo = yield x.load(direct(prev.pgd + index), 4);
      const nextLo = yield x.load(direct(next.pgd + index), 4);
      if ((lo & PTE_LO.P) !== 0 && (nextLo & PTE_LO.P) === 0) {
        const hi = yield x.load(direct(prev.pgd + index + 4), 4);
        yield x.store(direct(next.pgd + index + 4), 4, hi);
        yield x.store(direct(next.pgd + index), 4, lo);
      }
    }
    yield x.movToCr3(next.pgd); // switch_mm_irqs_off()
  }
  // prepare_switch_to() (arch/x86/include/asm/switch_to.h, 4.15-5.7), in switch_to(), after context_switch()'s
  // switch_mm: READ_ONCE(*next->thread.sp) in the new mm, still on the old stack, so a missing top-level entry for
  // the next stack faults here, where vmalloc_fault can fix it, and not on the first push on that stack.
  if (sync) yield x.load(next.stack.bottom, 1);
  // __switch_to_asm: the callee-saved registers go on the old stack (one push stands for them), then the stacks
  // and control swap; the old task pops them when it runs again.
  yield x.push(0);
  yield x.atomic(LOCK.RUNQUEUE, () => {
    kernel.current[x.cpuId] = next.name; // this_cpu_write(current_task, next)
    kernel.currentStack[2 * x.cpuId] = next.stack.bottom;
    kernel.currentStack[2 * x.cpuId + 1] = next.stack.top;
    return 0;
  });
  yield x.switchContext(prev.context, next.context);
  yield x.pop();
}
