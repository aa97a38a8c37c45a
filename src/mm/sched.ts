import type { Assembler, Program } from '../cpu/assembler.ts';
import { ExecutionContext } from '../cpu/context.ts';
import { type HandlerContext, RFLAGS } from '../cpu/registers.ts';
import { LAYOUT, PAGE_SIZE } from '../mmu/address.ts';
import { describeValue, InputError, requireInteger, requireOneOf, requireOptions } from '../mmu/input-error.ts';
import { MIGRATETYPE } from './buddy.ts';
import { type Kernel, type KernelScheduler, OWNER } from './kernel.ts';
import { direct, type KernelProgram } from './kernel-page-tables.ts';
import { irqStackTop, spinLock, spinUnlock } from './smp.ts';
import { contextSwitch, runningTask, type Task, type TaskStack, THREAD_SIZE } from './task.ts';
import { vmalloc } from './vmalloc.ts';

// A minimal scheduler as kernel programs, after kernel/sched/core.c (v6.x): per-CPU run queues, schedule() with
// context_switch() and finish_task_switch(), the idle task's loop, scheduler_tick() on the local timer interrupt,
// preempt_schedule_irq() on the way out of it, a push to another CPU's run queue, and a hold-off for migration
// protocols. Everything CPUs race on is a word in emulated memory (the scheduler's page, below), read and written
// with load/store/xchg/cmpxchg, so every interleaving of two CPUs' scheduler steps is a real one.
//
// Simplifications, each named where it is made: no CFS (the pick is round-robin over a bitmask run queue), one
// need_resched word per CPU (not TIF_NEED_RESCHED per task), no priorities, no wake-up from sleep (tasks are runnable
// until they exit), `held` as the stand-in for what a real kernel does to keep a task off every CPU
// (migrate_disable(), or task_rq_lock() + dequeue_task() held across the work), and migration at a task's
// migration points (between the steps of its program: see `migrate`).
//
// Task ids are 1..4; 0 is the idle task (swapper/N, pid 0 in Linux). The scheduler's page (one zone page, taken at
// set-up and direct-mapped, zero as memory starts) holds, as 8-byte words:
//   per CPU c, at c * 64:        curr, rq (queued task bits, STOP), need_resched, rq lock, tick budget, last
//   per task t, at 256 + t * 64: cpu (task_cpu), on_cpu, held (HELD_OFF or PINNED), step (its next step),
//                                migrate_to (target + 1), dead
//   at 1024:                     ready (sched_init done), live (tasks not exited)
//
// A task's program is a list of steps (programs), run one after another by its entry code. The model's program
// continuation is a chain of generators bound to the CPU whose Assembler made them (cpu/program-protocol.ts refuses
// an instruction built by another CPU's Assembler): a switched-out context resumes only on the CPU it ran on. So a
// task has one context per CPU (an incarnation, all on the task's one stack); preemption resumes the same
// incarnation anywhere in a step, and migration hands the task to another CPU between steps, where everything the
// task carries across is in memory: its stack and its step word. An incarnation left on the old CPU is parked
// right after its switch at the migration point, at the same stack depth as every other one, and resumes there if
// the task comes back.

/** The held word: kept off every CPU (holdTask), or kept on its own (pinTask); either way, never migrated. */
const HELD_OFF = 1;
const PINNED = 2;

/** LOCAL_TIMER_VECTOR (arch/x86/include/asm/irq_vectors.h): the local APIC timer's interrupt. */
export const LOCAL_TIMER_VECTOR = 0xec;
/** The idle task's id (swapper/N). */
export const IDLE = 0;
export const MAX_SCHED_TASKS = 4;
export const MAX_SCHED_CPUS = 4;
/** The rq word's bit that tells the idle loop every task has exited (the model's end of the run). */
export const RQ_STOP = 2 ** 31;
const TASK_BITS = 0x1e;
/** Tick budget per CPU when the set-up names none. */
const DEFAULT_TICKS = 2;
/** Where the tasks' stacks go in the vmalloc space: past the boot stacks, one stack and a gap per task. */
const STACKS_BASE = LAYOUT.vmallocStart + 2 ** 36;
const STACK_STRIDE = 2 * THREAD_SIZE;

/**
 * How ticks act: `pinned` arms none (tasks run to their end, in turn); `preempt` makes a tick with another
 * runnable task queued preempt the current one on the way out of the interrupt; `migrate` makes a tick ask that
 * the current task move to the next scheduler CPU, which it does at its next migration point.
 */
export type SchedPolicy = 'pinned' | 'preempt' | 'migrate';
export const SCHED_POLICIES: readonly SchedPolicy[] = ['pinned', 'preempt', 'migrate'];

