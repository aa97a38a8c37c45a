import type { BuddyAllocator } from './buddy.ts';
import { CompactionState } from './compaction-control.ts';
import { rmqueue } from './fallback.ts';
import { ALLOC, GFP, gfpMigratetype } from './gfp.ts';
import { MAX_ORDER, PAGEBLOCK_ORDER } from './mmzone.ts';
import { PerCpuPages, pcpAllowedOrder } from './pcp.ts';
import {
  boostWatermark,
  type Watermarks,
  watermarkPages,
  zoneBatchsize,
  zoneHighsize,
  zoneWatermarkOk,
  zoneWatermarks,
} from './watermarks.ts';

// The page allocator's fast path (mm/page_alloc.c, Linux 6.6) over the zone's free area: __alloc_pages()'s first
// attempt with the low watermark and ALLOC_NOFRAGMENT, get_page_from_freelist() (watermark check, then rmqueue():
// a per-CPU list for the orders it holds, else the buddy lists under the zone lock), the free side
// (free_unref_page(), __free_pages_ok()) and __alloc_pages_bulk(). Everything here is bookkeeping for one step
// under the zone lock; the slow path, which reclaims and compacts, is a kernel program (alloc-pages.ts).

/** What the allocator, compaction and reclaim counted (/proc/vmstat names). */
export interface VmStat {
  pgalloc: number;
  pgfree: number;
  allocstall: number;
  /** Allocations that failed after the slow path. */
  allocfail: number;
  compactstall: number;
  compactfail: number;
  compactsuccess: number;
  compactMigrateScanned: number;
  compactFreeScanned: number;
  compactIsolated: number;
  /** Pages migrated by compaction (pgmigrate_success from compaction). */
  compactMigrated: number;
  compactDeferred: number;
  kswapdWake: number;
  kcompactdWake: number;
  /** Pages reclaimed by kswapd and by direct reclaim. */
  pgstealKswapd: number;
  pgstealDirect: number;
}

function emptyVmStat(): VmStat {
  return {
    pgalloc: 0,
    pgfree: 0,
    allocstall: 0,
    allocfail: 0,
    compactstall: 0,
    compactfail: 0,
    compactsuccess: 0,
    compactMigrateScanned: 0,
    compactFreeScanned: 0,
    compactIsolated: 0,
    compactMigrated: 0,
    compactDeferred: 0,
    kswapdWake: 0,
    kcompactdWake: 0,
    pgstealKswapd: 0,
    pgstealDirect: 0,
  };
}

export interface PageAllocatorOptions {
  /** CPUs with per-CPU lists. */
  readonly cpus: number;
  /**
   * Whether the fast path sets ALLOC_NOFRAGMENT. Linux sets it for ZONE_NORMAL when ZONE_DMA32 is populated below
   * it (alloc_flags_nofragment()): the model's zone stands for that ZONE_NORMAL. Default true.
   */
  readonly nofragment?: boolean;
}

export class PageAllocator {
  readonly watermarks: Watermarks;
  pcp: PerCpuPages;
  compaction: CompactionState;
  vmstat: VmStat = emptyVmStat();
  readonly nofragment: boolean;
  /** ZONE_BOOSTED_WATERMARK: a fallback boosted the watermarks; the next ALLOC_KSWAPD allocation wakes kswapd. */
  boosted = false;
  /** ZONE_RECLAIM_ACTIVE: kswapd is reclaiming (per-CPU lists hold fewer pages meanwhile). */
  reclaimActive = false;
  /** A wakeup_kswapd() / wakeup_kcompactd() is pending: the allocating program wakes the daemon (alloc-pages.ts). */
  kswapdPending = false;
  /** pgdat->kswapd_order: the largest order kswapd was woken for. */
  kswapdOrder = 0;
  kcompactdPending = false;
  /** pgdat->kcompactd_max_order. */
  kcompactdMaxOrder = 0;

  constructor(
    readonly zone: BuddyAllocator,
    readonly options: PageAllocatorOptions,
  ) {
    const managed = zone.frames;
    this.watermarks = zoneWatermarks(managed);
    const batch = Math.max(1, zoneBatchsize(managed));
    this.pcp = new PerCpuPages(options.cpus, batch, zoneHighsize(this.watermarks.low, batch, options.cpus));
    this.compaction = new CompactionState(zone);
    this.nofragment = options.nofragment ?? true;
  }

