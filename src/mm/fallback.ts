import type { FreeArea } from './free-area.ts';
import { ALLOC } from './gfp.ts';
import { MAX_ORDER, MIGRATETYPE, type Migratetype, PAGEBLOCK_ORDER } from './mmzone.ts';
import { moveFreepagesBlock } from './pageblock.ts';

// Falling back to another migratetype's free lists (mm/page_alloc.c, Linux 6.6): __rmqueue() tries the request's
// own type (__rmqueue_smallest()), and when that list is empty __rmqueue_fallback() finds a block of another type,
// moves it (and maybe its whole pageblock) to the request's type, and retries. Each fallback is one
// mm_page_alloc_extfrag event, counted on the zone. The rules are the kernel's:
// - fallbacks[]: the order in which the other types are tried;
// - can_steal_fallback(): a block of half a pageblock or more (order >= pageblock_order / 2, integer division:
//   4), or any block taken for an UNMOVABLE or RECLAIMABLE request, may claim its whole pageblock;
// - __rmqueue_fallback(): search the largest block first; but a MOVABLE request that cannot claim the pageblock
//   takes the smallest block instead (find_smallest), so it splits as little as possible of a foreign pageblock;
//   with ALLOC_NOFRAGMENT only whole pageblocks may be taken;
// - steal_suitable_fallback(): a block of a pageblock or more changes its pageblocks' type outright; otherwise,
//   when it may claim the pageblock, every free block in it moves over, and the pageblock changes type when its
//   free pages plus the allocated pages "alike" the request make at least half of it.
//
// They were added by: Mel Gorman, "mm: page allocator: fallback to other migratetypes" (2.6.24); Joonsoo Kim,
// "mm/page_alloc: factor out fallback freepage checking" (can_steal_fallback, 4.0); Vlastimil Babka,
// "mm, page_alloc: count movable pages when stealing from pageblock" (alike pages, 4.12); Mel Gorman, "mm: use
// alloc_flags to record if kswapd can wake" / ALLOC_NOFRAGMENT (4.21/5.0); Kaiyang Zhao, find_smallest (5.14).

/** fallbacks[MIGRATE_TYPES][MIGRATE_PCPTYPES - 1]: where each migratetype falls back to, in order. */
export const FALLBACKS: readonly (readonly Migratetype[])[] = [
  /* UNMOVABLE */ [MIGRATETYPE.RECLAIMABLE, MIGRATETYPE.MOVABLE],
  /* MOVABLE */ [MIGRATETYPE.RECLAIMABLE, MIGRATETYPE.UNMOVABLE],
  /* RECLAIMABLE */ [MIGRATETYPE.UNMOVABLE, MIGRATETYPE.MOVABLE],
];

/** pageblock_order / 2 in C's integer division: 9 / 2 = 4, not 4.5. */
export const STEAL_ORDER = PAGEBLOCK_ORDER >> 1;

/** can_steal_fallback(order, start_mt): may a block of `order` taken for `startType` claim its pageblock? */
export function canStealFallback(order: number, startType: number): boolean {
  if (order >= PAGEBLOCK_ORDER) return true;
  return order >= STEAL_ORDER || startType === MIGRATETYPE.RECLAIMABLE || startType === MIGRATETYPE.UNMOVABLE;
}

/** No suitable fallback (find_suitable_fallback() returns -1). */
export const NO_FALLBACK = -1;
/** Set in findSuitableFallback()'s result when can_steal_fallback() allowed claiming the pageblock. */
export const CAN_STEAL = 0x10;

/**
 * find_suitable_fallback(area, order, migratetype, only_stealable, &can_steal): the first type in fallbacks[] with
 * a free block at `order`. Returns that type, with CAN_STEAL or-ed in when the block may claim its pageblock, or
 * NO_FALLBACK. With `onlyStealable`, a type is returned only if it may claim (compaction's finish check uses that).
 */
export function findSuitableFallback(zone: FreeArea, order: number, type: number, onlyStealable: boolean) {
  if (zone.nrFree(order) === 0) return NO_FALLBACK;
  const canSteal = canStealFallback(order, type);
  for (const fallback of FALLBACKS[type]!) {
    if (zone.freeCount(order, fallback) === 0) continue;
    if (!onlyStealable) return fallback | (canSteal ? CAN_STEAL : 0);
    if (canSteal) return fallback | CAN_STEAL;
  }
  return NO_FALLBACK;
}

