import type { Assembler } from '../cpu/assembler.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { requireInteger, requireOneOf, requireOptions } from '../mmu/input-error.ts';
import {
  allocationWouldSucceed,
  COMPACT,
  COMPACT_PRIO,
  type CompactResultCode,
  compactionSuitable,
  MIN_COMPACT_PRIORITY,
  suitablePageFree,
} from './compaction-control.ts';
import { type CompactControl, isolateFreepages, isolateMigratepages, scannersMet } from './compaction-scanners.ts';
import { GFP_KERNEL, gfpMigratetype } from './gfp.ts';
import { type Kernel, LOCK, OWNER } from './kernel.ts';
import { direct, type KernelProgram } from './kernel-page-tables.ts';
import { type MigrationProtocol, migratePage, migrationProtocol, type ProtocolName, requireChunk } from './migrate.ts';
import { MAX_ORDER, PAGEBLOCK_ORDER } from './mmzone.ts';
import { isolatedAnon, putbackLruPage } from './page-cache.ts';

// Memory compaction (mm/compaction.c, Linux 6.6) as kernel programs: compact_zone() runs the two scanners
// (compaction-scanners.ts) and migrates each isolated page to an isolated free page until __compact_finished()
// says stop: the scanners met, or (for a direct compactor, at a pageblock boundary) a block of the wanted order is
// free for the allocation's type. try_to_compact_pages() is direct compaction with its deferral, and
// kcompactdDoWork() the background pass kswapd wakes. An LRU page moves by a copy through the direct map and a
// bookkeeping step; a vmalloc page moves by its migration protocol on the emulated CPUs, so compacting a running
// task's stack double-faults with `naive` and works with `ipi-switcheroo`. Freed source pages go to this CPU's
// per-CPU list, which is drained when the migrate scanner leaves the order-aligned block it migrated from
// (lru_add_drain_cpu_zone()), so they can merge.

export interface CompactOptions {
  /**
   * The order to make free; without it, the whole zone is compacted until the scanners meet (explicit compaction,
   * /proc/sys/vm/compact_memory: order -1).
   */
  readonly order?: number;
  /** compact_priority: 'sync-full' (default for a caller), 'sync-light' or 'async'. */
  readonly priority?: 'sync-full' | 'sync-light' | 'async';
  /** The allocation's GFP flags (its migratetype); default GFP_KERNEL, as compact_memory uses. */
  readonly gfp?: number;
  /** A protocol that moves vmalloc pages; default the kernel's (migratable vmalloc), else vmalloc pages stay. */
  readonly protocol?: ProtocolName | MigrationProtocol;
  /** Bytes copied per step (default 4096: a page a step; 8 is rep movsq's grain). */
  readonly chunk?: number;
  /** The CPU running a task whose stack may move (ipi-switcheroo sends its IPI there). */
  readonly taskCpu?: number;
}

export interface CompactResult {
  /** enum compact_result (compaction-control.ts COMPACT). */
  readonly result: CompactResultCode;
  /** Pages moved, and how many of them were vmalloc pages. */
  readonly moved: number;
  readonly movedVmalloc: number;
  /** Whether a free block of the wanted order (MAX_ORDER for a full compaction) exists at the end. */
  readonly success: boolean;
  /** Pages the migrate and free scanners looked at. */
  readonly migrateScanned: number;
  readonly freeScanned: number;
  /** Simulated nanoseconds spent moving pages (RDTSC around each move; 0 outside a timed run). */
  readonly migrateNs: number;
}

const PRIORITIES = ['sync-full', 'sync-light', 'async'] as const;

/** The options, checked before the first step; a refused call changes nothing. */
function check(kernel: Kernel, options: CompactOptions) {
  const o = requireOptions<CompactOptions>(options, 'compactZone options', [
    'order',
    'priority',
    'gfp',
    'protocol',
    'chunk',
    'taskCpu',
  ]);
  const order = o.order === undefined ? -1 : requireInteger(o.order, 'compactZone order', 0, MAX_ORDER);
  const priority =
    o.priority === undefined ? 'sync-full' : requireOneOf(o.priority, 'compactZone priority', PRIORITIES);
  const chunk = o.chunk === undefined ? PAGE_SIZE : requireChunk(o.chunk, 'compactZone chunk');
  const protocol = o.protocol === undefined ? kernel.migrateProtocol : migrationProtocol(o.protocol);
  if (o.taskCpu !== undefined) requireInteger(o.taskCpu, 'compactZone taskCpu', 0, kernel.cpus - 1);
  const gfp = o.gfp === undefined ? GFP_KERNEL : requireInteger(o.gfp, 'compactZone gfp', 0, 2 ** 30);
  return {
    order,
    priority: COMPACT_PRIO[priority === 'sync-full' ? 'SYNC_FULL' : priority === 'sync-light' ? 'SYNC_LIGHT' : 'ASYNC'],
    chunk,
    protocol,
    taskCpu: o.taskCpu,
    gfp,
  };
}

