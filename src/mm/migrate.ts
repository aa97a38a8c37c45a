import type { Assembler } from '../cpu/assembler.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { describeValue, InputError, requireInteger, requireOptions } from '../mmu/input-error.ts';
import { entryFrame, PTE_LO } from '../mmu/pte.ts';
import { MIGRATETYPE } from './buddy.ts';
import { type Kernel, type KernelScheduler, LOCK, OWNER } from './kernel.ts';
import {
  direct,
  type KernelProgram,
  PAGE_KERNEL_HI,
  PAGE_KERNEL_LO,
  setEntry,
  walkToEntry,
} from './kernel-page-tables.ts';
import type { MigrationPage, MigrationProtocolFor } from './kernel-program.ts';
import { type PhaseList, type PhaseSteps, parsePhases, phaseProtocol } from './migration-phases.ts';
import { lockWord, spinLock, spinUnlock } from './smp.ts';

// Migrating a vmalloc page (mm/migrate.c; the 2018 linux-mm thread, digest §1 and §6) as kernel programs on the
// migrating CPU: every intermediate state (a cleared PTE, a migration entry, a half-copied page) is one another CPU
// can step into. The built-in protocols (as phase lists: migration-phases.ts) and the shape a user's own takes:
//
//  naive            clear the PTE, flush_tlb_kernel_range (waiting), copy, set the new PTE, free the old frame.
//  no-wait          the same, but the flush IPIs are not waited for: the copy races the other CPUs' stale TLBs.
//  migration-entry  a non-present migration entry holding the old frame replaces the PTE; flush; copy; set the
//                   new PTE (which wakes the waiters); free. An access meanwhile faults, and the #PF handler waits
//                   for the entry to change, then retries (migration_entry_wait). A stack page cannot take that
//                   fault: its #PF frame cannot be pushed.
//  ipi-switcheroo   a synchronized IPI to the CPU running the task: its handler, on the IRQ stack, checks the task is
//                   still current there, copies the page, installs the new PTE and INVLPGs locally; then every
//                   other CPU is flushed; the old frame is freed only after that. With no CPU running the task, the
//                   naive sequence runs with the task held off.
//  switcheroo-entry, park-switcheroo: combined protocols (PROTOCOL_PHASES below).
//
// The copy marks the old frame copied (BuddyAllocator.markCopied): a store that lands in it afterwards is a lost
// write, and an access after the free is a use after free; the CPUs check both (src/mmu/frame-guard.ts).

/** A PTE's software bit 9 marks a migration entry: not present, the old frame's address in the address bits. */
export const MIGRATION_ENTRY = 1 << 9;

export function isMigrationEntry(lo: number): boolean {
  return (lo & PTE_LO.P) === 0 && (lo & MIGRATION_ENTRY) !== 0;
}

export type ProtocolName =
  | 'naive'
  | 'no-wait'
  | 'migration-entry'
  | 'ipi-switcheroo'
  | 'switcheroo-entry'
  | 'park-switcheroo';
export const PROTOCOLS: readonly ProtocolName[] = [
  'naive',
  'no-wait',
  'migration-entry',
  'ipi-switcheroo',
  'switcheroo-entry',
  'park-switcheroo',
];

/**
 * A migration protocol: a kernel program that moves `page` from its old frame to its new one. It calls the steps
 * below (or its own): copyFrame() marks the old frame copied, installNewPte() maps the new one, freeOldFrame()
 * returns the old one to the zone. migratePage() has allocated the new frame and updates the area's bookkeeping.
 */
export type MigrationProtocol = MigrationProtocolFor<Kernel>;
export type { MigrationPage } from './kernel-program.ts';

export interface MigrateOptions {
  /** Bytes copied per step: 8 (rep movsq, the default) up to 4096. */
  readonly chunk?: number;
  /** The CPU running the task whose stack the page is (ipi-switcheroo sends its IPI there). */
  readonly taskCpu?: number;
  /** The frame to move to, already allocated (compaction's target); default: one from the zone. */
  readonly newPfn?: number;
  /**
   * Check again, under the migration lock, that the page is still mapped in a live area (compaction isolates pages
   * before it moves them, and their area may have been vfree()d meanwhile). Default false.
   */
  readonly recheck?: boolean;
  /**
   * The task whose stack the page is, by its id in the kernel's scheduler (sched.ts): its CPU is read from task_cpu
   * instead of `taskCpu`, and the switcheroo checks it is still current there (protocolOfPhases).
   */
  readonly task?: number;
}

