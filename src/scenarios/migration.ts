import type { Assembler } from '../cpu/assembler.ts';
import { DEFAULT_COSTS } from '../machine/cost-model.ts';
import { Machine } from '../machine/machine.ts';
import type { Kernel } from '../mm/kernel.ts';
import { direct, walkToEntry } from '../mm/kernel-page-tables.ts';
import type { KernelProgram } from '../mm/kernel-program.ts';
import { type MigrationProtocol, migratePage, migrationProtocol, type ProtocolName } from '../mm/migrate.ts';
import { type SchedPolicy, schedReady, schedSetup } from '../mm/sched.ts';
import { lockWord, smpCallFunctionMany, smpCallFunctionSingleOnStack, spinLockIrq } from '../mm/smp.ts';
import { contextSwitch, runningTask, taskCreate } from '../mm/task.ts';
import { vmalloc } from '../mm/vmalloc.ts';
import { formatVirtual, PAGE_SIZE } from '../mmu/address.ts';
import { FRAME_FREE } from '../mmu/frame-guard.ts';
import { InputError } from '../mmu/input-error.ts';
import { entryFrame } from '../mmu/pte.ts';
import { DATA_MIGRATION, IPI_IRQS_OFF_DEADLOCK, type RemoteAccessor, STACK_MIGRATION } from './listing.ts';
import type { Scenario, ScenarioInfo } from './scenario.ts';

// The migration family (docs/scenarios/migration.md): a vmalloc page moves to a new frame while another CPU uses it.
// IPIs stay in flight until delivered (ipiDelivery 'scheduled'): round-robin delivers them once a round, and the
// checker chooses when.

/**
 * 16 MiB: the 8 MiB boot reserve and an 8 MiB zone, plenty for a few stacks and pages. A small zone keeps each
 * explored execution's copy of the allocator's per-frame arrays small.
 */
const MEMORY = 16 * 1024 * 1024;

/** Lock words the scenarios use to talk between CPUs (the SMP area, so every CPU reaches them). */
const WORD = { PAGE: 8, PROGRESS: 9, DONE: 10 } as const;

/** What a migration scenario notes while it runs: the page and its frame before the migration. */
interface Noted {
  page: number;
  firstPfn: number;
}

/** The median of a list of nanoseconds (undefined for none). */
function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  return [...xs].sort((a, b) => a - b)[xs.length >> 1];
}

/**
 * The page's frame at the end, and whether the page's first frame was freed: what the run reports. A timed run
 * adds what it measured, in simulated nanoseconds: the migration's latency, how long the task's CPU stalled (its
 * slowest round less its fastest), the IPI round trips and lock hold times.
 */
function frameReport(m: Machine, kernel: Kernel, noted: Noted) {
  return () => {
    const pa = noted.page === 0 ? undefined : m.physicalAddress(noted.page);
    const first = noted.firstPfn;
    const index = first - kernel.zone.firstPfn;
    const t = kernel.timings;
    // CPU1 (the task's, or the data user's) lost what its call-function handlers took, entry and iret included.
    const irq = t.irqTime[1];
    const stall = irq === undefined ? undefined : irq + DEFAULT_COSTS.exceptionEntry + DEFAULT_COSTS.iret;
    const ns = (v: number | undefined) => (v === undefined ? {} : v);
    return {
      ...(noted.page === 0 ? {} : { page: formatVirtual(noted.page) }),
      ...(first < 0 ? {} : { frameBefore: `0x${first.toString(16)}` }),
      ...(pa === undefined ? {} : { frameAfter: `0x${Math.floor(pa / PAGE_SIZE).toString(16)}` }),
      oldFrameFreed: first >= 0 && kernel.zone.owner[index] === FRAME_FREE,
      ...(kernel.timing
        ? {
            timedNs: {
              ...(t.migrations.length ? { migration: t.migrations[0] } : {}),
              ...(stall === undefined ? {} : { taskStall: stall }),
              ...(t.ipiRoundTrips.length
                ? { ipiRoundTrip: ns(median(t.ipiRoundTrips)), ipiCalls: t.ipiRoundTrips.length }
                : {}),
              ...(t.lockHolds.length ? { lockHold: ns(median(t.lockHolds)) } : {}),
            },
          }
        : {}),
    };
  };
}

