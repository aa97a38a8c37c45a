import type { Assembler } from '../cpu/assembler.ts';
import { tryToCompactPages } from './compaction.ts';
import {
  COMPACT,
  compactionSuitableWatermark,
  DEF_COMPACT_PRIORITY,
  INIT_COMPACT_PRIORITY,
  MIN_COMPACT_COSTLY_PRIORITY,
  MIN_COMPACT_PRIORITY,
} from './compaction-control.ts';
import { ALLOC, GFP, gfpMigratetype, gfpToAllocFlags } from './gfp.ts';
import { type Kernel, LOCK } from './kernel.ts';
import type { KernelProgram } from './kernel-page-tables.ts';
import { MIGRATETYPE, PAGE_ALLOC_COSTLY_ORDER } from './mmzone.ts';
import { directReclaim, zoneReclaimablePages } from './reclaim.ts';
import { lockWord } from './smp.ts';
import { zoneWatermarkOk } from './watermarks.ts';

// Allocating and freeing pages from kernel programs (mm/page_alloc.c, Linux 6.6): __alloc_pages() tries the fast
// path (page-alloc.ts) in one zone-lock step, and on failure runs __alloc_pages_slowpath(): wake kswapd, retry at
// the min watermark, direct compaction first for costly orders (async), then direct reclaim and compaction in a
// loop whose exits are the GFP flags' (__GFP_NORETRY: one round; a costly order without __GFP_RETRY_MAYFAIL: one
// round; otherwise should_reclaim_retry() and should_compact_retry()). The OOM killer is not modelled: where Linux
// would invoke it the allocation fails, and is counted.
//
// kswapd and kcompactd are woken through a word in memory that the daemon program (kthreads.ts) waits on.

/** MAX_RECLAIM_RETRIES: reclaim rounds without progress before giving up. */
export const MAX_RECLAIM_RETRIES = 16;
/** MAX_COMPACT_RETRIES: compaction retries that made progress before giving up. */
export const MAX_COMPACT_RETRIES = 16;
/** The lock word the daemons wait on: bit 0 work is pending, bit 1 stop. */
export const KTHREAD_WAKE_WORD = 44;

/** A step's result: the pfn (or -1) and whether a daemon needs waking, in one number. */
function packed(pfn: number, wake: boolean): number {
  return (pfn + 1) * 2 + (wake ? 1 : 0);
}

function unpackPfn(v: number): number {
  return Math.floor(v / 2) - 1;
}

/** Stores to the daemons' word when the last step left work for them (wakeup_kswapd(), wakeup_kcompactd()). */
function* wake(x: Assembler, kernel: Kernel, v: number): KernelProgram<void> {
  if (v % 2 === 1) yield x.store(lockWord(kernel, KTHREAD_WAKE_WORD), 8, 1);
}

function pending(kernel: Kernel): boolean {
  return kernel.pages.kswapdPending || kernel.pages.kcompactdPending;
}

/** One get_page_from_freelist() step; `onAlloc` runs in the same step (e.g. to put the page on an LRU). */
function* attempt(
  x: Assembler,
  kernel: Kernel,
  gfp: number,
  order: number,
  allocFlags: number,
  owner: number,
  onAlloc: ((pfn: number) => void) | undefined,
): KernelProgram<number> {
  const cpu = x.cpuId;
  const pages = kernel.pages;
  const v: number = yield x.atomic(LOCK.ZONE, () => {
    const i = pages.getPageFromFreelist(cpu, gfp, order, allocFlags);
    const pfn = i < 0 ? -1 : pages.take(i, order, owner);
    if (pfn >= 0) onAlloc?.(pfn);
    return packed(pfn, pending(kernel));
  });
  yield* wake(x, kernel, v);
  return unpackPfn(v);
}

/**
 * __alloc_pages(gfp, order): 2^order frames for `owner`, or -1. `onAlloc(pfn)` runs in the step that allocated.
 */
export function* allocPages(
  x: Assembler,
  kernel: Kernel,
  gfp: number,
  order: number,
  owner: number,
  onAlloc?: (pfn: number) => void,
): KernelProgram<number> {
  const pfn = yield* attempt(x, kernel, gfp, order, kernel.pages.fastFlags(gfp), owner, onAlloc);
  if (pfn >= 0) return pfn;
  return yield* slowpath(x, kernel, gfp, order, owner, onAlloc);
}