  /** A copy over `zone` (the kernel's cloned zone). */
  clone(zone: BuddyAllocator): PageAllocator {
    const c = Object.create(PageAllocator.prototype) as PageAllocator;
    Object.assign(c, this);
    (c as { zone: BuddyAllocator }).zone = zone;
    (c as { watermarks: Watermarks }).watermarks = { ...this.watermarks };
    c.pcp = this.pcp.clone();
    c.compaction = this.compaction.clone(zone);
    c.vmstat = { ...this.vmstat };
    return c;
  }

  /** Takes `from`'s state in place (programs hold this object). */
  restore(from: PageAllocator): void {
    const c = from.clone(this.zone);
    Object.assign(this, c);
  }

  /**
   * Internal (the stateful checker, which goes back to saved states many times): as restore(), in place: the
   * per-CPU lists that are equal are left alone rather than the whole allocator cloned (2.8% of a search).
   */
  copyFrom(from: PageAllocator): void {
    // Every plain field: a test changes each own field that is not an object and checks that this puts it back.
    this.boosted = from.boosted;
    this.reclaimActive = from.reclaimActive;
    this.kswapdPending = from.kswapdPending;
    this.kswapdOrder = from.kswapdOrder;
    this.kcompactdPending = from.kcompactdPending;
    this.kcompactdMaxOrder = from.kcompactdMaxOrder;
    this.pcp.copyFrom(from.pcp);
    this.compaction = from.compaction.clone(this.zone);
    Object.assign(this.watermarks, from.watermarks);
    Object.assign(this.vmstat, from.vmstat);
  }

  /**
   * The state that decides what the allocator does next, as numbers (the stateful checker's fingerprint): the
   * per-CPU lists, the compaction state and the daemons' flags. The vmstat counters are statistics, left out as the
   * kernel's other counters are.
   */
  stateWords(out: number[]): void {
    this.pcp.stateWords(out);
    this.compaction.stateWords(out);
    out.push(this.boosted ? 1 : 0, this.reclaimActive ? 1 : 0, this.kswapdPending ? 1 : 0, this.kswapdOrder);
    out.push(this.kcompactdPending ? 1 : 0, this.kcompactdMaxOrder);
  }

  get managedPages(): number {
    return this.zone.frames;
  }

  /** Free pages including those on the per-CPU lists (what /proc/meminfo's MemFree shows). */
  get freePagesWithPcp(): number {
    return this.zone.freePages + this.pcp.total();
  }

  /**
   * rmqueue(): a block from CPU `cpu`'s list when the order has one, else from the buddy lists. A fallback that
   * split a foreign pageblock boosts the watermarks (steal_suitable_fallback()'s boost_watermark()), and an
   * ALLOC_KSWAPD request then wakes kswapd. Returns the block's index or -1.
   */
  rmqueue(cpu: number, order: number, type: number, allocFlags: number): number {
    const before = this.zone.extfrag.fragmenting;
    const i = pcpAllowedOrder(order)
      ? this.pcp.allocate(this.zone, cpu, order, type, allocFlags)
      : rmqueue(this.zone, order, type, allocFlags);
    if (this.zone.extfrag.fragmenting !== before && boostWatermark(this.watermarks, this.managedPages)) {
      if ((allocFlags & ALLOC.KSWAPD) !== 0) this.boosted = true;
    }
    if ((allocFlags & ALLOC.KSWAPD) !== 0 && this.boosted) {
      this.boosted = false;
      this.wakeupKswapd(0);
    }
    return i;
  }

  /**
   * get_page_from_freelist(): the zone's watermark for `allocFlags`, then rmqueue(). With ALLOC_NOFRAGMENT a
   * failure retries once without it ("It's possible on a UMA machine to get through all zones that are
   * fragmented"). Returns the block's index or -1.
   */
  getPageFromFreelist(cpu: number, gfp: number, order: number, allocFlags: number): number {
    const type = gfpMigratetype(gfp);
    let flags = allocFlags;
    for (;;) {
      const mark = watermarkPages(this.watermarks, flags);
      if ((flags & ALLOC.NO_WATERMARKS) !== 0 || zoneWatermarkOk(this.zone, order, mark, flags)) {
        const i = this.rmqueue(cpu, order, type, flags);
        if (i >= 0) return i;
      }
      if ((flags & ALLOC.NOFRAGMENT) === 0) return -1;
      flags &= ~ALLOC.NOFRAGMENT;
    }
  }

