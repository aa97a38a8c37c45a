import { requireInteger } from '../mmu/input-error.ts';
import type { FreeArea } from './free-area.ts';
import { MAX_ORDER, MIGRATE_TYPES } from './mmzone.ts';

// What the zone's free area says about fragmentation (mm/vmstat.c, Linux 6.6): /proc/buddyinfo and
// /proc/pagetypeinfo's free blocks per order, and the fragmentation index compaction_suitable() consults.

/** Free blocks per order: all migratetypes, and per migratetype (/proc/buddyinfo, /proc/pagetypeinfo). */
export interface BuddyInfo {
  readonly free: readonly number[];
  readonly byType: readonly (readonly number[])[];
  readonly freePages: number;
}

export function buddyinfo(zone: FreeArea): BuddyInfo {
  const free: number[] = [];
  const byType: number[][] = [[], [], []];
  for (let o = 0; o <= MAX_ORDER; o++) {
    let all = 0;
    for (let t = 0; t < MIGRATE_TYPES; t++) {
      const n = zone.freeCount(o, t);
      byType[t]!.push(n);
      all += n;
    }
    free.push(all);
  }
  return { free, byType, freePages: zone.freePages };
}

/**
 * __fragmentation_index(), times 1000: 0 when no block is free, -1000 when a block of `order` or larger is free,
 * else 1000 - (1000 + free_pages * 1000 / 2^order) / free_blocks: near 0 the allocation fails for lack of memory,
 * near 1000 for fragmentation.
 */
export function fragmentationIndex(zone: FreeArea, order: number): number {
  requireInteger(order, 'fragmentation index order', 0, MAX_ORDER);
  let blocks = 0;
  let suitable = 0;
  for (let o = 0; o <= MAX_ORDER; o++) {
    const n = zone.nrFree(o);
    blocks += n;
    if (o >= order) suitable += n;
  }
  if (blocks === 0) return 0;
  if (suitable > 0) return -1000;
  return 1000 - Math.floor((1000 + Math.floor((zone.freePages * 1000) / 2 ** order)) / blocks);
}

/** Whether the frame at `pfn` is inside a free block on the buddy lists. */
export function frameIsFree(zone: FreeArea, pfn: number): boolean {
  const i = pfn - zone.firstPfn;
  for (let o = 0; o <= MAX_ORDER; o++) {
    const head = i - (pfn % (1 << o));
    if (head < 0) break;
    if (zone.free[head] === 1 && zone.order[head]! >= o) return true;
  }
  return false;
}