/**
 * Reads the page's frame from its PTE (instructions: no closure over a machine, so the scenario runs from an
 * image) and hands it to the report.
 */
function* notePage(x: Assembler, kernel: Kernel, va: number, noted: Noted) {
  const pte: number = yield* walkToEntry(x, kernel, kernel.initMm, va, 1, false);
  const lo: number = yield x.load(direct(pte), 4);
  yield x.atomic('scenario', () => {
    noted.page = va;
    noted.firstPfn = entryFrame(lo, 0) / PAGE_SIZE;
    return 0;
  });
  return entryFrame(lo, 0) / PAGE_SIZE;
}

/** Idle CPUs take IPIs: interrupts on, then halt. */
function* idle(x: Assembler) {
  yield x.sti();
}

/** The word the task keeps at the top of its stack for its whole life (a saved register): what a reader reads. */
const CANARY = 0x5ca1ab1e;

/** Lock word where the task asks for its on-stack completion to be completed: its address, or 1 when it is done. */
const COMPLETION_REQUEST = 11;
const NO_MORE = 1;

/**
 * What the task calls to have the accessor CPU write its stack, a call whose return address is `ret` bytes below
 * the stack's top: smp_call_function_single(wait=1) with the csd on this stack (csdCall), or an on-stack completion
 * the accessor completes (completionWait). The stack's top is `stackTop`, or when that is not known at set-up
 * (taskCreate allocates the stack), read from the PAGE word.
 */
function stackUsers(kernel: Kernel, accessor: number, ret: number, stackTop?: number) {
  const topOf = function* topOf(x: Assembler): KernelProgram {
    if (stackTop !== undefined) return stackTop;
    return ((yield x.load(lockWord(kernel, WORD.PAGE), 8)) as number) + PAGE_SIZE;
  };
  const csdCall = function* csdCall(x: Assembler) {
    const top = yield* topOf(x);
    for (let i = 0; i < 3; i++) yield x.push(0); // DECLARE_CSD on the stack: flags, function, info
    yield* smpCallFunctionSingleOnStack(x, kernel, accessor, remoteNothing, 0, top - ret - 24);
    for (let i = 0; i < 3; i++) yield x.pop();
  };
  const completionWait = function* completionWait(x: Assembler) {
    const top = yield* topOf(x);
    yield x.push(0); // DECLARE_COMPLETION_ONSTACK: done = 0
    const done = top - ret - 8;
    yield x.store(lockWord(kernel, COMPLETION_REQUEST), 8, done);
    // wait_for_completion() sleeps in Linux; here the task spins on its own stack (docs/deviations.md).
    yield x.waitUntil(done, 8, (v) => v !== 0);
    yield x.pop();
  };
  return { csdCall, completionWait };
}

/**
 * CPU1's task: on a VMAP stack from vmalloc, it keeps a canary word at its top, then calls a function that pushes
 * two values and pops them back, checking each, and counts its rounds (`rounds` of them, or fewer once CPU0 says
 * the migration is done): a bounded loop, so that no schedule runs it forever. With a remote accessor that writes
 * its stack, each round from the second also waits for that CPU: in smp_call_function_single() with its csd on this
 * stack (csd), or for an on-stack completion (completion).
 */
function worker(kernel: Kernel, rounds: number, remote: RemoteAccessor, accessor: number) {
  const check = function* check(x: Assembler, round: number) {
    yield x.push(round * 2 + 1);
    yield x.push(round * 2 + 2);
    const b: number = yield x.pop();
    const a: number = yield x.pop();
    yield x.assert(a === round * 2 + 1 && b === round * 2 + 2, `the stack holds ${a}, ${b} in round ${round}`);
  };
  // The task's frames are at fixed depths: its canary at top-8, a call's return address at top-16.
  const { csdCall, completionWait } = stackUsers(kernel, accessor, 16);
  return function* task(x: Assembler) {
    yield x.push(CANARY);
    for (let round = 0; round < rounds; round++) {
      const done: number = yield x.load(lockWord(kernel, WORD.DONE), 8);
      if (done !== 0) break;
      yield x.call(check, round);
      if (round > 0 && remote === 'csd') yield x.call(csdCall);
      if (round > 0 && remote === 'completion') yield x.call(completionWait);
      yield x.store(lockWord(kernel, WORD.PROGRESS), 8, round + 1);
    }
    if (remote === 'completion') yield x.store(lockWord(kernel, COMPLETION_REQUEST), 8, NO_MORE);
  };
}