/**
 * A step of a task's program: called with the task's id and the step's index (its identity for the stateful
 * checker, which knows a program by its source text and arguments, not by what a closure captured).
 */
export type SchedStep = Program<[task: number, step: number]>;

/** A task: its name (kernel.current shows it), the CPU whose run queue it starts on, and its program's steps. */
export interface SchedTaskSpec {
  readonly name: string;
  readonly cpu: number;
  /** Run in order, each by `call` on the task's stack; between two is a migration point. At least one. */
  readonly steps: readonly SchedStep[];
  /**
   * A word the task keeps at the top of its stack for its whole life, pushed first thing (as pt_regs sits at the
   * top of a Linux task's stack): what another CPU's stack unwinder can read. Default: none.
   */
  readonly topWord?: number;
}

export interface SchedSetup {
  readonly policy: SchedPolicy;
  /** 1..4 tasks; task i (from 0) gets id i + 1. */
  readonly tasks: readonly SchedTaskSpec[];
  /** The CPUs that run the scheduler (their idle loops), 1..4 of the kernel's; default all. The first one boots it. */
  readonly cpus?: readonly number[];
  /** Ticks each scheduler CPU takes (the first arms the rest, one at a time). Default 2; ignored for `pinned`. */
  readonly ticks?: number;
}

const CPU_WORD = { CURR: 0, RQ: 8, NEED_RESCHED: 16, RQ_LOCK: 24, TICKS: 32, LAST: 40 } as const;
const TASK_WORD = { CPU: 0, ON_CPU: 8, HELD: 16, STEP: 24, MIGRATE_TO: 32, DEAD: 40 } as const;
const GLOBAL_WORD = { READY: 1024, LIVE: 1032 } as const;

/** How a schedule() call came about, which decides what the switched-in side does (finish_task_switch's tail). */
type How = 'idle' | 'yield' | 'preempt' | 'migrate' | 'exit' | 'fresh';

function bit(id: number): number {
  return 1 << id;
}

/**
 * The scheduler of one kernel: its words, its tasks' contexts (one per task per scheduler CPU), the idle tasks, and
 * the programs: `idle`, which every scheduler CPU runs (machine.load(cpu, scheduler.idle)), the task entry, and
 * the timer tick.
 */
export class Scheduler implements KernelScheduler {
  /** Physical address of the scheduler's page. */
  readonly area: number;
  readonly policy: SchedPolicy;
  readonly cpus: readonly number[];
  readonly ticks: number;
  readonly tasks: readonly SchedTaskSpec[];
  /** Per task id (index 0 unused): its stack, fixed at set-up and allocated by sched_init. */
  readonly stacks: readonly TaskStack[];
  /** The idle task of each CPU (by CPU id; undefined for CPUs that do not run the scheduler). */
  private readonly idleTasks: (Task | undefined)[];
  /** Per task id, per CPU id: the task's context on that CPU (see the module comment). */
  private readonly incarnations: (Task | undefined)[][];
  /** The program each scheduler CPU runs: sched_init on the first, then the idle loop (cpu_startup_entry()). */
  readonly idle: Program<[]>;

  constructor(
    readonly kernel: Kernel,
    bootStacks: readonly TaskStack[],
    setup: SchedSetup,
  ) {
    const o = requireOptions<SchedSetup>(setup, 'scheduler set-up', ['policy', 'tasks', 'cpus', 'ticks']);
    this.policy = requireOneOf(o.policy, 'scheduler policy', SCHED_POLICIES);
    this.cpus = checkCpus(o.cpus, kernel.cpus);
    this.ticks = o.ticks === undefined ? DEFAULT_TICKS : requireInteger(o.ticks, 'scheduler ticks', 0, 64);
    this.tasks = checkTasks(o.tasks, this.cpus);
    // The page's words are zero: it was never written (as the SMP area at boot), and sched_init stores the rest.
    const pfn = kernel.zone.alloc(0, MIGRATETYPE.UNMOVABLE, OWNER.OTHER);
    if (pfn < 0) throw new InputError('scheduler set-up: the zone has no free page for the scheduler words');
    this.area = pfn * PAGE_SIZE;
    const pgd = kernel.initMm;
    this.stacks = [bootStacks[0]!, ...this.tasks.map((_, i) => stackOf(i + 1))];
    this.idleTasks = Array.from({ length: kernel.cpus }, (_, c) =>
      this.cpus.includes(c) ? runningTask(`swapper/${c}`, pgd, bootStacks[c]!) : undefined,
    );
    const entry = this.taskEntry();
    this.incarnations = [[], ...this.tasks.map((_, i) => this.incarnationsOf(i + 1, entry))];
    this.idle = this.idleLoop();
    kernel.scheduler = this;
  }

