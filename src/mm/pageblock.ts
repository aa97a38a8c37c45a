import type { FreeArea } from './free-area.ts';
import { MIGRATETYPE, PAGEBLOCK_ORDER } from './mmzone.ts';

// Operations on a whole pageblock of the zone's free area (mm/page_alloc.c, Linux 6.6): move_freepages_block(),
// which a fallback uses to claim a pageblock, and __isolate_free_page(), compaction's free scanner's. Bookkeeping
// under the zone lock.

/**
 * move_freepages_block(): every free block in `i`'s pageblock moves to the tail of `type`'s lists. Returns the free
 * pages moved; `zone.movablePassed` holds how many allocated pages it passed that are movable (PageLRU or
 * __PageMovable, by owner), as *num_movable. A pageblock past the zone's end is not moved ("Do not cross zone
 * boundaries").
 */
export function moveFreepagesBlock(zone: FreeArea, i: number, type: number): number {
  const start = i - (i % (1 << PAGEBLOCK_ORDER));
  const end = start + (1 << PAGEBLOCK_ORDER);
  let moved = 0;
  let movable = 0;
  if (end > zone.frames) {
    zone.movablePassed = 0;
    return 0;
  }
  for (let f = start; f < end; ) {
    if (zone.free[f] === 1) {
      const o = zone.order[f]!;
      zone.moveToFreeList(f, o, type);
      moved += 1 << o;
      f += 1 << o;
      continue;
    }
    if (zone.isMovableFrame(f)) movable++;
    f++;
  }
  zone.movablePassed = movable;
  return moved;
}

/**
 * __isolate_free_page() without its watermark check (the caller makes it): the free block headed at index `i`
 * leaves the lists as 2^order allocated order-0 frames held by `owner` (split_map_pages()). A block of half a
 * pageblock or more makes its pageblocks MOVABLE. Returns the order, or -1 when no free block starts at `i`.
 */
export function isolateFreePage(zone: FreeArea, i: number, owner: number): number {
  if (i < 0 || i >= zone.frames || zone.free[i] !== 1) return -1;
  const order = zone.takeFree(i);
  if (order >= PAGEBLOCK_ORDER - 1) {
    for (let b = i; b < i + (1 << order); b += 1 << PAGEBLOCK_ORDER) zone.setPageblockType(b, MIGRATETYPE.MOVABLE);
  }
  for (let f = i; f < i + (1 << order); f++) {
    zone.order[f] = 0;
    zone.owner[f] = owner;
    zone.migratetype[f] = zone.pageblockType[f >>> PAGEBLOCK_ORDER]!;
  }
  zone.changed(i, 1 << order);
  return order;
}