/** The function the task's on-stack csd asks the accessor CPU to run: nothing, as a wakeup would be. */
const remoteNothing = function* remoteNothing(_x: Assembler, _info: number) {};

/** Reads the reader makes of the task's canary, anywhere in the run once the task has pushed it. */
const READS = 2;
/** Lock word: the reader has made its first read. */
const READER_READY = 12;

/**
 * The accessor CPU's program. reader: an unwinder (stack_trace_save_tsk) reads the task's canary READS times, each
 * through its own TLB, and checks it. completion: complete() on each on-stack completion the task asks for, a store
 * into the task's stack. csd, none: interrupts on, nothing else (the csd's function runs in its IPI handler).
 */
function accessor(kernel: Kernel, remote: RemoteAccessor) {
  return function* remoteAccessor(x: Assembler) {
    yield x.sti();
    if (remote === 'reader') {
      const page: number = yield x.spinUntil(lockWord(kernel, WORD.PAGE), 8, (v) => v !== 0);
      yield x.waitUntil(lockWord(kernel, WORD.PROGRESS), 8, (v) => v >= 1); // the canary is there
      for (let i = 0; i < READS; i++) {
        const canary: number = yield x.load(page + PAGE_SIZE - 8, 8);
        // The check is no step of its own (an assert would be one more point to interleave at): only a wrong value
        // stops the CPU, as the assertion it is.
        if (canary !== CANARY) {
          yield x.die('assertion', `the reader read 0x${canary.toString(16)} where the task's canary is`);
        }
        // Its first read is before the migration starts (CPU0 waits for it): the reader holds the translation.
        if (i === 0) yield x.store(lockWord(kernel, READER_READY), 8, 1);
      }
    } else if (remote === 'completion') {
      for (;;) {
        const done: number = yield x.spinUntil(lockWord(kernel, COMPLETION_REQUEST), 8, (v) => v !== 0);
        if (done === NO_MORE) return;
        yield x.store(lockWord(kernel, COMPLETION_REQUEST), 8, 0);
        yield x.store(done, 8, 1); // complete()
      }
    }
  };
}

/** What the migration scenarios take: a protocol (built-in or a user's own) and the sizes of the run. */
export interface MigrationSetup {
  readonly protocol: ProtocolName | MigrationProtocol | string;
  /** CPUs (stack migration: CPU0 migrates, CPU1 runs the task, the rest idle). Default 2. */
  readonly cpus?: number;
  /** Bytes the copy moves per step. Default 512. */
  readonly chunk?: number;
  /** Rounds of the other CPU's work (stack: at least 3). Default 8 (stack), 6 (data). */
  readonly rounds?: number;
  /** Stack migration: who else uses the task's stack, from the last CPU (cpus 3 or more). Default none. */
  readonly remote?: RemoteAccessor;
  /**
   * Stack migration: how the task is scheduled. pinned (the default): switched to once on CPU1, never preempted;
   * preempt: the scheduler (src/mm/sched.ts) runs it on CPU1 beside another task and timer ticks preempt it;
   * migrate: ticks move it between CPU1 and CPU2 (cpus 3 or more).
   */
  readonly sched?: SchedPolicy;
  readonly trace?: boolean;
  /** Each CPU's store buffer entries (x86-TSO) and paging-structure-cache entries per level. Default 0: none. */
  readonly storeBuffer?: number;
  readonly pagingStructureCaches?: number;
}

export interface MigrationMachine {
  readonly machine: Machine;
  /** The page, its frame before and after, whether the first frame was freed. */
  readonly report: () => Readonly<Record<string, unknown>>;
}

/**
 * The stack-migration machine: CPU1 runs a task on a VMAP stack; CPU0 waits until it has run two rounds, then
 * migrates the stack's top page with `protocol` (telling it CPU1 runs the task), checks the old frame was freed,
 * then says it is done. With a remote accessor, the last CPU uses the task's stack too; the others idle.
 */