/**
 * steal_suitable_fallback(zone, page, alloc_flags, start_type, whole_block): moves the free block at index `i`
 * (and, when `wholeBlock`, its pageblock's other free blocks) to `startType`'s lists, changing the pageblock's
 * type when enough of it is free or alike.
 */
export function stealSuitableFallback(zone: FreeArea, i: number, startType: number, wholeBlock: boolean): void {
  const currentOrder = zone.order[i]!;
  const oldBlockType = zone.pageblockType[i >>> PAGEBLOCK_ORDER]!;
  // Take ownership for orders >= pageblock_order (change_pageblock_range()).
  if (currentOrder >= PAGEBLOCK_ORDER) {
    for (let b = i; b < i + (1 << currentOrder); b += 1 << PAGEBLOCK_ORDER) zone.setPageblockType(b, startType);
    zone.moveToFreeList(i, currentOrder, startType);
    return;
  }
  // (boost_watermark() is page-alloc.ts's: it sees the event through the zone's extfrag counts.)
  if (!wholeBlock) {
    zone.moveToFreeList(i, currentOrder, startType);
    return;
  }
  const freePages = moveFreepagesBlock(zone, i, startType);
  const movablePages = zone.movablePassed;
  // Moving the whole block fails at a zone boundary: then only this page moves.
  if (freePages === 0) {
    zone.moveToFreeList(i, currentOrder, startType);
    return;
  }
  // How many allocated pages are compatible with the allocation: for MOVABLE, the movable ones; for the others,
  // falling back from a MOVABLE pageblock, every page that is not movable; between UNMOVABLE and RECLAIMABLE
  // nothing can be told apart, so none.
  let alike: number;
  if (startType === MIGRATETYPE.MOVABLE) alike = movablePages;
  else if (oldBlockType === MIGRATETYPE.MOVABLE) alike = (1 << PAGEBLOCK_ORDER) - (freePages + movablePages);
  else alike = 0;
  if (freePages + alike >= 1 << (PAGEBLOCK_ORDER - 1)) zone.setPageblockType(i, startType);
}

/**
 * __rmqueue_fallback(zone, order, start_migratetype, alloc_flags): moves a block of another type to
 * `startType`'s lists (so that __rmqueue_smallest() finds it) and counts the extfrag event. Returns whether one
 * was found.
 */
export function rmqueueFallback(zone: FreeArea, order: number, startType: number, allocFlags: number): boolean {
  // Do not steal from other pageblocks' lists below pageblock_order with ALLOC_NOFRAGMENT.
  const minOrder = order < PAGEBLOCK_ORDER && (allocFlags & ALLOC.NOFRAGMENT) !== 0 ? PAGEBLOCK_ORDER : order;
  let current = -1;
  let found = NO_FALLBACK;
  // The largest free block of another type: it roughly approximates the pageblock with the most free pages.
  for (let o = MAX_ORDER; o >= minOrder; o--) {
    const f = findSuitableFallback(zone, o, startType, false);
    if (f === NO_FALLBACK) continue;
    current = o;
    found = f;
    break;
  }
  if (found === NO_FALLBACK) return false;
  // find_smallest: a MOVABLE request that cannot claim the pageblock splits the smallest block instead, so the next
  // movable allocation falling back elsewhere causes no lasting fragmentation.
  if ((found & CAN_STEAL) === 0 && startType === MIGRATETYPE.MOVABLE && current > order) {
    for (let o = order; o <= MAX_ORDER; o++) {
      const f = findSuitableFallback(zone, o, startType, false);
      if (f === NO_FALLBACK) continue;
      current = o;
      found = f;
      break;
    }
  }
  const fallbackType = found & ~CAN_STEAL;
  const i = zone.firstFree(current, fallbackType);
  stealSuitableFallback(zone, i, startType, (found & CAN_STEAL) !== 0);
  // trace_mm_page_alloc_extfrag(page, order, current_order, start_migratetype, fallback_mt).
  const e = zone.extfrag;
  e.events++;
  if (current < PAGEBLOCK_ORDER) e.fragmenting++;
  if (zone.pageblockType[i >>> PAGEBLOCK_ORDER] === startType) e.changeOwnership++;
  return true;
}

/**
 * __rmqueue(zone, order, migratetype, alloc_flags): the smallest block of the request's own type, else a fallback
 * and a retry. Returns the block's index (pfn - firstPfn), or -1.
 */
export function rmqueue(zone: FreeArea, order: number, type: number, allocFlags: number): number {
  for (;;) {
    const i = zone.rmqueueSmallest(order, type);
    if (i >= 0) return i;
    if (!rmqueueFallback(zone, order, type, allocFlags)) return -1;
  }
}