  /** The fast path's flags: the low watermark, kswapd if the GFP allows, ALLOC_NOFRAGMENT (alloc_flags_nofragment()). */
  fastFlags(gfp: number): number {
    return ALLOC.WMARK_LOW | (gfp & GFP.KSWAPD_RECLAIM) | (this.nofragment ? ALLOC.NOFRAGMENT : 0);
  }

  /** Gives the block at index `i` to `owner` and counts it; returns its pfn. */
  take(i: number, order: number, owner: number): number {
    this.vmstat.pgalloc += 1 << order;
    return this.zone.assign(i, order, owner);
  }

  /**
   * __alloc_pages()'s first attempt: get_page_from_freelist() with the low watermark. Returns the pfn, or -1 when
   * the caller must take the slow path.
   */
  allocFast(cpu: number, gfp: number, order: number, owner: number): number {
    if (order < 0 || order > MAX_ORDER) return -1;
    const i = this.getPageFromFreelist(cpu, gfp, order, this.fastFlags(gfp));
    return i < 0 ? -1 : this.take(i, order, owner);
  }

  /**
   * __free_pages(): releases the block at `pfn`, then free_unref_page() puts it on CPU `cpu`'s list when the
   * order has one, else __free_pages_ok() returns it to the buddy lists; either way as its pageblock's type now.
   */
  free(cpu: number, pfn: number, order: number): void {
    const zone = this.zone;
    const i = zone.release(pfn, order);
    const type = zone.pageblockType[i >>> PAGEBLOCK_ORDER]!;
    this.vmstat.pgfree += 1 << order;
    if (pcpAllowedOrder(order)) this.pcp.free(zone, cpu, i, order, type, this.reclaimActive);
    else zone.freeOne(i, order, type);
  }

  /**
   * __alloc_pages_bulk(): up to `count` order-0 pages for `owner` from CPU `cpu`'s list, provided the zone is
   * above its low watermark plus `count`; appended to `pfns`. Returns how many it got; 0 tells the caller to fall
   * back to a single-page allocation (which may take the slow path).
   */
  allocBulk(cpu: number, gfp: number, count: number, owner: number, pfns: number[]): number {
    if (count <= 0) return 0;
    if (count === 1) return 0; // "Use the single page allocator for one page."
    const mark = watermarkPages(this.watermarks, ALLOC.WMARK_LOW) + count;
    if (!zoneWatermarkOk(this.zone, 0, mark, ALLOC.WMARK_LOW)) return 0;
    const type = gfpMigratetype(gfp);
    // prepare_alloc_pages() gives the bulk allocator the low watermark only: no ALLOC_NOFRAGMENT, no kswapd.
    const flags = ALLOC.WMARK_LOW;
    let got = 0;
    while (got < count) {
      const i = this.pcp.allocate(this.zone, cpu, 0, type, flags);
      if (i < 0) break;
      pfns.push(this.take(i, 0, owner));
      got++;
    }
    return got;
  }

  /** wakeup_kswapd(): remembers the order; the allocating program wakes the daemon. */
  wakeupKswapd(order: number): void {
    this.kswapdOrder = Math.max(this.kswapdOrder, order);
    this.kswapdPending = true;
  }

  /** wakeup_kcompactd(): as kswapd, for background compaction of `order` (order 0 wakes nothing). */
  wakeupKcompactd(order: number): void {
    if (order === 0) return;
    this.kcompactdMaxOrder = Math.max(this.kcompactdMaxOrder, order);
    this.kcompactdPending = true;
  }

  /** __isolate_free_page()'s check: the zone stays above min + 2^order (as if the page were allocated). */
  isolationAllowed(order: number): boolean {
    return zoneWatermarkOk(this.zone, 0, this.watermarks.min + (1 << order), 0);
  }
}