/** compact_control for compact_zone_order() at `priority` (or compact_memory for order -1). */
function control(order: number, priority: number, gfp: number, direct: boolean, vmalloc: boolean) {
  const full = priority === MIN_COMPACT_PRIORITY || order < 0;
  const cc: CompactControl = {
    order,
    mode: order < 0 ? 'sync' : priority === COMPACT_PRIO.ASYNC ? 'async' : 'sync-light',
    direct,
    migratetype: gfpMigratetype(gfp),
    wholeZone: full,
    ignoreSkipHint: full,
    ignoreBlockSuitable: full && order >= 0,
    vmallocMovable: vmalloc,
    migratePfn: 0,
    freePfn: 0,
    migratepages: [],
    freepages: [],
    totalMigrateScanned: 0,
    totalFreeScanned: 0,
  };
  return cc;
}

/** Compacts the zone (compact_memory, or for `order`); see CompactOptions. */
export function* compactZone(x: Assembler, kernel: Kernel, options: CompactOptions = {}): KernelProgram<CompactResult> {
  const o = check(kernel, options);
  const cc = control(o.order, o.priority, o.gfp, o.order >= 0, o.protocol !== undefined);
  return yield* runCompaction(x, kernel, cc, o);
}

/** compact_zone(): the scanners and migrations of one run. */
function* runCompaction(
  x: Assembler,
  kernel: Kernel,
  cc: CompactControl,
  o: { readonly chunk: number; readonly protocol: MigrationProtocol | undefined; readonly taskCpu: number | undefined },
): KernelProgram<CompactResult> {
  const pages = kernel.pages;
  const zone = kernel.zone;
  const cpu = x.cpuId;
  let moved = 0;
  let movedVmalloc = 0;
  let migrateNs = 0;
  const wanted = cc.order < 0 ? MAX_ORDER : cc.order;
  const start: number = yield x.atomic(LOCK.ZONE, () => {
    const c = pages.compaction;
    if (cc.order >= 0) {
      // Allocation can already succeed, nothing to do; or compaction is likely to fail.
      if (allocationWouldSucceed(pages, cc.order, pages.watermarks.min)) return COMPACT.SUCCESS;
      if (!compactionSuitable(pages, cc.order)) return COMPACT.SKIPPED;
    }
    if (cc.order >= 0 && c.restarting(cc.order)) c.resetIsolationSuitable();
    const sync = cc.mode === 'async' ? 0 : 1;
    if (cc.wholeZone) {
      cc.migratePfn = c.initMigratePfn;
      cc.freePfn = c.initFreePfn;
    } else {
      cc.migratePfn = c.cachedMigratePfn[sync]!;
      cc.freePfn = c.cachedFreePfn;
      if (cc.migratePfn <= c.initMigratePfn) cc.wholeZone = true;
    }
    return COMPACT.CONTINUE;
  });
  let result: CompactResultCode = start as CompactResultCode;
  let lastMigrated = 0;
  while (result === COMPACT.CONTINUE) {
    result = (yield x.atomic(LOCK.ZONE, () => compactFinished(kernel, cc))) as CompactResultCode;
    if (result !== COMPACT.CONTINUE) break;
    const isolated: number = yield x.atomic(LOCK.ZONE, () => isolateMigratepages(kernel, cc));
    if (isolated > 0) {
      lastMigrated = Math.max(zone.firstPfn, cc.migratePfn - 1 - ((cc.migratePfn - 1) % (1 << PAGEBLOCK_ORDER)));
      // migrate_pages() with compaction_alloc() / compaction_free(): LRU pages are copied one by one and change
      // hands in one step for the batch (migrate_pages_batch() unmaps, copies, then remaps a batch); vmalloc pages
      // move one by one by their protocol.
      const copied: { pfn: number; target: number }[] = [];
      while (cc.migratepages.length > 0) {
        const page = cc.migratepages.shift()!;
        if (cc.freepages.length === 0)
          yield x.atomic(LOCK.ZONE, () => {
            isolateFreepages(kernel, cc);
            return 0;
          });
        const target = cc.freepages.pop();
        if (target === undefined) {
          // -ENOMEM: put everything back; without the scanners having met, the run ends contended.
          cc.migratepages.unshift(page);
          yield x.atomic(LOCK.ZONE, () => {
            putbackAll(kernel, cc, cpu);
            return 0;
          });
          if (!scannersMet(cc)) result = COMPACT.CONTENDED;
          break;
        }
        const t0: number = kernel.timing ? yield x.rdtsc() : 0;
        if (page.va < 0) {
          yield x.copy(direct(target * PAGE_SIZE), direct(page.pfn * PAGE_SIZE), PAGE_SIZE, { chunk: o.chunk });
          copied.push({ pfn: page.pfn, target });
        } else if (yield* moveVmallocPage(x, kernel, page.va, target, o)) {
          moved++;
          movedVmalloc++;
        } else cc.freepages.push(target);
        if (kernel.timing) migrateNs += (yield x.rdtsc()) - t0;
      }
      if (copied.length > 0) {
        yield x.atomic(LOCK.ZONE, () => {
          commitLruPages(kernel, cpu, copied);
          return 0;
        });
        moved += copied.length;
      }
      if (result !== COMPACT.CONTINUE) break;
    }
    // Has the migrate scanner left the order-aligned block it migrated from? Drain this CPU's list so the freed
    // pages merge and compact_finished() sees them.
    if (cc.order > 0 && lastMigrated > 0) {
      const blockStart = cc.migratePfn - (cc.migratePfn % (1 << cc.order));
      if (lastMigrated < blockStart) {
        yield x.atomic(LOCK.ZONE, () => {
          pages.pcp.drain(zone, cpu);
          return 0;
        });
        lastMigrated = 0;
      }
    }
  }
  // Unused targets go back (to this CPU's list, as release_freepages() frees them), and the free scanner's cache
  // moves back to the highest of them.
  const success: number = yield x.atomic(LOCK.ZONE, () => {
    let highest = 0;
    for (const t of cc.freepages) {
      highest = Math.max(highest, t);
      pages.free(cpu, t, 0);
    }
    cc.freepages.length = 0;
    if (highest > 0) {
      const block = highest - (highest % (1 << PAGEBLOCK_ORDER));
      if (block > pages.compaction.cachedFreePfn) pages.compaction.cachedFreePfn = block;
    }
    pages.vmstat.compactMigrateScanned += cc.totalMigrateScanned;
    pages.vmstat.compactFreeScanned += cc.totalFreeScanned;
    pages.vmstat.compactMigrated += moved;
    for (let order = wanted; order <= MAX_ORDER; order++) if (zone.nrFree(order) > 0) return 1;
    return 0;
  });
  return {
    result,
    moved,
    movedVmalloc,
    success: success !== 0,
    migrateScanned: cc.totalMigrateScanned,
    freeScanned: cc.totalFreeScanned,
    migrateNs,
  };
}