  private incarnationsOf(id: number, entry: Program<[number]>): (Task | undefined)[] {
    const spec = this.tasks[id - 1]!;
    return Array.from({ length: this.kernel.cpus }, (_, c) => {
      if (!this.cpus.includes(c)) return undefined;
      // The context is made fresh (program and stack top) the way taskCreate makes one; runningTask gives its shape.
      const task = runningTask(spec.name, this.kernel.initMm, this.stacks[id]!);
      return { ...task, context: freshContext(task, entry, id, `${spec.name}@cpu${c}`) };
    });
  }

  /** KernelScheduler: the queries and the hold-off a migration protocol uses (the functions below). */
  taskCpu(x: Assembler, task: number): KernelProgram {
    return taskCpu(x, this.kernel, task);
  }
  isCurrentOn(x: Assembler, task: number): KernelProgram {
    return isCurrentOn(x, this.kernel, task);
  }
  hold(x: Assembler, task: number): KernelProgram {
    return holdTask(x, this.kernel, task);
  }
  pin(x: Assembler, task: number, pinned: boolean): KernelProgram<void> {
    return pinTask(x, this.kernel, task, pinned);
  }
  release(x: Assembler, task: number): KernelProgram<void> {
    return releaseTask(x, this.kernel, task);
  }

  /** KernelScheduler: every context back to fresh (an image instance starts over). */
  reset(): void {
    for (const t of this.idleTasks) if (t) resetContext(t);
    for (const row of this.incarnations) for (const t of row) if (t) resetContext(t);
  }

  // Words --------------------------------------------------------------------------------------------------------

  cpuWord(cpu: number, word: keyof typeof CPU_WORD): number {
    return direct(this.area + cpu * 64 + CPU_WORD[word]);
  }
  taskWord(task: number, word: keyof typeof TASK_WORD): number {
    return direct(this.area + 256 + task * 64 + TASK_WORD[word]);
  }
  globalWord(word: keyof typeof GLOBAL_WORD): number {
    return direct(this.area + GLOBAL_WORD[word]);
  }
  rqLock(cpu: number): number {
    return this.cpuWord(cpu, 'RQ_LOCK');
  }

  /** Names for the words, for deadlock reports and traces. */
  symbols(): Map<number, string> {
    const names = new Map<number, string>();
    for (const c of this.cpus)
      for (const w of Object.keys(CPU_WORD))
        names.set(this.cpuWord(c, w as keyof typeof CPU_WORD), `rq${c}.${w.toLowerCase()}`);
    for (let t = 1; t <= this.tasks.length; t++) {
      for (const w of Object.keys(TASK_WORD))
        names.set(this.taskWord(t, w as keyof typeof TASK_WORD), `${this.tasks[t - 1]!.name}.${w.toLowerCase()}`);
    }
    names.set(this.globalWord('READY'), 'sched.ready');
    names.set(this.globalWord('LIVE'), 'sched.live');
    return names;
  }

  /** The task `id` runs as on CPU `cpu` (the idle task for id 0). */
  private taskOn(id: number, cpu: number): Task {
    const t = id === IDLE ? this.idleTasks[cpu] : this.incarnations[id]?.[cpu];
    if (!t) throw new Error(`internal: no context for task ${id} on CPU ${cpu}`);
    return t;
  }

  private nextCpu(cpu: number): number {
    return this.cpus[(this.cpus.indexOf(cpu) + 1) % this.cpus.length]!;
  }

  // sched_init and the idle loop -----------------------------------------------------------------------------------

  /**
   * sched_init() (kernel/sched/core.c) on the first scheduler CPU, before the others start (smp_init() comes after
   * it in start_kernel): each task's VMAP stack (vmalloc in the task's fixed slot: the contexts made at set-up
   * start there), its task_cpu, the run queues, the tick budgets, the live count; then `ready`.
   */
  private *schedInit(x: Assembler): KernelProgram<void> {
    for (let id = 1; id <= this.tasks.length; id++) {
      const stack = this.stacks[id]!;
      const bottom = yield* vmalloc(x, this.kernel, THREAD_SIZE, {
        start: stack.bottom,
        end: stack.bottom + STACK_STRIDE,
        align: THREAD_SIZE,
      });
      yield x.assert(bottom === stack.bottom, `task ${id}'s stack is at its slot (vmalloc gave ${bottom})`);
      yield x.store(this.taskWord(id, 'CPU'), 8, this.tasks[id - 1]!.cpu);
    }
    for (const c of this.cpus) {
      let mask = 0;
      this.tasks.forEach((t, i) => {
        if (t.cpu === c) mask |= bit(i + 1);
      });
      if (mask !== 0) yield x.store(this.cpuWord(c, 'RQ'), 8, mask);
      if (this.policy !== 'pinned' && this.ticks > 0) yield x.store(this.cpuWord(c, 'TICKS'), 8, this.ticks);
    }
    yield x.store(this.globalWord('LIVE'), 8, this.tasks.length);
    yield x.store(this.globalWord('READY'), 8, 1);
  }