/** copy_page(new, old) through the direct map, then the old frame is marked copied (a store to it is lost). */
export function* copyFrame(x: Assembler, kernel: Kernel, page: MigrationPage): KernelProgram<void> {
  yield x.copy(direct(page.newPfn * PAGE_SIZE), direct(page.oldPfn * PAGE_SIZE), PAGE_SIZE, { chunk: page.chunk });
  yield x.atomic(LOCK.ZONE, () => {
    kernel.zone.markCopied(page.oldPfn);
    return 0;
  });
}

/** The PTE maps the new frame (PAGE_KERNEL), high half first, then the low half with P. */
export function* installNewPte(x: Assembler, page: MigrationPage): KernelProgram<void> {
  yield* setEntry(x, page.pte, page.newPfn * PAGE_SIZE, PAGE_KERNEL_LO, PAGE_KERNEL_HI);
}

/**
 * The old frame goes back to the zone, through this CPU's per-CPU list as any freed page (its generation moves on:
 * translations made before are stale).
 */
export function* freeOldFrame(x: Assembler, kernel: Kernel, page: MigrationPage): KernelProgram<void> {
  const cpu = x.cpuId;
  yield x.atomic(LOCK.ZONE, () => {
    kernel.pages.free(cpu, page.oldPfn, 0);
    return 0;
  });
}

/** try_to_migrate(): the PTE becomes a migration entry in one store (P clear, the old frame kept). */
function* migrationEntry(x: Assembler, page: MigrationPage): KernelProgram<void> {
  yield x.store(direct(page.pte), 4, (((page.oldPfn * PAGE_SIZE) % 2 ** 32) | MIGRATION_ENTRY) >>> 0);
}

/** The lock word of the migration lock (see migratePage). */
export const MIGRATION_LOCK_WORD = 47;

/** The built-in protocols as phase lists (migration-phases.ts): what `x86slice mutate` drops and swaps. */
export const PROTOCOL_PHASES: Readonly<Record<ProtocolName, string>> = {
  naive: 'clear-pte,flush,copy,install,free',
  'no-wait': 'clear-pte,flush:nowait,copy,install,free',
  // remove_migration_ptes() in install: waiters see the entry change and retry.
  'migration-entry': 'migration-entry,flush,copy,install,free',
  // The synchronized IPI: its handler on the task's CPU copies, remaps and INVLPGs; then every other TLB is flushed
  // before the old frame is freed.
  'ipi-switcheroo': 'ipi(check-current,copy,install,invlpg),wait,flush,free',
  // Combined: the switcheroo for the task's CPU, a migration entry for every other CPU (an access there faults and
  // waits in migration_entry_wait() until the new PTE is in).
  'switcheroo-entry': 'migration-entry,flush-others,ipi(check-current,copy,install,invlpg),wait,free',
  // Combined: every other CPU is parked in an IPI handler with interrupts off (stop_machine()'s rendezvous) while
  // the task's CPU does the switcheroo; each INVLPGs the page as it leaves, and so does this CPU. Its handler does
  // not check `current`: a task that moved is frozen on a parked CPU, or waits for one, until that CPU has INVLPGd
  // (argued, not proven: the sched=migrate search does not finish here).
  'park-switcheroo': 'park,ipi(copy,install,invlpg),wait,unpark,invlpg,free',
};

/** The steps migrate.ts owns, for phase lists. */
const STEPS: PhaseSteps = {
  copyFrame,
  installNewPte,
  freeOldFrame,
  migrationEntry,
  isCurrent: (x, kernel, task) => schedulerOf(kernel).isCurrentOn(x, task),
  pin: (x, kernel, task, pinned) => schedulerOf(kernel).pin(x, task, pinned),
};

