import type { Assembler, Program } from '../cpu/assembler.ts';
import { LAYOUT } from '../mmu/address.ts';
import type { BuddyAllocator } from './buddy.ts';
import type { KernelProgram, MigrationProtocolFor } from './kernel-program.ts';
import { OWNER } from './kernel-tags.ts';
import { LruLists } from './lru.ts';
import { PageAllocator } from './page-alloc.ts';
import { sameItems } from './same-items.ts';
import { emptyVmallocStats, type VmallocStats } from './vmalloc-stats.ts';
import { VmapAreas } from './vmap-areas.ts';

export { LOCK, OWNER } from './kernel-tags.ts';
// The kernel's state beside the machine: the zone's buddy allocator, the vmap areas, init_mm's top-level table,
// and the policies a booted kernel was configured with. Programs change it only through `atomic` steps.

/** How vmalloc backs an area (DESIGN.md "Kernel layer"). */
export type VmallocPolicy = 'order0' | 'high-order' | 'huge' | 'high-order+migratable';
export const VMALLOC_POLICIES: readonly VmallocPolicy[] = ['order0', 'high-order', 'huge', 'high-order+migratable'];
/** How other mms learn of vmalloc's top-level entries: vmalloc_fault (pre-5.8) or preallocated tables (5.9+). */
export type VmallocSync = 'lazy-fault' | 'preallocated';
export const VMALLOC_SYNCS: readonly VmallocSync[] = ['lazy-fault', 'preallocated'];

export interface KernelOptions {
  readonly vmalloc?: VmallocPolicy;
  readonly sync?: VmallocSync;
}

/** What a timed run's kernel measured, in simulated nanoseconds (RDTSC around the operations). */
export interface KernelTimings {
  /** smp_call_function_many with wait: from the first csd filled to every csd unlocked. */
  readonly ipiRoundTrips: number[];
  /** Spinlocks: from acquired to released. */
  readonly lockHolds: number[];
  /** migratePage: from its start to its return, on the migrating CPU. */
  readonly migrations: number[];
  /** When each held lock was taken (by lock address), while held. */
  readonly lockTaken: Map<number, number>;
  /** Per CPU: time spent in the call-function IPI handler (what a CPU running a task lost to IPIs). */
  readonly irqTime: number[];
}

/**
 * What the kernel knows of a scheduler set up on it (src/mm/sched.ts): the scheduler itself keeps its state in
 * emulated memory and its tasks' contexts; the kernel only carries it, and asks it to put its contexts back as
 * set-up left them when a machine image starts an instance over.
 */
export interface KernelScheduler {
  reset(): void;
  /** task_cpu(p), one load (sched.ts's taskCpu). */
  taskCpu(x: Assembler, task: number): KernelProgram;
  /** Whether `task` is this CPU's current task: 1 or 0 (sched.ts's isCurrentOn). */
  isCurrentOn(x: Assembler, task: number): KernelProgram;
  /** Keeps `task` off every CPU if it is not running: 1, or 0 when it is running (sched.ts's holdTask). */
  hold(x: Assembler, task: number): KernelProgram;
  /** Lets a held task run again (sched.ts's releaseTask). */
  release(x: Assembler, task: number): KernelProgram<void>;
  /** Keeps the running `task` on its CPU, or lets it move again (sched.ts's pinTask). */
  pin(x: Assembler, task: number, pinned: boolean): KernelProgram<void>;
}

function copyMap<K, V>(to: Map<K, V>, from: ReadonlyMap<K, V>): void {
  to.clear();
  for (const [k, v] of from) to.set(k, v);
}

function emptyTimings(): KernelTimings {
  return { ipiRoundTrips: [], lockHolds: [], migrations: [], lockTaken: new Map(), irqTime: [] };
}