  /**
   * cpu_startup_entry() -> do_idle() (kernel/sched/idle.c): the first scheduler CPU runs sched_init, the others
   * wait for it; each arms its tick, enables interrupts and spins on its run queue (the model's idle poll: the CPU
   * is blocked, not stepping, until the word changes or an interrupt comes), then schedule()s. It returns when every
   * task has exited (RQ_STOP), so that a run ends.
   */
  private idleLoop(): Program<[]> {
    const s = this;
    return function* idle(x: Assembler) {
      const c = x.cpuId;
      if (!s.cpus.includes(c))
        throw new InputError(`CPU ${c} does not run the scheduler (its CPUs: ${s.cpus.join(', ')})`);
      if (c === s.cpus[0]) yield* s.schedInit(x);
      else yield x.waitUntil(s.globalWord('READY'), 8, (v) => v === 1);
      if (s.policy !== 'pinned') yield* s.armTick(x, c);
      yield x.sti();
      for (;;) {
        const rq: number = yield x.spinUntil(s.cpuWord(c, 'RQ'), 8, (v) => v !== 0);
        if (rq >= RQ_STOP) break;
        yield* s.schedule(x, IDLE, 'idle');
      }
      yield x.store(s.cpuWord(c, 'TICKS'), 8, 0); // no more ticks: the CPU is done
    };
  }

  // schedule() ----------------------------------------------------------------------------------------------------

  /**
   * schedule() -> __schedule() on this CPU for task `prev` (its id): interrupts off, the rq lock, then the pick
   * and the switch (pickAndSwitch). Returns when `prev` runs again.
   */
  *schedule(x: Assembler, prev: number, how: How): KernelProgram<void> {
    yield x.cli(); // local_irq_disable() in __schedule()
    yield* spinLock(x, this.rqLock(x.cpuId)); // rq_lock(rq, &rf)
    yield* this.pickAndSwitch(x, prev, how);
  }

  /**
   * The rest of __schedule() with IF=0 and this CPU's rq lock held: clear need_resched, put `prev` back on the queue
   * when it is still runnable here (put_prev_task(): a preempted or yielding task), pick the next (round-robin after
   * `prev`; the model's pick_next_task()), then context_switch(). The lock is released on the other side, by the
   * task switched in (finishTaskSwitch), as finish_task_switch() -> finish_lock_switch() does.
   */
  private *pickAndSwitch(x: Assembler, prev: number, how: How): KernelProgram<void> {
    const c = x.cpuId;
    const rqWord = this.cpuWord(c, 'RQ');
    yield x.store(this.cpuWord(c, 'NEED_RESCHED'), 8, 0); // clear_tsk_need_resched(prev)
    const rq: number = yield x.load(rqWord);
    let queued = rq & TASK_BITS;
    if (prev !== IDLE && (how === 'preempt' || how === 'yield')) queued |= bit(prev);
    const next = pickNext(queued, prev, this.tasks.length);
    if (next !== IDLE) queued &= ~bit(next);
    if (queued !== (rq & TASK_BITS)) yield x.store(rqWord, 8, rq - (rq & TASK_BITS) + queued);
    if (next === prev) {
      // Nothing else to run: prev goes on (no switch; __schedule()'s rq unlock on the same side).
      yield* spinUnlock(x, this.rqLock(c));
      if (how !== 'preempt') yield x.sti();
      return;
    }
    if (next !== IDLE) {
      // The CPU `next` last ran on may still be switching away from it: wait for its on_cpu to clear (what
      // try_to_wake_up() does with smp_cond_load_acquire(&p->on_cpu, !VAL)), then claim it.
      yield x.waitUntil(this.taskWord(next, 'ON_CPU'), 8, (v) => v === 0);
      yield x.store(this.taskWord(next, 'ON_CPU'), 8, 1);
    }
    yield x.store(this.cpuWord(c, 'CURR'), 8, next); // RCU_INIT_POINTER(rq->curr, next)
    yield x.store(this.cpuWord(c, 'LAST'), 8, prev); // what switch_to() hands the next task as `last`
    // context_switch(): switch_mm (same mm here: kernel threads on init_mm) and switch_to, kernel.current with it.
    yield* contextSwitch(x, this.kernel, this.taskOn(prev, c), this.taskOn(next, c), { syncStack: false });
    // prev runs again, on this CPU (contexts do not move between CPUs).
    yield* this.finishTaskSwitch(x, how);
  }

