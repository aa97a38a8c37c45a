import type { Assembler } from '../cpu/assembler.ts';
import { Machine } from '../machine/machine.ts';
import { mmCreate } from '../mm/mm.ts';
import { contextSwitch, runningTask, type Task, taskCreate } from '../mm/task.ts';
import { LAYOUT } from '../mmu/address.ts';
import { VMAP_STACK_SWITCH } from './listing.ts';
import type { Scenario } from './scenario.ts';
import { FRESH_SLOT, vmallocProcess } from './vmalloc-fault.ts';

// The vmalloc family (docs/scenarios/vmalloc.md): a context switch to a task whose mm lacks the top-level entry
// covering the current stack. The process's mm is made first; then a kernel thread gets a VMAP stack in a fresh
// 512 GiB slot, so init_mm gains a top-level entry the process's PGD does not have. The kernel thread switches to
// the process: switch_mm loads the process's CR3 while the CPU is still on the thread's stack, and switch_to's
// first push faults. #PF is delivered on the current stack, which is not mapped either: #DF. Pre-5.8 kernels
// avoided it by syncing the current stack's top-level entry into the next mm in switch_mm (`-p sync-stack=true`).

export const vmapStackSwitch: Scenario = {
  ...VMAP_STACK_SWITCH,
  build(p, o) {
    const syncStack = p['sync-stack'] as boolean;
    const cpus = p.cpus as number;
    const machine = Machine.create({ cpus, trace: o.trace, kernel: { sync: 'lazy-fault' } });
    const kernel = machine.kernel!;
    const bootStack = machine.boot!.taskStacks[0]!;
    const boot = runningTask('boot', kernel.initMm, bootStack);
    let thread: Task | undefined;
    let process: Task | undefined;
    const processMain = function* processMain(x: Assembler) {
      yield x.push(1);
      yield x.pop();
    };
    const threadMain = function* threadMain(x: Assembler) {
      yield* contextSwitch(x, kernel, thread!, process!, { syncStack });
    };
    machine.load(0, function* bootMain(x: Assembler) {
      const pgd = yield* mmCreate(x, kernel); // the process's mm, made before the fresh slot exists
      process = yield* taskCreate(x, kernel, 'process', pgd, processMain, []);
      thread = yield* taskCreate(x, kernel, 'kthread', kernel.initMm, threadMain, [], {
        start: FRESH_SLOT,
        end: LAYOUT.vmallocEnd,
      });
      yield x.assert(process !== undefined && thread !== undefined, 'the stacks were allocated');
      yield* contextSwitch(x, kernel, boot, thread!, { syncStack });
    });
    // The other CPUs run processes that vmalloc at the same time (the allocator and init_mm are shared).
    for (let id = 1; id < cpus; id++) machine.load(id, vmallocProcess(kernel));
    return { machine, run: { schedule: 'round-robin', maxSteps: 100_000 } };
  },
};