/** __compact_finished() (compact_finished() turns NO_SUITABLE_PAGE into CONTINUE). */
function compactFinished(kernel: Kernel, cc: CompactControl): CompactResultCode {
  const c = kernel.pages.compaction;
  if (scannersMet(cc)) {
    c.resetCachedPositions(); // let the next compaction start anew
    if (cc.direct) c.blockskipFlush = true;
    return cc.wholeZone ? COMPACT.COMPLETE : COMPACT.PARTIAL_SKIPPED;
  }
  if (cc.order < 0) return COMPACT.CONTINUE;
  // Always finish scanning a pageblock, to reduce the chance of fallbacks later.
  if (cc.migratePfn % (1 << PAGEBLOCK_ORDER) !== 0) return COMPACT.CONTINUE;
  return suitablePageFree(kernel.zone, cc.order, cc.migratetype) ? COMPACT.SUCCESS : COMPACT.CONTINUE;
}

/** putback_movable_pages(): every isolated page returns to its LRU where it is. */
function putbackAll(kernel: Kernel, cc: CompactControl, cpu: number): void {
  for (const page of cc.migratepages) if (page.va < 0) putbackLruPage(kernel, cpu, page.pfn, page.pfn);
  cc.migratepages.length = 0;
}

/** The copied LRU pages change frames: each target takes its page's owner and LRU place, each source is freed. */
function commitLruPages(kernel: Kernel, cpu: number, copied: readonly { pfn: number; target: number }[]): void {
  for (const { pfn, target } of copied) {
    kernel.zone.setOwner(target, isolatedAnon(kernel, pfn) ? OWNER.ANON : OWNER.PAGE_CACHE);
    putbackLruPage(kernel, cpu, pfn, target);
    kernel.pages.free(cpu, pfn, 0);
  }
}