  /**
   * finish_task_switch(), run by the task switched in: `last` (the task switched away from) is off this CPU now
   * (finish_task(): smp_store_release(&prev->on_cpu, 0)), the rq lock is released (finish_lock_switch()), and
   * interrupts come back on, except for a task resuming in preempt_schedule_irq(), which returns to its interrupt
   * exit with IF=0 (Linux enables them here and disables them again there: the model leaves them off).
   */
  private *finishTaskSwitch(x: Assembler, how: How): KernelProgram<void> {
    const c = x.cpuId;
    const last: number = yield x.load(this.cpuWord(c, 'LAST'));
    if (last !== IDLE) yield x.store(this.taskWord(last, 'ON_CPU'), 8, 0);
    yield* spinUnlock(x, this.rqLock(c));
    if (how !== 'preempt') yield x.sti();
  }

  // Tasks -----------------------------------------------------------------------------------------------------------

  /**
   * The code every task context starts with: its top word if it keeps one (each incarnation pushes the same value
   * to the same place), schedule_tail() (finish_task_switch() for a fresh task, which enables interrupts: the
   * task's steps run with IF=1), then its steps from the one its step word names, a migration point after each
   * (migrate policy), and do_exit().
   */
  private taskEntry(): Program<[number]> {
    const s = this;
    return function* taskEntry(x: Assembler, id: number) {
      const top = s.tasks[id - 1]!.topWord;
      if (top !== undefined) yield x.push(top);
      yield* s.finishTaskSwitch(x, 'fresh');
      const steps = s.tasks[id - 1]!.steps;
      for (;;) {
        const k: number = yield x.load(s.taskWord(id, 'STEP'));
        if (k >= steps.length) break;
        yield x.call(steps[k]!, id, k);
        yield x.store(s.taskWord(id, 'STEP'), 8, k + 1);
        if (s.policy === 'migrate') yield* s.migrationPoint(x, id);
      }
      yield* s.exit(x, id);
    };
  }

  /**
   * A migration point: when a tick asked this task to move (migrate_to), it moves itself to the target CPU's run
   * queue and switches away, as the load balancer's push does (push_cpu_stop()/migration_cpu_stop() ->
   * move_queued_task(): under both rq locks, set_task_cpu() and activate_task() on the target). Both locks are taken
   * in CPU order (double_rq_lock()). A held task is not moved (it cannot be held while it runs, so this is the
   * check, not a case). Returns when this incarnation runs again (the task came back to this CPU).
   */
  private *migrationPoint(x: Assembler, id: number): KernelProgram<void> {
    const c = x.cpuId;
    const to: number = yield x.load(this.taskWord(id, 'MIGRATE_TO'));
    if (to === 0) return;
    const target = to - 1;
    yield x.cli();
    const [first, second] = c < target ? [c, target] : [target, c];
    yield* spinLock(x, this.rqLock(first));
    yield* spinLock(x, this.rqLock(second));
    yield x.store(this.taskWord(id, 'MIGRATE_TO'), 8, 0);
    const held: number = yield x.load(this.taskWord(id, 'HELD')); // held off, or pinned (pinTask)
    if (held !== 0 || target === c) {
      yield* spinUnlock(x, this.rqLock(second));
      yield* spinUnlock(x, this.rqLock(first));
      yield x.sti();
      return;
    }
    yield x.store(this.taskWord(id, 'CPU'), 8, target); // set_task_cpu(p, new_cpu)
    const rq: number = yield x.load(this.cpuWord(target, 'RQ'));
    yield x.store(this.cpuWord(target, 'RQ'), 8, (rq & bit(id)) === 0 ? rq + bit(id) : rq); // activate_task(dst_rq, p): the idle loop there wakes
    yield* spinUnlock(x, this.rqLock(target));
    yield* this.pickAndSwitch(x, id, 'migrate'); // with this CPU's rq lock still held
  }

  /**
   * do_exit() -> do_task_dead(): the last task to exit tells every idle loop to stop (RQ_STOP in each run queue,
   * under its lock, one at a time); the task is marked dead and switches away for good. Its context is never
   * resumed.
   */
  private *exit(x: Assembler, id: number): KernelProgram<void> {
    yield x.cli();
    const live = this.globalWord('LIVE');
    let left: number = yield x.load(live);
    for (;;) {
      const seen: number = yield x.cmpxchg(live, 8, left, left - 1);
      if (seen === left) break;
      left = seen;
    }
    if (left === 1) {
      for (const d of this.cpus) {
        yield* spinLock(x, this.rqLock(d));
        const rq: number = yield x.load(this.cpuWord(d, 'RQ'));
        if (rq < RQ_STOP) yield x.store(this.cpuWord(d, 'RQ'), 8, rq + RQ_STOP);
        yield* spinUnlock(x, this.rqLock(d));
      }
    }
    yield* spinLock(x, this.rqLock(x.cpuId));
    yield x.store(this.taskWord(id, 'DEAD'), 8, 1); // TASK_DEAD
    yield* this.pickAndSwitch(x, id, 'exit');
    yield x.assert(false, `task ${id} ran again after it exited`);
  }