export class Kernel {
  constructor(
    /** The one zone's buddy allocator. */
    readonly zone: BuddyAllocator,
    /** init_mm's PGD (physical address of its PML4). */
    readonly initMm: number,
    readonly policy: VmallocPolicy,
    readonly sync: VmallocSync,
    /** CPUs the kernel runs on. */
    readonly cpus: number,
    /** Physical address of the SMP area: the csd slots and the kernel's named lock words (src/mm/smp.ts). */
    readonly smpArea: number,
    readonly vmap: VmapAreas = new VmapAreas(LAYOUT.vmallocStart, LAYOUT.vmallocEnd),
    /** The name of the task each CPU runs (Linux's per-CPU `current`), set by contextSwitch. */
    readonly current: string[] = [],
    /**
     * Per CPU, the stack of the task it runs as [bottom, top) (task_stack_page(current)), two numbers a CPU; set by
     * contextSwitch (empty for a CPU still on its boot stack). The #DF handler's stack-overflow check reads it.
     */
    readonly currentStack: number[] = [],
    /** What the kernel printed and carried on after (a user task's segfault), in order. */
    readonly log: string[] = [],
    /** Functions smp_call_function_many has been given, by the number a csd holds. */
    readonly callFunctions: Program<[number]>[] = [],
  ) {
    this.pages = new PageAllocator(zone, { cpus });
    this.lru = new LruLists(zone.firstPfn, zone.frames);
    // PageLRU pages are movable (move_freepages() counts them, compaction isolates them). A clone's zone has them
    // already: it is not written (its arrays stay shared copy-on-write).
    if (zone.movableOwners[OWNER.PAGE_CACHE] !== 1 || zone.movableOwners[OWNER.ANON] !== 1) {
      zone.writable();
      zone.movableOwners[OWNER.PAGE_CACHE] = 1;
      zone.movableOwners[OWNER.ANON] = 1;
    }
  }

  /** The page allocator over the zone: per-CPU lists, watermarks, compaction state, counters (page-alloc.ts). */
  pages: PageAllocator;
  /**
   * The protocol compaction moves vmalloc pages with when they are movable (the `high-order+migratable` policy
   * sets `migration-entry` at boot); undefined: vmalloc pages are not movable.
   */
  migrateProtocol: MigrationProtocolFor<Kernel> | undefined = undefined;
  /** What vmalloc did (vmalloc.ts). */
  vmallocStats: VmallocStats = emptyVmallocStats();
  /** vmap_lazy_nr: pages of vfree()d areas waiting for the purge, and the purges so far (vmalloc-purge.ts). */
  vmapLazyNr = 0;
  vmapPurges = 0;

  /**
   * Whether kernel routines time themselves with RDTSC (a timed run: `run({ schedule: 'timed' })` with this set,
   * as `x86slice run --timed` does). Off by default: the extra steps are not in other runs.
   */
  timing = false;
  /** The scheduler set up on this kernel (sched.ts), or undefined: no timer ticks, tasks switched by hand. */
  scheduler: KernelScheduler | undefined = undefined;
  /** What the routines measured while `timing` was on. */
  timings: KernelTimings = emptyTimings();
  /**
   * The LRU lists: page-cache pages (movable and reclaimable) and anonymous pages (movable; no swap), oldest first,
   * each with its id (lru.ts, page-cache.ts).
   */
  lru: LruLists;
  /** vmalloc pages by frame: the address each backs (for compaction's migrate scanner). */
  readonly vmallocPages = new Map<number, number>();

