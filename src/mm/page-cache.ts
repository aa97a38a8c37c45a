import { MIGRATETYPE } from './buddy.ts';
import { type Kernel, OWNER } from './kernel.ts';
import { LRU } from './lru.ts';

// LRU pages: file pages (the page cache: movable and reclaimable) and anonymous pages (movable; with no swap in
// the model, not reclaimable), each tracked by an id, as a file offset or an anonymous page's address would be.
// Each kind is a list oldest first (lru.ts): reclaim takes from the old end (mm/vmscan.c shrinks the inactive
// list from its tail). Compaction takes a page off its LRU while migrating it
// (isolate_lru_page()) and puts it back at the new frame (putback_lru_page()); a page dropped while isolated is
// freed when it is put back. Bookkeeping: call these inside a step under the zone lock.

const kindOf = (anon: boolean) => (anon ? LRU.ANON : LRU.FILE);

/**
 * A page-cache page for file page `id`, straight from the buddy lists (no per-CPU list, no watermark): for tests
 * and benchmarks that fill a zone by hand. Returns its pfn, or -1 when the zone has none.
 */
export function addPageCachePage(kernel: Kernel, id: number): number {
  const pfn = kernel.zone.alloc(0, MIGRATETYPE.MOVABLE, OWNER.PAGE_CACHE);
  if (pfn >= 0) registerLruPage(kernel, pfn, id, false);
  return pfn;
}

/** Drops file page `id` from the page cache and frees its frame straight to the buddy lists (tests). */
export function removePageCachePage(kernel: Kernel, id: number): void {
  const pfn = kernel.lru.pfnOf(id, LRU.FILE);
  kernel.lru.remove(pfn);
  kernel.zone.freeBlock(pfn, 0);
}

/** Puts the allocated frame `pfn` on the file (or anonymous) LRU as page `id`, newest. */
export function registerLruPage(kernel: Kernel, pfn: number, id: number, anon: boolean): void {
  kernel.lru.add(pfn, id, kindOf(anon));
}

/**
 * The page's owner drops page `id` (a truncated file page, an unmapped anonymous page): freed on CPU `cpu`, or,
 * while compaction has it isolated, when it is put back. Returns whether the page existed.
 */
export function dropLruPage(kernel: Kernel, cpu: number, id: number, anon: boolean): boolean {
  const pfn = kernel.lru.drop(id, kindOf(anon));
  if (pfn === -1) return false; // reclaimed already
  if (pfn >= 0) kernel.pages.free(cpu, pfn, 0);
  return true; // freed, or freed when compaction puts it back
}

/** isolate_lru_page(): takes the LRU page at `pfn` off its list for migration. Returns whether it was one. */
export function isolateLruPage(kernel: Kernel, pfn: number): boolean {
  return kernel.lru.isolate(pfn) !== LRU.NONE;
}

/** Whether the isolated LRU page at `pfn` is anonymous. */
export function isolatedAnon(kernel: Kernel, pfn: number): boolean {
  return kernel.lru.kindOf(pfn) % 4 === LRU.ANON;
}

/**
 * putback_lru_page() after a migration attempt: the page isolated at `oldPfn` is now at `newPfn` (or still at
 * `oldPfn` when the move failed) and goes back on its LRU as the newest; a page dropped meanwhile is freed instead.
 */
export function putbackLruPage(kernel: Kernel, cpu: number, oldPfn: number, newPfn: number): void {
  if (!kernel.lru.putback(oldPfn, newPfn)) kernel.pages.free(cpu, newPfn, 0);
}