  // The tick ------------------------------------------------------------------------------------------------------

  /** Arms this CPU's next tick while its budget lasts (a one-shot timer: tick_program_event()), as a self-IPI. */
  private *armTick(x: Assembler, c: number): KernelProgram<void> {
    const left: number = yield x.load(this.cpuWord(c, 'TICKS'));
    if (left === 0) return;
    yield x.store(this.cpuWord(c, 'TICKS'), 8, left - 1);
    yield x.sendIpi([c], LOCAL_TIMER_VECTOR);
  }

  /**
   * The local timer interrupt (sysvec_apic_timer_interrupt -> tick_handle_periodic -> scheduler_tick()), on the
   * CPU's IRQ stack: EOI, re-arm, then the policy's task_tick: `preempt` sets need_resched when another task is
   * queued here (resched_curr(); the queue is read without the rq lock: a hint, __schedule decides under it);
   * `migrate` asks the current task to move to the next scheduler CPU. Back on the interrupted stack, with IF=0:
   * irqentry_exit_cond_resched() -> preempt_schedule_irq() when need_resched is set and the interrupted code had
   * interrupts on and was a task (not the idle loop); the handler goes on (and irets) when the task runs again.
   * Linux loops while need_resched is set again; here nothing can set it while IF=0, so once is all.
   */
  *timerInterrupt(x: Assembler, ctx: HandlerContext): KernelProgram<void> {
    const c = x.cpuId;
    yield x.movToRsp(irqStackTop(this.kernel, c));
    yield x.eoi();
    yield* this.armTick(x, c);
    const curr: number = yield x.load(this.cpuWord(c, 'CURR'));
    if (curr !== IDLE && this.policy === 'preempt') {
      const rq: number = yield x.load(this.cpuWord(c, 'RQ'));
      if ((rq & TASK_BITS) !== 0) yield x.store(this.cpuWord(c, 'NEED_RESCHED'), 8, 1);
    } else if (curr !== IDLE && this.policy === 'migrate' && this.cpus.length > 1) {
      yield x.store(this.taskWord(curr, 'MIGRATE_TO'), 8, this.nextCpu(c) + 1);
    }
    yield x.movToRsp(ctx.frameRsp);
    if (curr === IDLE || this.policy !== 'preempt') return;
    const resched: number = yield x.load(this.cpuWord(c, 'NEED_RESCHED'));
    if (resched === 0) return;
    const rflags: number = yield x.load(ctx.frameRsp + 16); // the interrupted RFLAGS in the frame
    if ((rflags & RFLAGS.IF) === 0) return;
    yield* this.schedule(x, curr, 'preempt');
  }
}

/** A context as taskCreate makes one: `program(id)` from the top of the task's stack. */
function freshContext(task: Task, program: Program<[number]>, id: number, name: string): ExecutionContext {
  return new ExecutionContext(program as Program, [id], task.stack.top, name);
}

function resetContext(task: Task): void {
  task.context.saved = undefined;
  task.context.rsp = task.stack.top;
}

function stackOf(id: number): TaskStack {
  const bottom = STACKS_BASE + (id - 1) * STACK_STRIDE;
  return { bottom, top: bottom + THREAD_SIZE, guard: bottom - PAGE_SIZE };
}

/** Round-robin: the first queued id after `prev`, wrapping; `prev` itself last; IDLE when none is queued. */
function pickNext(queued: number, prev: number, tasks: number): number {
  for (let k = 1; k <= tasks; k++) {
    const id = ((prev - 1 + k + tasks) % tasks) + 1;
    if ((queued & bit(id)) !== 0) return id;
  }
  return IDLE;
}

function checkCpus(cpus: unknown, available: number): readonly number[] {
  if (cpus === undefined) {
    if (available > MAX_SCHED_CPUS) {
      throw new InputError(
        `scheduler cpus: the kernel has ${available} CPUs, more than ${MAX_SCHED_CPUS}: name at most ${MAX_SCHED_CPUS}`,
      );
    }
    return Array.from({ length: available }, (_, i) => i);
  }
  if (!Array.isArray(cpus) || cpus.length === 0 || cpus.length > MAX_SCHED_CPUS) {
    throw new InputError(`scheduler cpus ${describeValue(cpus)} must be an array of 1..${MAX_SCHED_CPUS} CPU ids`);
  }
  const ids = cpus.map((c: unknown) => requireInteger(c, 'scheduler cpu', 0, available - 1));
  if (new Set(ids).size !== ids.length) throw new InputError(`scheduler cpus [${ids.join(', ')}] name a CPU twice`);
  return ids;
}