/** The kernel's scheduler (sched.ts, through the kernel: migrate.ts is below it), for a protocol given a task. */
function schedulerOf(kernel: Kernel): KernelScheduler {
  const s = kernel.scheduler;
  if (s === undefined) throw new InputError('migratePage: a task was named, but the kernel has no scheduler');
  return s;
}

/**
 * The protocol of a phase list. A list with an ipi phase needs another CPU running the task; with none (the task is
 * held off: "take some lock so the task can't run, then flush the world"), it runs the naive list.
 *
 * With a scheduled task (`page.task`), the task's CPU is read from task_cpu, and a handler that finds the task no
 * longer current there (check-current) sends the protocol to the held-off path: holdTask() keeps the task off every
 * CPU if it is not running, the naive list runs, releaseTask() lets it run again; if it is running (on another CPU
 * by now), the list starts over at its new CPU, its phases before the ipi too.
 */
export function protocolOfPhases(phases: PhaseList): MigrationProtocol {
  const run = phaseProtocol(phases, STEPS);
  if (!phases.some((p) => p.kind === 'ipi')) {
    return function* (x, kernel, page) {
      yield* run(x, kernel, page);
    };
  }
  const heldOff = phaseProtocol(parsePhases(PROTOCOL_PHASES.naive), STEPS);
  return function* (x, kernel, page) {
    const task = page.task;
    if (task === undefined) {
      if (page.taskCpu === undefined || page.taskCpu === x.cpuId) yield* heldOff(x, kernel, page);
      else yield* run(x, kernel, page);
      return;
    }
    const sched = schedulerOf(kernel);
    for (;;) {
      const cpu = yield* sched.taskCpu(x, task);
      if (cpu !== x.cpuId && (yield* run(x, kernel, { ...page, taskCpu: cpu })) === 'done') return;
      if ((yield* sched.hold(x, task)) === 1) {
        yield* heldOff(x, kernel, { ...page, taskCpu: undefined });
        yield* sched.release(x, task);
        return;
      }
    }
  };
}

const BUILT_IN: Readonly<Record<ProtocolName, MigrationProtocol>> = Object.fromEntries(
  PROTOCOLS.map((name) => [name, protocolOfPhases(parsePhases(PROTOCOL_PHASES[name]))]),
) as Record<ProtocolName, MigrationProtocol>;

/** A copy chunk: a power of two from 8 to 4096 bytes (rep movsq's 8 up to a page a step). */
export function requireChunk(chunk: unknown, what: string): number {
  const n = requireInteger(chunk, what, 8, PAGE_SIZE);
  if ((n & (n - 1)) !== 0) throw new InputError(`${what} ${n} must be a power of two (8..4096 bytes)`);
  return n;
}

/** Protocols made from phase lists' text, by the text. */
const parsed = new Map<string, MigrationProtocol>();

/** A protocol by name, or a user's own; an unknown name is refused, naming the built-in ones. */
export function migrationProtocol(protocol: string | MigrationProtocol): MigrationProtocol {
  if (typeof protocol === 'function') return protocol;
  if (typeof protocol !== 'string') {
    throw new InputError(`migration protocol ${describeValue(protocol)} is not one of ${PROTOCOLS.join(', ')}`);
  }
  const p = Object.hasOwn(BUILT_IN, protocol) ? BUILT_IN[protocol as ProtocolName] : undefined;
  if (p) return p;
  try {
    // One protocol per text: its call functions are registered by identity, so the same list must give the same
    // functions on every run (a machine built again, a state restored).
    let p = parsed.get(protocol);
    if (p === undefined) {
      p = protocolOfPhases(parsePhases(protocol));
      parsed.set(protocol, p);
    }
    return p;
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    throw new InputError(
      `migration protocol ${describeValue(protocol)} is not one of ${PROTOCOLS.join(', ')}, nor a phase list: ${e.message}`,
    );
  }
}

/**
 * Migrates the vmalloc page at `va` to a new frame with `protocol`, as a program on this CPU: allocates the new
 * frame, runs the protocol, and records the new frame in the area's bookkeeping. Returns 0, or -1 when the page
 * cannot be migrated (not a page of a vmalloc area mapped with PTEs, or no frame free).
 */
