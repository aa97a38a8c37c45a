import { MIGRATETYPE } from './buddy.ts';
import { type Kernel, OWNER } from './kernel.ts';

// Page-cache-like pages: MOVABLE order-0 frames the kernel tracks by a file-page id, so that compaction can move
// them (it copies the frame and updates the registry). Bookkeeping: call these inside a step under the zone lock.

/** A page-cache page for file page `id`: its pfn, or -1 when the zone has none. */
export function addPageCachePage(kernel: Kernel, id: number): number {
  const pfn = kernel.zone.alloc(0, MIGRATETYPE.MOVABLE, OWNER.PAGE_CACHE);
  if (pfn >= 0) {
    kernel.pageCache.set(pfn, id);
    kernel.pageCacheById.set(id, pfn);
  }
  return pfn;
}

/** Drops file page `id` from the page cache and frees its frame (wherever compaction has moved it). */
export function removePageCachePage(kernel: Kernel, id: number): void {
  const pfn = kernel.pageCacheById.get(id)!;
  kernel.pageCacheById.delete(id);
  kernel.pageCache.delete(pfn);
  kernel.zone.freeBlock(pfn, 0);
}
