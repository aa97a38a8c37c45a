import type { BuddyAllocator } from './buddy.ts';
import { findSuitableFallback, NO_FALLBACK } from './fallback.ts';
import { ALLOC } from './gfp.ts';
import { MAX_ORDER, PAGE_ALLOC_COSTLY_ORDER, PAGEBLOCK_ORDER } from './mmzone.ts';
import { type Watermarks, zoneWatermarkOk } from './watermarks.ts';

// When to compact and when to stop (mm/compaction.c, Linux 6.6): the zone's compaction state (deferral counters,
// the scanners' cached positions, the pageblock skip bits' reset), compaction_suitable() with the fragmentation
// index and vm.extfrag_threshold, and __compact_finished(). compaction.ts runs the scanners.

/** enum compact_result, in Linux's order: a larger value is a better outcome (try_to_compact_pages() takes the max). */
export const COMPACT = {
  NOT_SUITABLE_ZONE: 0,
  SKIPPED: 1,
  DEFERRED: 2,
  NO_SUITABLE_PAGE: 3,
  CONTINUE: 4,
  COMPLETE: 5,
  PARTIAL_SKIPPED: 6,
  CONTENDED: 7,
  SUCCESS: 8,
} as const;
export type CompactResultCode = (typeof COMPACT)[keyof typeof COMPACT];
export const COMPACT_RESULT_NAMES = [
  'not-suitable-zone',
  'skipped',
  'deferred',
  'no-suitable-page',
  'continue',
  'complete',
  'partial-skipped',
  'contended',
  'success',
] as const;

/** enum compact_priority: lower is harder. */
export const COMPACT_PRIO = { SYNC_FULL: 0, SYNC_LIGHT: 1, ASYNC: 2 } as const;
export const MIN_COMPACT_PRIORITY = COMPACT_PRIO.SYNC_FULL;
export const MIN_COMPACT_COSTLY_PRIORITY = COMPACT_PRIO.SYNC_LIGHT;
export const DEF_COMPACT_PRIORITY = COMPACT_PRIO.SYNC_LIGHT;
export const INIT_COMPACT_PRIORITY = COMPACT_PRIO.ASYNC;

/** Compaction is skipped at most 1 << COMPACT_MAX_DEFER_SHIFT = 64 times after failures. */
export const COMPACT_MAX_DEFER_SHIFT = 6;
/** vm.extfrag_threshold: a costly order is compacted only when its fragmentation index is above this (or -1000). */
export const EXTFRAG_THRESHOLD = 500;

/** compact_gap(order): free pages compaction wants beyond the watermark (twice the request: targets plus room). */
export function compactGap(order: number): number {
  return 2 << order;
}

/** The zone's compaction state (struct zone's compact_* fields). */
export class CompactionState {
  considered = 0;
  deferShift = 0;
  orderFailed = 0;
  /** compact_cached_migrate_pfn[async, sync] and compact_cached_free_pfn (pfns). */
  cachedMigratePfn: [number, number];
  cachedFreePfn: number;
  /** compact_init_migrate_pfn / compact_init_free_pfn: the scanners' starting points. */
  readonly initMigratePfn: number;
  readonly initFreePfn: number;
  /** compact_blockskip_flush: a direct compaction's scanners met; kswapd clears the skip bits before it sleeps. */
  blockskipFlush = false;

  constructor(readonly zone: BuddyAllocator) {
    this.initMigratePfn = zone.firstPfn;
    // pageblock_start_pfn(zone_end_pfn(zone) - 1).
    const last = zone.firstPfn + zone.frames - 1;
    this.initFreePfn = last - (last % (1 << PAGEBLOCK_ORDER));
    this.cachedMigratePfn = [this.initMigratePfn, this.initMigratePfn];
    this.cachedFreePfn = this.initFreePfn;
  }

  clone(zone: BuddyAllocator): CompactionState {
    const c = Object.create(CompactionState.prototype) as CompactionState;
    Object.assign(c, this);
    (c as { zone: BuddyAllocator }).zone = zone;
    c.cachedMigratePfn = [...this.cachedMigratePfn];
    return c;
  }

  /** Appends the fields that decide what compaction does next (the stateful checker's fingerprint). */
  stateWords(out: number[]): void {
    out.push(this.considered, this.deferShift, this.orderFailed, this.cachedMigratePfn[0], this.cachedMigratePfn[1]);
    out.push(this.cachedFreePfn, this.blockskipFlush ? 1 : 0);
  }