/** __alloc_pages_slowpath(). */
function* slowpath(
  x: Assembler,
  kernel: Kernel,
  gfp: number,
  order: number,
  owner: number,
  onAlloc: ((pfn: number) => void) | undefined,
): KernelProgram<number> {
  const pages = kernel.pages;
  const canDirectReclaim = (gfp & GFP.DIRECT_RECLAIM) !== 0;
  const costly = order > PAGE_ALLOC_COSTLY_ORDER;
  const allocFlags = gfpToAllocFlags(gfp);
  let compactPriority: number = DEF_COMPACT_PRIORITY;
  let compactResult: number = COMPACT.SKIPPED;
  let compactionRetries = 0;
  let noProgressLoops = 0;
  const wakeKswapd = function* () {
    if ((allocFlags & ALLOC.KSWAPD) === 0) return;
    const v: number = yield x.atomic(LOCK.ZONE, () => {
      pages.wakeupKswapd(order); // wake_all_kswapds()
      return packed(0, true);
    });
    yield* wake(x, kernel, v);
  };
  yield* wakeKswapd();
  let pfn = yield* attempt(x, kernel, gfp, order, allocFlags, owner, onAlloc);
  if (pfn >= 0) return pfn;
  // Costly orders, and non-movable high orders, try direct compaction first: there may be enough base pages.
  if (canDirectReclaim && (costly || (order > 0 && gfpMigratetype(gfp) !== MIGRATETYPE.MOVABLE))) {
    const r = yield* directCompact(x, kernel, gfp, order, allocFlags, owner, onAlloc, INIT_COMPACT_PRIORITY);
    if (r.pfn >= 0) return r.pfn;
    compactResult = r.result;
    if (costly && (gfp & GFP.NORETRY) !== 0) {
      // Skipped or deferred: reclaim would not make whole pageblocks free either.
      if (compactResult === COMPACT.SKIPPED || compactResult === COMPACT.DEFERRED) return yield* fail(x, kernel);
      compactPriority = INIT_COMPACT_PRIORITY; // keep using async compaction
    }
  }
  for (;;) {
    yield* wakeKswapd();
    pfn = yield* attempt(x, kernel, gfp, order, allocFlags, owner, onAlloc);
    if (pfn >= 0) return pfn;
    if (!canDirectReclaim) return yield* fail(x, kernel);
    // __alloc_pages_direct_reclaim(): one batch, then a try; on failure drain the per-CPU lists and try again.
    const progress = yield* directReclaim(x, kernel);
    if (progress > 0) {
      pfn = yield* attempt(x, kernel, gfp, order, allocFlags, owner, onAlloc);
      if (pfn >= 0) return pfn;
      yield x.atomic(LOCK.ZONE, () => {
        pages.pcp.drainAll(kernel.zone);
        return 0;
      });
      pfn = yield* attempt(x, kernel, gfp, order, allocFlags, owner, onAlloc);
      if (pfn >= 0) return pfn;
    }
    const r = yield* directCompact(x, kernel, gfp, order, allocFlags, owner, onAlloc, compactPriority);
    if (r.pfn >= 0) return r.pfn;
    compactResult = r.result;
    if ((gfp & GFP.NORETRY) !== 0) return yield* fail(x, kernel);
    if (costly && (gfp & GFP.RETRY_MAYFAIL) === 0) return yield* fail(x, kernel);
    const retryReclaim: number = yield x.atomic(LOCK.ZONE, () => {
      // should_reclaim_retry(): costly orders always count as no progress.
      if (progress > 0 && order <= PAGE_ALLOC_COSTLY_ORDER) noProgressLoops = 0;
      else noProgressLoops++;
      if (noProgressLoops > MAX_RECLAIM_RETRIES) return 0;
      const available = zoneReclaimablePages(kernel) + kernel.zone.freePages;
      return zoneWatermarkOk(kernel.zone, order, pages.watermarks.min, allocFlags, available) ? 1 : 0;
    });
    if (retryReclaim) continue;
    if (progress > 0 && order > 0) {
      // should_compact_retry().
      if (compactResult === COMPACT.SKIPPED) {
        const suitable: number = yield x.atomic(LOCK.ZONE, () => {
          const available = Math.floor(zoneReclaimablePages(kernel) / order) + kernel.zone.freePages;
          return compactionSuitableWatermark(pages, order, available) ? 1 : 0;
        });
        if (suitable) continue;
      } else if (compactResult === COMPACT.SUCCESS) {
        const max = costly ? MAX_COMPACT_RETRIES / 4 : MAX_COMPACT_RETRIES;
        if (++compactionRetries <= max) continue;
      } else {
        const minPriority = costly ? MIN_COMPACT_COSTLY_PRIORITY : MIN_COMPACT_PRIORITY;
        if (compactPriority > minPriority) {
          compactPriority--;
          compactionRetries = 0;
          continue;
        }
      }
    }
    return yield* fail(x, kernel); // where Linux would call the OOM killer
  }
}