function checkTasks(tasks: unknown, cpus: readonly number[]): readonly SchedTaskSpec[] {
  if (!Array.isArray(tasks) || tasks.length === 0 || tasks.length > MAX_SCHED_TASKS) {
    throw new InputError(`scheduler tasks ${describeValue(tasks)} must be an array of 1..${MAX_SCHED_TASKS} tasks`);
  }
  return tasks.map((t: unknown, i) => {
    const o = requireOptions<SchedTaskSpec>(t, `scheduler task ${i + 1}`, ['name', 'cpu', 'steps', 'topWord']);
    if (typeof o.name !== 'string' || o.name.length === 0) {
      throw new InputError(`scheduler task ${i + 1} name ${describeValue(o.name)} must be a non-empty string`);
    }
    const cpu = requireInteger(o.cpu, `scheduler task ${o.name} cpu`, 0, Number.MAX_SAFE_INTEGER);
    if (!cpus.includes(cpu)) {
      throw new InputError(`scheduler task ${o.name} cpu ${cpu} is not a scheduler CPU (${cpus.join(', ')})`);
    }
    if (!Array.isArray(o.steps) || o.steps.length === 0 || o.steps.some((p) => typeof p !== 'function')) {
      throw new InputError(
        `scheduler task ${o.name} steps ${describeValue(o.steps)} must be a non-empty array of programs`,
      );
    }
    const topWord =
      o.topWord === undefined
        ? undefined
        : requireInteger(o.topWord, `scheduler task ${o.name} topWord`, 0, Number.MAX_SAFE_INTEGER);
    return { name: o.name, cpu, steps: [...o.steps], ...(topWord === undefined ? {} : { topWord }) };
  });
}

/**
 * Sets up a scheduler on `kernel` before the first step: checks `setup`, takes its page, makes the tasks' contexts
 * (their stacks are vmalloc'd by sched_init, in slots fixed here). Load `scheduler.idle` on each scheduler CPU.
 * `bootStacks` are the CPUs' boot stacks (machine.boot.taskStacks): the idle tasks run on them.
 */
export function schedSetup(kernel: Kernel, bootStacks: readonly TaskStack[], setup: SchedSetup): Scheduler {
  if (kernel.scheduler !== undefined) throw new InputError('scheduler set-up: this kernel has a scheduler already');
  return new Scheduler(kernel, bootStacks, setup);
}

function schedulerOf(kernel: Kernel, what: string): Scheduler {
  const s = kernel.scheduler;
  if (!(s instanceof Scheduler)) throw new InputError(`${what}: the kernel has no scheduler (call schedSetup first)`);
  return s;
}

function checkTask(s: Scheduler, task: unknown, what: string): number {
  return requireInteger(task, `${what} task`, 1, s.tasks.length);
}

/** Waits until sched_init has run (for a program on a CPU that is not the scheduler's boot CPU). */
export function* schedReady(x: Assembler, kernel: Kernel): KernelProgram<void> {
  const s = schedulerOf(kernel, 'schedReady');
  yield x.waitUntil(s.globalWord('READY'), 8, (v) => v === 1);
}

/**
 * task_rq_lock() with interrupts off: the rq lock of the task's CPU, re-checked after taking it (the task may have
 * moved meanwhile: then again). Returns the CPU and the saved RFLAGS.
 */
function* taskRqLock(x: Assembler, s: Scheduler, task: number): KernelProgram<[number, number]> {
  const flags: number = yield x.readFlags();
  yield x.cli();
  for (;;) {
    const cpu: number = yield x.load(s.taskWord(task, 'CPU'));
    yield* spinLock(x, s.rqLock(cpu));
    const again: number = yield x.load(s.taskWord(task, 'CPU'));
    if (again === cpu) return [cpu, flags];
    yield* spinUnlock(x, s.rqLock(cpu));
  }
}

function* taskRqUnlock(x: Assembler, s: Scheduler, cpu: number, flags: number): KernelProgram<void> {
  yield* spinUnlock(x, s.rqLock(cpu));
  if ((flags & RFLAGS.IF) !== 0) yield x.sti();
}

/**
 * Keeps `task` off every CPU, for a migration protocol: under the task's rq lock, if it is not running (on_cpu 0),
 * set held and take it off its run queue (dequeue_task()), and return 1; if it is running, return 0 and change
 * nothing (the caller retries). A held task is never picked and never migrated until releaseTask. The model's
 * stand-in for migrate_disable() / holding task_rq_lock() with the task dequeued across the protocol's work.
 */