export function* migratePage(
  x: Assembler,
  kernel: Kernel,
  va: number,
  protocol: ProtocolName | MigrationProtocol | string,
  options: MigrateOptions = {},
): KernelProgram {
  // Everything is checked before the first step: a refused call changes nothing.
  const run = migrationProtocol(protocol);
  const o = requireOptions<MigrateOptions>(options, 'migratePage options', [
    'chunk',
    'taskCpu',
    'newPfn',
    'recheck',
    'task',
  ]);
  const chunk = o.chunk === undefined ? 8 : requireChunk(o.chunk, 'migratePage chunk');
  if (o.taskCpu !== undefined) requireInteger(o.taskCpu, 'migratePage taskCpu', 0, kernel.cpus - 1);
  if (o.newPfn !== undefined) {
    requireInteger(o.newPfn, 'migratePage newPfn', kernel.zone.firstPfn, kernel.zone.firstPfn + kernel.zone.frames - 1);
  }
  if (typeof va !== 'number' || !Number.isInteger(va) || va % PAGE_SIZE !== 0) {
    throw new InputError(`migratePage: ${describeValue(va)} is not a 4 KiB aligned address`);
  }
  const start = kernel.timing ? yield x.rdtsc() : 0;
  const movable = () => {
    // Every page of an area mapped with PTEs is an order-0 page of its own (split_page()), so it can move.
    const area = kernel.vmap.containing(va);
    return area && !area.huge && area.pages[(va - area.start) / PAGE_SIZE] !== undefined ? 1 : 0;
  };
  if ((yield x.atomic(LOCK.VMAP_AREA, movable)) === 0) return -1;
  const pte = yield* walkToEntry(x, kernel, kernel.initMm, va, 1, false);
  if (pte < 0) return -1;
  const lo: number = yield x.load(direct(pte), 4);
  if ((lo & PTE_LO.P) === 0) return -1;
  const target = o.newPfn;
  const newPfn =
    target ?? (yield x.atomic(LOCK.ZONE, () => kernel.zone.alloc(0, MIGRATETYPE.UNMOVABLE, OWNER.VMALLOC)));
  if (newPfn < 0) return -1;
  const page: MigrationPage = {
    va,
    pte,
    oldPfn: entryFrame(lo, 0) / PAGE_SIZE,
    newPfn,
    chunk,
    taskCpu: o.taskCpu,
    ...(o.task === undefined ? {} : { task: o.task }),
  };
  // The move runs under the migration lock, a spinlock ("fine under a spinlock", the 2018 thread): migrations of
  // vmalloc pages are serialized, and a timed run records how long the lock was held.
  const lock = lockWord(kernel, MIGRATION_LOCK_WORD);
  yield* spinLock(x, lock, kernel);
  if (o.recheck === true) {
    const same: number = yield x.atomic(LOCK.VMAP_AREA, () => {
      const area = kernel.vmap.containing(va);
      return movable() === 1 && area!.pages[(va - area!.start) / PAGE_SIZE] === page.oldPfn ? 1 : 0;
    });
    if (same === 0) {
      yield* spinUnlock(x, lock, kernel);
      return -1;
    }
  }
  yield* run(x, kernel, page);
  yield* spinUnlock(x, lock, kernel);
  yield x.atomic(LOCK.VMAP_AREA, () => {
    const area = kernel.vmap.containing(va)!;
    area.pages[(va - area.start) / PAGE_SIZE] = newPfn;
    area.blocks = area.blocks.map((b) => (b.va === va && b.order === 0 ? { ...b, pfn: newPfn } : b));
    kernel.vmallocPages.delete(page.oldPfn);
    kernel.vmallocPages.set(newPfn, va);
    kernel.zone.setOwner(newPfn, OWNER.VMALLOC);
    return 0;
  });
  if (kernel.timing) {
    const end = yield x.rdtsc();
    yield x.atomic(LOCK.STATS, () => {
      kernel.timings.migrations.push(end - start);
      return 0;
    });
  }
  return 0;
}