  /**
   * Returns this kernel object to `from`'s state in place. Kernel programs and handlers close over the kernel they
   * were written for, so a machine image gives every instance the captured machine's kernel object, restored
   * from the image's copy each time (instances run one at a time).
   */
  restore(from: Kernel): void {
    this.zone.restore(from.zone);
    this.pages.restore(from.pages);
    this.lru.restore(from.lru);
    this.migrateProtocol = from.migrateProtocol;
    this.vmallocStats = { ...from.vmallocStats };
    this.vmapLazyNr = from.vmapLazyNr;
    this.vmapPurges = from.vmapPurges;
    this.vmap.restore(from.vmap);
    this.current.splice(0, this.current.length, ...from.current);
    this.currentStack.splice(0, this.currentStack.length, ...from.currentStack);
    this.log.splice(0, this.log.length, ...from.log);
    this.callFunctions.splice(0, this.callFunctions.length, ...from.callFunctions);
    this.timing = from.timing;
    this.timings = emptyTimings();
    this.copyPageMaps(this, from);
    // An image instance starts over: the scheduler's tasks are fresh contexts again (their words are in memory).
    this.scheduler = from.scheduler;
    this.scheduler?.reset();
  }

  private copyPageMaps(to: Kernel, from: Kernel): void {
    copyMap(to.vmallocPages, from.vmallocPages);
  }

  /**
   * Internal (the stateful checker): as restore(), for going back to saved states many times: the zone's arrays are
   * copied into its own (see BuddyAllocator.copyFrom), and what is equal already is left alone.
   */
  copyFrom(from: Kernel): void {
    this.zone.copyFrom(from.zone);
    this.vmap.copyFrom(from.vmap);
    if (!sameItems(this.current, from.current)) this.current.splice(0, this.current.length, ...from.current);
    if (!sameItems(this.currentStack, from.currentStack)) {
      this.currentStack.splice(0, this.currentStack.length, ...from.currentStack);
    }
    if (!sameItems(this.log, from.log)) this.log.splice(0, this.log.length, ...from.log);
    if (!sameItems(this.callFunctions, from.callFunctions)) {
      this.callFunctions.splice(0, this.callFunctions.length, ...from.callFunctions);
    }
    this.timing = from.timing;
    this.scheduler = from.scheduler;
    this.pages.copyFrom(from.pages);
    this.lru.copyFrom(from.lru);
    this.migrateProtocol = from.migrateProtocol;
    this.vmallocStats = { ...from.vmallocStats };
    this.vmapLazyNr = from.vmapLazyNr;
    this.vmapPurges = from.vmapPurges;
    if (this.vmallocPages.size !== 0 || from.vmallocPages.size !== 0) copyMap(this.vmallocPages, from.vmallocPages);
  }

  /**
   * The bookkeeping beside the zone that decides what the kernel does next, as numbers (the stateful checker's
   * fingerprint; the zone's arrays, vmap areas, `current`, the log and the call functions are hashed apart).
   * Statistics (vmalloc's, vmstat, the purge count) are left out: they do not change what runs.
   */
  stateWords(out: number[]): void {
    this.pages.stateWords(out);
    this.lru.stateWords(out);
    out.push(this.vmapLazyNr, this.vmallocPages.size);
    out.push(this.currentStack.length, ...this.currentStack);
    // By frame: the map's insertion order is history, not state.
    for (const pfn of [...this.vmallocPages.keys()].sort((a, b) => a - b)) out.push(pfn, this.vmallocPages.get(pfn)!);
  }

  /** A copy whose bookkeeping is its own (machine images instantiate one per explored execution). */
  clone(): Kernel {
    const { zone, initMm, policy, sync, cpus, smpArea, vmap } = this;
    const c = new Kernel(
      zone.clone(),
      initMm,
      policy,
      sync,
      cpus,
      smpArea,
      vmap.clone(),
      [...this.current],
      [...this.currentStack],
      [...this.log],
      [...this.callFunctions],
    );
    c.pages = this.pages.clone(c.zone);
    c.lru = this.lru.clone();
    c.migrateProtocol = this.migrateProtocol;
    c.vmallocStats = { ...this.vmallocStats };
    c.vmapLazyNr = this.vmapLazyNr;
    c.vmapPurges = this.vmapPurges;
    c.timing = this.timing;
    c.scheduler = this.scheduler;
    this.copyPageMaps(c, this);
    return c;
  }
}