export function stackMigrationMachine(setup: MigrationSetup): MigrationMachine {
  if (setup.sched !== undefined && setup.sched !== 'pinned') return scheduledStackMachine(setup, setup.sched);
  const cpus = setup.cpus ?? 2;
  const chunk = setup.chunk ?? 512;
  const rounds = setup.rounds ?? 8;
  const remote = setup.remote ?? 'none';
  if (remote !== 'none' && cpus < 3) {
    throw new InputError(
      `remote=${remote} needs a third CPU for the accessor (the last CPU): cpus=${cpus} given, use cpus=3 or more`,
    );
  }
  migrationProtocol(setup.protocol);
  const { machine, kernel, noted } = kernelMachine(cpus, setup);
  machine.load(1, function* bootstrap(x: Assembler) {
    const boot = runningTask('boot', kernel.initMm, machine.boot!.taskStacks[1]!);
    const task = yield* taskCreate(x, kernel, 'worker', kernel.initMm, worker(kernel, rounds, remote, cpus - 1), []);
    yield x.assert(task !== undefined, 'the task stack was allocated');
    // The top page of the stack, where the task's frames are: the page CPU0 moves.
    yield x.store(lockWord(kernel, WORD.PAGE), 8, task!.stack.top - PAGE_SIZE);
    yield x.sti();
    yield* contextSwitch(x, kernel, boot, task!, { syncStack: false });
  });
  machine.load(0, function* migrator(x: Assembler) {
    yield x.sti();
    const va: number = yield x.spinUntil(lockWord(kernel, WORD.PAGE), 8, (v) => v !== 0);
    yield x.waitUntil(lockWord(kernel, WORD.PROGRESS), 8, (v) => v >= 2); // the task is running on it
    if (remote === 'reader') yield x.waitUntil(lockWord(kernel, READER_READY), 8, (v) => v !== 0);
    const first = yield* notePage(x, kernel, va, noted);
    const moved = yield* migratePage(x, kernel, va, setup.protocol, { chunk, taskCpu: 1 });
    yield x.assert(moved === 0, 'the page was migrated');
    yield x.assert(
      () => kernel.zone.owner[first - kernel.zone.firstPfn] === FRAME_FREE,
      `the old frame 0x${first.toString(16)} was not freed: a leak`,
    );
    yield x.store(lockWord(kernel, WORD.DONE), 8, 1);
  });
  for (let id = 2; id < cpus; id++) machine.load(id, id === cpus - 1 ? accessor(kernel, remote) : idle);
  return { machine, report: frameReport(machine, kernel, noted) };
}

/**
 * stack-migration with the scheduler: the task's rounds are its steps (a step a round: push, pop and check two
 * values, then count the round), on CPU1's run queue; with `preempt` another task shares CPU1 and ticks switch
 * between them; with `migrate` ticks move the task between CPU1 and CPU2. CPU0 reads the task's CPU from task_cpu
 * and migrates its stack's top page, the protocol told which task it is (its handler checks `current`). A remote
 * accessor runs on the last CPU, as in the pinned machine; the task keeps its canary as its top word, and from its
 * second round calls the accessor through an on-stack csd or completion.
 */