/** Migrates a vmalloc page by the protocol; the target becomes the area's. */
function* moveVmallocPage(
  x: Assembler,
  kernel: Kernel,
  va: number,
  target: number,
  o: { readonly chunk: number; readonly protocol: MigrationProtocol | undefined; readonly taskCpu: number | undefined },
): KernelProgram<boolean> {
  const r = yield* migratePage(x, kernel, va, o.protocol!, {
    newPfn: target,
    chunk: o.chunk,
    recheck: true,
    ...(o.taskCpu === undefined ? {} : { taskCpu: o.taskCpu }),
  });
  return r === 0;
}

/**
 * try_to_compact_pages() for a direct compactor: unless deferred (below the highest priority), compact the zone
 * for `order` at `priority`; a success stops deferring, a completed or partial run that did not make the block
 * defers the next attempts. Returns the compact_result and what the run did.
 */
export function* tryToCompactPages(
  x: Assembler,
  kernel: Kernel,
  gfp: number,
  order: number,
  priority: number,
): KernelProgram<CompactResult> {
  const pages = kernel.pages;
  const deferred: number = yield x.atomic(LOCK.ZONE, () => {
    if (priority > MIN_COMPACT_PRIORITY && pages.compaction.deferred(order)) {
      pages.vmstat.compactDeferred++;
      return 1;
    }
    return 0;
  });
  if (deferred) return emptyResult(COMPACT.DEFERRED);
  const cc = control(order, priority, gfp, true, kernel.migrateProtocol !== undefined);
  const r = yield* runCompaction(x, kernel, cc, {
    chunk: PAGE_SIZE,
    protocol: kernel.migrateProtocol,
    taskCpu: undefined,
  });
  yield x.atomic(LOCK.ZONE, () => {
    const c = pages.compaction;
    if (r.result === COMPACT.SUCCESS) c.deferReset(order, false);
    else if (
      priority !== COMPACT_PRIO.ASYNC &&
      (r.result === COMPACT.COMPLETE || r.result === COMPACT.PARTIAL_SKIPPED)
    ) {
      c.defer(order);
    }
    return 0;
  });
  return r;
}

function emptyResult(result: CompactResultCode): CompactResult {
  return { result, moved: 0, movedVmalloc: 0, success: false, migrateScanned: 0, freeScanned: 0, migrateNs: 0 };
}

/**
 * kcompactd_do_work(): background compaction for the largest order kcompactd was woken for, at MIGRATE_SYNC_LIGHT
 * with GFP_KERNEL, unless deferred, already satisfied at the min watermark, or unsuitable. A run that ends with
 * the scanners met drains the per-CPU lists and defers, as sync direct compaction does.
 */
export function* kcompactdDoWork(x: Assembler, kernel: Kernel): KernelProgram<CompactResult | undefined> {
  const pages = kernel.pages;
  const order: number = yield x.atomic(LOCK.ZONE, () => {
    const o = pages.kcompactdMaxOrder;
    pages.kcompactdMaxOrder = 0;
    pages.vmstat.kcompactdWake++;
    if (o === 0 || pages.compaction.deferred(o)) return 0;
    if (allocationWouldSucceed(pages, o, pages.watermarks.min)) return 0;
    return compactionSuitable(pages, o) ? o : 0;
  });
  if (order === 0) return undefined;
  const cc = control(order, COMPACT_PRIO.SYNC_LIGHT, GFP_KERNEL, false, kernel.migrateProtocol !== undefined);
  const r = yield* runCompaction(x, kernel, cc, {
    chunk: PAGE_SIZE,
    protocol: kernel.migrateProtocol,
    taskCpu: undefined,
  });
  yield x.atomic(LOCK.ZONE, () => {
    if (r.result === COMPACT.SUCCESS) pages.compaction.deferReset(order, false);
    else if (r.result === COMPACT.PARTIAL_SKIPPED || r.result === COMPACT.COMPLETE) {
      pages.pcp.drainAll(kernel.zone);
      pages.compaction.defer(order);
    }
    return 0;
  });
  return r;
}