  /** defer_compaction(): after a failure, skip the next 1 << shift attempts at this order or above. */
  defer(order: number): void {
    this.considered = 0;
    this.deferShift = Math.min(this.deferShift + 1, COMPACT_MAX_DEFER_SHIFT);
    if (order < this.orderFailed) this.orderFailed = order;
  }

  /** compaction_deferred(): whether to skip compaction at `order` this time (counts the attempt). */
  deferred(order: number): boolean {
    const limit = 1 << this.deferShift;
    if (order < this.orderFailed) return false;
    this.considered = Math.min(this.considered + 1, limit);
    return this.considered < limit;
  }

  /** compaction_defer_reset(): after a success (an allocation, or one expected), stop deferring. */
  deferReset(order: number, allocSuccess: boolean): void {
    if (allocSuccess) {
      this.considered = 0;
      this.deferShift = 0;
    }
    if (order >= this.orderFailed) this.orderFailed = order + 1;
  }

  /** compaction_restarting(): deferred to the limit and now tried again. */
  restarting(order: number): boolean {
    if (order < this.orderFailed) return false;
    return this.deferShift === COMPACT_MAX_DEFER_SHIFT && this.considered >= 1 << this.deferShift;
  }

  /** reset_cached_positions(). */
  resetCachedPositions(): void {
    this.cachedMigratePfn = [this.initMigratePfn, this.initMigratePfn];
    this.cachedFreePfn = this.initFreePfn;
  }

  /** __reset_isolation_suitable(): every pageblock may be scanned again, from the zone's ends. */
  resetIsolationSuitable(): void {
    this.blockskipFlush = false;
    this.zone.writable();
    this.zone.pageblockSkip.fill(0);
    this.resetCachedPositions();
  }
}

/**
 * What the compaction checks need of the page allocator (PageAllocator implements it): the zone and its
 * watermarks. page-alloc.ts holds a CompactionState, so this module takes the narrow interface, not the class.
 */
export interface ZoneWithWatermarks {
  readonly zone: BuddyAllocator;
  readonly watermarks: Watermarks;
}

/**
 * __compaction_suitable(): are there enough free pages to compact at all? Order-0 watermark (low for costly
 * orders, min otherwise) plus compact_gap(order), against `freePages`.
 */
export function compactionSuitableWatermark(pages: ZoneWithWatermarks, order: number, freePages: number): boolean {
  const w = pages.watermarks;
  const mark = (order > PAGE_ALLOC_COSTLY_ORDER ? w.low : w.min) + compactGap(order);
  return zoneWatermarkOk(pages.zone, 0, mark, 0, freePages);
}

/**
 * compaction_suitable(): the watermark check, and for a costly order the fragmentation index: an index between 0
 * and extfrag_threshold (500) says the failure is for lack of memory, so compaction would not help.
 */
export function compactionSuitable(pages: ZoneWithWatermarks, order: number): boolean {
  if (!compactionSuitableWatermark(pages, order, pages.zone.freePages)) return false;
  if (order > PAGE_ALLOC_COSTLY_ORDER) {
    const index = pages.zone.fragmentationIndex(order);
    if (index >= 0 && index <= EXTFRAG_THRESHOLD) return false;
  }
  return true;
}

/**
 * The allocation check at the top of compact_zone() (and in kcompactd): would an allocation of `order` succeed now,
 * at `mark`?
 */
export function allocationWouldSucceed(
  pages: ZoneWithWatermarks,
  order: number,
  mark: number,
  allocFlags = 0,
): boolean {
  return zoneWatermarkOk(pages.zone, order, mark, allocFlags & ~ALLOC.WMARK_MASK);
}

/**
 * __compact_finished()'s check for a direct compactor once the migrate scanner is at a pageblock boundary: is a
 * block of `order` or larger free on the request's type's list, or one that a fallback could claim whole?
 */
export function suitablePageFree(zone: BuddyAllocator, order: number, type: number): boolean {
  for (let o = order; o <= MAX_ORDER; o++) {
    if (zone.freeCount(o, type) > 0) return true;
    if (findSuitableFallback(zone, o, type, true) !== NO_FALLBACK) return true;
  }
  return false;
}