function scheduledStackMachine(setup: MigrationSetup, policy: SchedPolicy): MigrationMachine {
  const schedCpus = policy === 'migrate' ? [1, 2] : [1];
  const remote = setup.remote ?? 'none';
  // The accessor runs on the last CPU, beside the scheduler's CPUs.
  const needed = schedCpus.length + 1 + (remote === 'none' ? 0 : 1);
  const cpus = setup.cpus ?? needed;
  const chunk = setup.chunk ?? 512;
  const rounds = setup.rounds ?? 8;
  if (cpus < needed) {
    const why =
      remote === 'none'
        ? 'CPU2 to move the task to'
        : `a CPU for the ${remote} beside CPU0 and the scheduler's (CPU${schedCpus.join(', CPU')})`;
    throw new InputError(
      `sched=${policy} with remote=${remote} needs ${why}: cpus=${cpus} given, use cpus=${needed} or more`,
    );
  }
  migrationProtocol(setup.protocol);
  const { machine, kernel, noted } = kernelMachine(cpus, setup);
  const accessorCpu = cpus - 1;
  // The accessor calls, made once the scheduler is set up (below): the task's stack top is its fixed slot's.
  let users: ReturnType<typeof stackUsers> | undefined;
  const round = function* round(x: Assembler, _task: number, step: number) {
    const done: number = yield x.load(lockWord(kernel, WORD.DONE), 8);
    if (done === 0) {
      yield x.push(step * 2 + 1);
      yield x.push(step * 2 + 2);
      const b: number = yield x.pop();
      const a: number = yield x.pop();
      yield x.assert(a === step * 2 + 1 && b === step * 2 + 2, `the stack holds ${a}, ${b} in round ${step}`);
      if (step > 0 && remote === 'csd') yield x.call(users!.csdCall);
      if (step > 0 && remote === 'completion') yield x.call(users!.completionWait);
      yield x.store(lockWord(kernel, WORD.PROGRESS), 8, step + 1);
    }
    if (step === rounds - 1 && remote === 'completion') {
      yield x.store(lockWord(kernel, COMPLETION_REQUEST), 8, NO_MORE);
    }
  };
  const other = function* other(x: Assembler) {
    yield x.pause();
  };
  const sched = schedSetup(kernel, machine.boot!.taskStacks, {
    policy,
    cpus: schedCpus,
    ticks: 1,
    tasks: [
      { name: 'worker', cpu: 1, steps: Array.from({ length: rounds }, () => round), topWord: CANARY },
      ...(policy === 'preempt' ? [{ name: 'other', cpu: 1, steps: [other] }] : []),
    ],
  });
  const WORKER = 1;
  // A step's call leaves its return address at top-16 (the canary is at top-8), so a call from a step has its
  // return address at top-24.
  users = stackUsers(kernel, accessorCpu, 24, sched.stacks[WORKER]!.top);
  const va = sched.stacks[WORKER]!.top - PAGE_SIZE;
  for (const c of schedCpus) machine.load(c, sched.idle);
  machine.load(0, function* migrator(x: Assembler) {
    yield x.sti();
    yield* schedReady(x, kernel);
    if (remote !== 'none') yield x.store(lockWord(kernel, WORD.PAGE), 8, va); // where the accessor finds the stack
    yield x.waitUntil(lockWord(kernel, WORD.PROGRESS), 8, (v) => v >= 2); // the task is running
    if (remote === 'reader') yield x.waitUntil(lockWord(kernel, READER_READY), 8, (v) => v !== 0);
    const first = yield* notePage(x, kernel, va, noted);
    const moved = yield* migratePage(x, kernel, va, setup.protocol, { chunk, task: WORKER });
    yield x.assert(moved === 0, 'the page was migrated');
    yield x.assert(
      () => kernel.zone.owner[first - kernel.zone.firstPfn] === FRAME_FREE,
      `the old frame 0x${first.toString(16)} was not freed: a leak`,
    );
    yield x.store(lockWord(kernel, WORD.DONE), 8, 1);
  });
  for (let id = 1; id < cpus; id++) {
    if (schedCpus.includes(id)) continue;
    machine.load(id, id === accessorCpu && remote !== 'none' ? accessor(kernel, remote) : idle);
  }
  return { machine, report: frameReport(machine, kernel, noted) };
}

export const stackMigration: Scenario = migrationScenario(STACK_MIGRATION, stackMigrationMachine);

/** A booted kernel machine for a migration scenario (IPIs held in flight until delivered), and its notes. */
function kernelMachine(cpus: number, setup: MigrationSetup) {
  const machine = Machine.create({
    cpus,
    trace: setup.trace ?? false,
    memory: MEMORY,
    kernel: {},
    ipiDelivery: 'scheduled',
    storeBuffer: setup.storeBuffer ?? 0,
    pagingStructureCaches: setup.pagingStructureCaches ?? 0,
  });
  const noted: Noted = { page: 0, firstPfn: -1 };
  return { machine, kernel: machine.kernel!, noted };
}

/** A catalogue scenario over a migration machine: its parameters become the setup, `-p schedule` the run's. */
function migrationScenario(info: ScenarioInfo, make: (setup: MigrationSetup) => MigrationMachine): Scenario {
  return {
    ...info,
    build(p, o) {
      const { machine, report } = make({
        protocol: p.protocol as string,
        ...(p.remote === undefined ? {} : { remote: p.remote as RemoteAccessor }),
        ...(p.sched === undefined ? {} : { sched: p.sched as SchedPolicy }),
        chunk: p.chunk as number,
        rounds: p.rounds as number,
        ...(p.cpus === undefined ? {} : { cpus: p.cpus as number }),
        storeBuffer: (p['store-buffer'] as number | undefined) ?? 0,
        pagingStructureCaches: (p.psc as number | undefined) ?? 0,
        trace: o.trace,
      });
      return { machine, run: { schedule: p.schedule as string, maxSteps: 200_000 }, report };
    },
  };
}