export function* holdTask(x: Assembler, kernel: Kernel, task: number): KernelProgram {
  const s = schedulerOf(kernel, 'holdTask');
  const id = checkTask(s, task, 'holdTask');
  const [cpu, flags] = yield* taskRqLock(x, s, id);
  const onCpu: number = yield x.load(s.taskWord(id, 'ON_CPU'));
  if (onCpu === 0) {
    const rq: number = yield x.load(s.cpuWord(cpu, 'RQ'));
    if ((rq & bit(id)) !== 0) yield x.store(s.cpuWord(cpu, 'RQ'), 8, rq - bit(id));
    yield x.store(s.taskWord(id, 'HELD'), 8, HELD_OFF);
  }
  yield* taskRqUnlock(x, s, cpu, flags);
  return onCpu === 0 ? 1 : 0;
}

/**
 * Lets a held task run again: under its rq lock, clear held and put it back on its CPU's run queue (unless it
 * exited), as try_to_wake_up() -> ttwu_do_activate() does; the idle loop spinning on that queue wakes.
 */
export function* releaseTask(x: Assembler, kernel: Kernel, task: number): KernelProgram<void> {
  const s = schedulerOf(kernel, 'releaseTask');
  const id = checkTask(s, task, 'releaseTask');
  const [cpu, flags] = yield* taskRqLock(x, s, id);
  yield x.store(s.taskWord(id, 'HELD'), 8, 0);
  const dead: number = yield x.load(s.taskWord(id, 'DEAD'));
  if (dead === 0) {
    const rq: number = yield x.load(s.cpuWord(cpu, 'RQ'));
    if ((rq & bit(id)) === 0) yield x.store(s.cpuWord(cpu, 'RQ'), 8, rq + bit(id));
  }
  yield* taskRqUnlock(x, s, cpu, flags);
}

/**
 * Keeps the running `task` on its CPU (`pinned`), or lets it move again: the held word's PINNED, which the
 * migration point reads (a tick's request to move is then dropped). The model's migrate_disable() /
 * migrate_enable() (kernel/sched/core.c, v6.6), with two departures (docs/deviations.md): Linux's are the task's
 * own (current's counter), where a migration protocol pins the task its IPI handler interrupted and unpins it from
 * the initiating CPU; and a request made meanwhile is dropped, not carried out at migrate_enable(). One store each:
 * the task is running when it is pinned (its handler found it current), so it is not held off, and nothing else
 * writes the word until the protocol unpins it.
 */
export function* pinTask(x: Assembler, kernel: Kernel, task: number, pinned: boolean): KernelProgram<void> {
  const s = schedulerOf(kernel, 'pinTask');
  yield x.store(s.taskWord(checkTask(s, task, 'pinTask'), 'HELD'), 8, pinned ? PINNED : 0);
}

/** task_cpu(p): the CPU whose run queue the task is on (or runs on), one load. */
export function* taskCpu(x: Assembler, kernel: Kernel, task: number): KernelProgram {
  const s = schedulerOf(kernel, 'taskCpu');
  return yield x.load(s.taskWord(checkTask(s, task, 'taskCpu'), 'CPU'));
}

/** Whether `task` is this CPU's current task (rq->curr == p): 1 or 0, one load (for a switcheroo IPI handler). */
export function* isCurrentOn(x: Assembler, kernel: Kernel, task: number): KernelProgram {
  const s = schedulerOf(kernel, 'isCurrentOn');
  const id = checkTask(s, task, 'isCurrentOn');
  const curr: number = yield x.load(s.cpuWord(x.cpuId, 'CURR'));
  return curr === id ? 1 : 0;
}

/** sched_yield() from a task's step: the current task goes back on the queue and the next one runs. */
export function* schedYield(x: Assembler, kernel: Kernel): KernelProgram<void> {
  const s = schedulerOf(kernel, 'schedYield');
  const curr: number = yield x.load(s.cpuWord(x.cpuId, 'CURR'));
  if (curr === IDLE) return;
  yield* s.schedule(x, curr, 'yield');
}

/**
 * LOCAL_TIMER_VECTOR's handler (an interrupt gate: IF=0 throughout): the scheduler's tick when the kernel has a
 * scheduler, else only the EOI (a tick nobody armed).
 */
export function localTimerHandler(kernel: Kernel): Program<[HandlerContext]> {
  return function* localTimerInterrupt(x, ctx) {
    const s = kernel.scheduler;
    if (s instanceof Scheduler) yield* s.timerInterrupt(x, ctx);
    else yield x.eoi();
  };
}
