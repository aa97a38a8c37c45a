import type { Assembler } from '../cpu/assembler.ts';
import { compactGap } from './compaction-control.ts';
import { ALLOC } from './gfp.ts';
import { type Kernel, LOCK } from './kernel.ts';
import type { KernelProgram } from './kernel-page-tables.ts';
import { LRU } from './lru.ts';
import { PAGEBLOCK_ORDER } from './mmzone.ts';
import { watermarkPages, zoneWatermarkOk } from './watermarks.ts';

// Page reclaim, as little as the fragmentation experiment needs (mm/vmscan.c, Linux 6.6): clean page-cache pages
// are dropped oldest first, SWAP_CLUSTER_MAX at a time (shrink_inactive_list() on the file LRU; anonymous pages
// stay, as with no swap). Direct reclaim (try_to_free_pages()) reclaims one batch for a failing allocation;
// kswapd (balance_pgdat()) reclaims until the zone is above its high watermark, boost included, then wakes
// kcompactd for the order it was woken for, and clears compaction's skip bits when a direct compaction asked
// (kswapd_try_to_sleep()). Slab shrinkers, writeback and the active/inactive split are not modelled.

/** SWAP_CLUSTER_MAX: pages reclaimed per batch, and direct reclaim's nr_to_reclaim. */
export const SWAP_CLUSTER_MAX = 32;

/** zone_reclaimable_pages(): what reclaim could free (the file LRU; no swap for anonymous pages). */
export function zoneReclaimablePages(kernel: Kernel): number {
  return kernel.lru.size(LRU.FILE);
}

/**
 * Frees up to `count` of the oldest page-cache pages on CPU `cpu` (their frames go to its per-CPU list, as
 * free_unref_page_list() does). Returns how many it freed. Bookkeeping: call inside a zone-lock step.
 */
export function shrinkPageCache(kernel: Kernel, cpu: number, count: number): number {
  let freed = 0;
  for (; freed < count; freed++) {
    const pfn = kernel.lru.oldest(LRU.FILE);
    if (pfn < 0) break;
    kernel.lru.remove(pfn);
    kernel.pages.free(cpu, pfn, 0);
  }
  return freed;
}

/** try_to_free_pages() for a failing allocation: one batch of SWAP_CLUSTER_MAX. Returns the pages freed. */
export function* directReclaim(x: Assembler, kernel: Kernel): KernelProgram<number> {
  const cpu = x.cpuId;
  return yield x.atomic(LOCK.ZONE, () => {
    const freed = shrinkPageCache(kernel, cpu, SWAP_CLUSTER_MAX);
    kernel.pages.vmstat.allocstall++;
    kernel.pages.vmstat.pgstealDirect += freed;
    return freed;
  });
}

/**
 * kswapd's work once woken (balance_pgdat(), then kswapd_try_to_sleep()): reclaim a batch at a time until the
 * zone meets its high watermark (with boost) for the order it was woken for; for a high order, once it has
 * reclaimed compact_gap(order) pages it balances for order 0 and leaves the rest to compaction. Then a boost is
 * cleared and kcompactd woken for a pageblock, kcompactd is woken for the order, and compaction's skip bits are
 * cleared if a direct compaction asked.
 */
export function* kswapd(x: Assembler, kernel: Kernel): KernelProgram<void> {
  const cpu = x.cpuId;
  const pages = kernel.pages;
  const start: number = yield x.atomic(LOCK.ZONE, () => {
    const order = pages.kswapdOrder;
    pages.kswapdOrder = 0;
    pages.reclaimActive = true; // set_reclaim_active()
    pages.vmstat.kswapdWake++;
    return order;
  });
  let order = start;
  let reclaimed = 0;
  for (;;) {
    const freed: number = yield x.atomic(LOCK.ZONE, () => {
      const mark = watermarkPages(pages.watermarks, ALLOC.WMARK_HIGH);
      if (zoneWatermarkOk(pages.zone, order, mark, 0)) return -1; // pgdat_balanced()
      const n = shrinkPageCache(kernel, cpu, SWAP_CLUSTER_MAX);
      pages.vmstat.pgstealKswapd += n;
      return n;
    });
    if (freed <= 0) break;
    reclaimed += freed;
    if (order > 0 && reclaimed >= compactGap(order)) order = 0;
  }
  yield x.atomic(LOCK.ZONE, () => {
    pages.reclaimActive = false;
    if (pages.watermarks.boost > 0) {
      // A boosted reclaim is done: drop the boost and let kcompactd defragment a pageblock.
      pages.watermarks.boost = 0;
      pages.wakeupKcompactd(PAGEBLOCK_ORDER);
    }
    pages.wakeupKcompactd(start);
    if (pages.compaction.blockskipFlush) pages.compaction.resetIsolationSuitable();
    return 0;
  });
}