/** After each round on the data page, CPU1 thinks (pauses) this long. */
const THINK = 24;

/**
 * The data-migration machine: CPU0 vmallocs a page, writes its word, waits for CPU1's first round and migrates
 * the page with `protocol`, checks that the old frame was freed (a dropped free is a leak) and then both CPUs' words;
 * CPU1 writes its word and reads it back, `rounds` times.
 */
export function dataMigrationMachine(setup: MigrationSetup): MigrationMachine {
  const chunk = setup.chunk ?? 512;
  const rounds = setup.rounds ?? 6;
  const protocol = setup.protocol;
  const { machine, kernel, noted } = kernelMachine(2, setup);
  machine.load(0, function* migrator(x: Assembler) {
    yield x.sti();
    const va = yield* vmalloc(x, kernel, PAGE_SIZE);
    yield x.assert(va !== 0, 'vmalloc succeeds');
    yield x.store(va, 8, 100);
    yield x.store(lockWord(kernel, WORD.PAGE), 8, va);
    yield x.waitUntil(lockWord(kernel, WORD.PROGRESS), 8, (v) => v >= 1);
    const first = yield* notePage(x, kernel, va, noted);
    const moved = yield* migratePage(x, kernel, va, protocol, { chunk, taskCpu: 1 });
    yield x.assert(moved === 0, 'the page was migrated');
    yield x.assert(
      () => kernel.zone.owner[first - kernel.zone.firstPfn] === FRAME_FREE,
      `the old frame 0x${first.toString(16)} was not freed: a leak`,
    );
    yield x.waitUntil(lockWord(kernel, WORD.DONE), 8, (v) => v === 1);
    const mine: number = yield x.load(va, 8);
    const theirs: number = yield x.load(va + 8, 8);
    yield x.assert(mine === 100, `CPU0's word is ${mine}, not 100`);
    yield x.assert(theirs === rounds, `CPU1's last write is ${theirs}, not ${rounds}: it was lost`);
  });
  machine.load(1, function* user(x: Assembler) {
    yield x.sti();
    const va: number = yield x.spinUntil(lockWord(kernel, WORD.PAGE), 8, (v) => v !== 0);
    for (let round = 1; round <= rounds; round++) {
      yield x.store(va + 8, 8, round);
      const read: number = yield x.load(va + 8, 8);
      yield x.assert(read === round, `read back ${read}, not ${round}`);
      yield x.store(lockWord(kernel, WORD.PROGRESS), 8, round);
      for (let t = 0; t < THINK; t++) yield x.pause();
    }
    yield x.store(lockWord(kernel, WORD.DONE), 8, 1);
  });
  return { machine, report: frameReport(machine, kernel, noted) };
}

export const dataMigration: Scenario = migrationScenario(DATA_MIGRATION, dataMigrationMachine);

/**
 * kernel/smp.c's warning: CPU0 takes a lock with interrupts off and calls a function on CPU1, waiting; CPU1, with
 * interrupts off, spins on that lock. CPU1 never takes the IPI and CPU0 never stops waiting: no CPU can move.
 */
export const ipiIrqsOffDeadlock: Scenario = {
  ...IPI_IRQS_OFF_DEADLOCK,
  build(_p, o) {
    const machine = Machine.create({ cpus: 2, trace: o.trace, memory: MEMORY, kernel: {} });
    const kernel = machine.kernel!;
    const lock = lockWord(kernel, 0);
    machine.symbols.set(lock, 'pgd_lock');
    machine.load(0, function* caller(x: Assembler) {
      yield* spinLockIrq(x, lock);
      yield* smpCallFunctionMany(x, kernel, [1], function* nothing() {}, 0, true);
    });
    machine.load(1, function* target(x: Assembler) {
      yield x.pause();
      yield* spinLockIrq(x, lock);
    });
    return { machine, run: { schedule: 'round-robin', maxSteps: 10_000 } };
  },
};