function* fail(x: Assembler, kernel: Kernel): KernelProgram<number> {
  yield x.atomic(LOCK.STATS, () => {
    kernel.pages.vmstat.allocfail++;
    return 0;
  });
  return -1;
}

/**
 * __alloc_pages_direct_compact(): try_to_compact_pages(), then an attempt if compaction ran. A success stops
 * deferring compaction for this order (compaction_defer_reset()).
 */
function* directCompact(
  x: Assembler,
  kernel: Kernel,
  gfp: number,
  order: number,
  allocFlags: number,
  owner: number,
  onAlloc: ((pfn: number) => void) | undefined,
  priority: number,
): KernelProgram<{ pfn: number; result: number }> {
  if (order === 0) return { pfn: -1, result: COMPACT.SKIPPED };
  const pages = kernel.pages;
  const r = yield* tryToCompactPages(x, kernel, gfp, order, priority);
  if (r.result === COMPACT.SKIPPED || r.result === COMPACT.DEFERRED) return { pfn: -1, result: r.result };
  yield x.atomic(LOCK.STATS, () => {
    pages.vmstat.compactstall++;
    return 0;
  });
  const pfn = yield* attempt(x, kernel, gfp, order, allocFlags, owner, onAlloc);
  yield x.atomic(LOCK.ZONE, () => {
    if (pfn >= 0) {
      pages.compaction.deferReset(order, true);
      pages.vmstat.compactsuccess++;
    } else pages.vmstat.compactfail++;
    return 0;
  });
  return { pfn, result: r.result };
}

/**
 * `count` order-0 pages for `owner`, as a caller's loop of alloc_pages() calls (readahead filling a page-cache
 * window, a fault handler mapping base pages): as many as the fast path gives in one step, then one by one, each
 * with the slow path. `onAlloc(pfn, n)` runs in the step that allocated page n. Returns how many it got (fewer
 * only when an allocation failed after the slow path).
 */
export function* allocPagesBatch(
  x: Assembler,
  kernel: Kernel,
  gfp: number,
  count: number,
  owner: number,
  onAlloc: (pfn: number, n: number) => void,
): KernelProgram<number> {
  const cpu = x.cpuId;
  const pages = kernel.pages;
  const v: number = yield x.atomic(LOCK.ZONE, () => {
    let n = 0;
    for (; n < count; n++) {
      const pfn = pages.allocFast(cpu, gfp, 0, owner);
      if (pfn < 0) break;
      onAlloc(pfn, n);
    }
    return packed(n, pending(kernel));
  });
  yield* wake(x, kernel, v);
  let done = unpackPfn(v);
  while (done < count) {
    const n = done;
    const pfn = yield* allocPages(x, kernel, gfp, 0, owner, (p) => onAlloc(p, n));
    if (pfn < 0) break;
    done++;
  }
  return done;
}

/** __free_pages(): the block goes to this CPU's per-CPU list, or the buddy lists for other orders. */
export function* freePages(x: Assembler, kernel: Kernel, pfn: number, order: number): KernelProgram<void> {
  const cpu = x.cpuId;
  yield x.atomic(LOCK.ZONE, () => {
    kernel.pages.free(cpu, pfn, order);
    return 0;
  });
}

/**
 * alloc_pages_bulk_array(): up to `count` order-0 pages for `owner` in one step from this CPU's list, each handed to
 * `onAlloc` in that step (as Linux fills the caller's page array). Returns how many it got: 0 means the zone is near
 * its low watermark, and the caller allocates page by page (which may take the slow path).
 */
export function* allocPagesBulk(
  x: Assembler,
  kernel: Kernel,
  gfp: number,
  count: number,
  owner: number,
  onAlloc: (pfn: number) => void,
): KernelProgram<number> {
  const cpu = x.cpuId;
  return yield x.atomic(LOCK.ZONE, () => {
    const pfns: number[] = [];
    const got = kernel.pages.allocBulk(cpu, gfp, count, owner, pfns);
    for (const pfn of pfns) onAlloc(pfn);
    return got;
  });
}
