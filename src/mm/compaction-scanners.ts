import { type Kernel, OWNER } from './kernel.ts';
import { MIGRATETYPE, PAGEBLOCK_ORDER } from './mmzone.ts';
import { isolateLruPage } from './page-cache.ts';
import { isolateFreePage } from './pageblock.ts';

// Compaction's two scanners (mm/compaction.c, Linux 6.6): the migrate scanner walks the zone's pageblocks upward
// from its start and isolates the movable pages of a suitable source block (isolate_migratepages(),
// isolate_migratepages_block()); the free scanner walks downward from the zone's end and isolates the free pages of
// a suitable target block (isolate_freepages(), isolate_freepages_block()). A block where a whole scan isolated
// nothing gets its skip bit (update_pageblock_skip()) and is passed over until the bits are reset. Each
// isolate_*_block() call is one step under the zone lock. Not modelled: the fast searches of the free lists
// (fast_isolate_freepages(), fast_find_migrateblock()), the async stride, lock contention.

/** COMPACT_CLUSTER_MAX (SWAP_CLUSTER_MAX): pages isolated per migration batch. */
export const COMPACT_CLUSTER_MAX = 32;
const BLOCK = 1 << PAGEBLOCK_ORDER;

/** struct compact_control: one compaction run's state. */
export interface CompactControl {
  /** The order to make free, or -1 for the whole zone (/proc/sys/vm/compact_memory). */
  readonly order: number;
  /** MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT or MIGRATE_SYNC. */
  readonly mode: 'async' | 'sync-light' | 'sync';
  /** Direct compaction (for a failing allocation) rather than kcompactd or compact_memory. */
  readonly direct: boolean;
  /** The migratetype the allocation wants (gfp_migratetype(cc->gfp_mask)). */
  readonly migratetype: number;
  wholeZone: boolean;
  readonly ignoreSkipHint: boolean;
  readonly ignoreBlockSuitable: boolean;
  /** Whether vmalloc pages are candidates (migratable vmalloc, or a caller naming a protocol). */
  readonly vmallocMovable: boolean;
  migratePfn: number;
  freePfn: number;
  /** Isolated pages to migrate: pfns (LRU pages are in kernel.isolated; vmalloc pages are named by address). */
  readonly migratepages: { pfn: number; va: number }[];
  /** Isolated free order-0 frames, targets. */
  readonly freepages: number[];
  totalMigrateScanned: number;
  totalFreeScanned: number;
}

/** compact_scanners_met(): the free scanner is at or below the migrate scanner's pageblock. */
export function scannersMet(cc: CompactControl): boolean {
  return Math.floor(cc.freePfn / BLOCK) <= Math.floor(cc.migratePfn / BLOCK);
}

/**
 * suitable_migration_source(): sync compaction and kcompactd take any block; async direct compaction only blocks
 * of the allocation's type (any movable one for a MOVABLE request), so a quick attempt does not mix types.
 */
export function suitableMigrationSource(kernel: Kernel, cc: CompactControl, i: number): boolean {
  if (cc.mode !== 'async' || !cc.direct) return true;
  const blockType = kernel.zone.pageblockType[i >>> PAGEBLOCK_ORDER]!;
  if (cc.migratetype === MIGRATETYPE.MOVABLE) return blockType === MIGRATETYPE.MOVABLE;
  return blockType === cc.migratetype;
}

/**
 * suitable_migration_target(): a block whose first page is a free block of a pageblock or more is never split up
 * for targets; otherwise only MOVABLE blocks receive migrated pages (unless the priority ignores block types).
 */
export function suitableMigrationTarget(kernel: Kernel, cc: CompactControl, i: number): boolean {
  const zone = kernel.zone;
  if (zone.free[i] === 1 && zone.order[i]! >= PAGEBLOCK_ORDER) return false;
  if (cc.ignoreBlockSuitable) return true;
  return zone.pageblockType[i >>> PAGEBLOCK_ORDER] === MIGRATETYPE.MOVABLE;
}

/**
 * isolate_migratepages(): from the migrate scanner's position, the first pageblock that is not skipped and is a
 * suitable source, up to the free scanner; its movable pages are isolated from the scanner's position on, up to
 * COMPACT_CLUSTER_MAX. Returns the pages isolated (0: none, continue scanning). One zone-lock step.
 */
export function isolateMigratepages(kernel: Kernel, cc: CompactControl): number {
  const zone = kernel.zone;
  const first = zone.firstPfn;
  let low = cc.migratePfn;
  let blockEnd = low - (low % BLOCK) + BLOCK;
  for (; blockEnd <= cc.freePfn; cc.migratePfn = low = blockEnd, blockEnd += BLOCK) {
    const start = low - first;
    const aligned = low % BLOCK === 0 || low === first;
    if (aligned && !cc.ignoreSkipHint && zone.pageblockSkip[start >>> PAGEBLOCK_ORDER] === 1) continue;
    if (!suitableMigrationSource(kernel, cc, start)) {
      updateCachedMigrate(kernel, cc, blockEnd);
      continue;
    }
    isolateMigratepagesBlock(kernel, cc, low, blockEnd);
    break;
  }
  return cc.migratepages.length;
}

/** update_cached_migrate(): async compaction remembers to skip blocks it found unsuitable. */
function updateCachedMigrate(kernel: Kernel, cc: CompactControl, pfn: number): void {
  const c = kernel.pages.compaction;
  if (cc.ignoreSkipHint) return;
  if (pfn > c.cachedMigratePfn[0]) c.cachedMigratePfn[0] = pfn;
  if (cc.mode !== 'async' && pfn > c.cachedMigratePfn[1]) c.cachedMigratePfn[1] = pfn;
}

/** isolate_migratepages_block(): movable pages of [low, end), stopping at COMPACT_CLUSTER_MAX. */
function isolateMigratepagesBlock(kernel: Kernel, cc: CompactControl, low: number, end: number): void {
  const zone = kernel.zone;
  const first = zone.firstPfn;
  let pfn = low;
  let isolated = 0;
  while (pfn < end) {
    const i = pfn - first;
    cc.totalMigrateScanned++;
    if (zone.free[i] === 1) {
      pfn += 1 << zone.order[i]!; // a free block: skip it whole
      continue;
    }
    const owner = zone.owner[i]!;
    if (zone.order[i]! > 0) {
      pfn += 1 << zone.order[i]!; // a compound page (a THP, a slab): compaction skips it whole
      cc.totalMigrateScanned += (1 << zone.order[i]!) - 1;
      continue;
    }
    if (zone.order[i] === 0 && (owner === OWNER.PAGE_CACHE || owner === OWNER.ANON)) {
      if (isolateLruPage(kernel, pfn)) {
        cc.migratepages.push({ pfn, va: -1 });
        isolated++;
      }
    } else if (owner === OWNER.VMALLOC && cc.vmallocMovable) {
      const va = kernel.vmallocPages.get(pfn);
      if (va !== undefined) {
        cc.migratepages.push({ pfn, va });
        isolated++;
      }
    }
    pfn++;
    if (cc.migratepages.length >= COMPACT_CLUSTER_MAX) break;
  }
  if (pfn > end) pfn = end;
  // The whole block scanned and nothing isolated: skip it next time.
  if (pfn === end && isolated === 0 && low % BLOCK === 0) setSkip(kernel, cc, low, true);
  cc.migratePfn = pfn;
}

/** update_pageblock_skip(). */
function setSkip(kernel: Kernel, cc: CompactControl, pfn: number, migrateScanner: boolean): void {
  if (cc.ignoreSkipHint) return;
  const zone = kernel.zone;
  zone.writable();
  zone.pageblockSkip[(pfn - zone.firstPfn) >>> PAGEBLOCK_ORDER] = 1;
  const c = kernel.pages.compaction;
  if (migrateScanner) {
    if (pfn > c.cachedMigratePfn[0]) c.cachedMigratePfn[0] = pfn;
    if (cc.mode !== 'async' && pfn > c.cachedMigratePfn[1]) c.cachedMigratePfn[1] = pfn;
  } else if (pfn < c.cachedFreePfn) c.cachedFreePfn = pfn;
}

/**
 * isolate_freepages(): from the free scanner's position down to the migrate scanner's next pageblock, the free
 * pages of suitable target blocks, until there are as many as pages to migrate. Each free block is split into
 * order-0 targets (split_map_pages()); isolation stops when it would take the zone below its min watermark
 * (__isolate_free_page()). One zone-lock step.
 */
export function isolateFreepages(kernel: Kernel, cc: CompactControl): void {
  const zone = kernel.zone;
  const first = zone.firstPfn;
  const zoneEnd = first + zone.frames;
  let isolateStart = cc.freePfn;
  let blockStart = isolateStart - (isolateStart % BLOCK);
  let blockEnd = Math.min(blockStart + BLOCK, zoneEnd);
  const lowPfn = cc.migratePfn - (cc.migratePfn % BLOCK) + BLOCK; // pageblock_end_pfn(migrate_pfn)
  for (; blockStart >= lowPfn; blockEnd = blockStart, blockStart -= BLOCK, isolateStart = blockStart) {
    const i = blockStart - first;
    if (!suitableMigrationTarget(kernel, cc, i)) continue;
    if (!cc.ignoreSkipHint && zone.pageblockSkip[i >>> PAGEBLOCK_ORDER] === 1) continue;
    let pfn = Math.max(isolateStart, blockStart);
    let isolated = 0;
    let aborted = false;
    while (pfn < blockEnd) {
      const f = pfn - first;
      cc.totalFreeScanned++;
      if (zone.free[f] !== 1) {
        pfn++;
        continue;
      }
      const order = zone.order[f]!;
      if (!kernel.pages.isolationAllowed(order)) {
        aborted = true;
        break;
      }
      isolateFreePage(zone, f, OWNER.COMPACTION);
      for (let k = 0; k < 1 << order; k++) cc.freepages.push(pfn + k);
      kernel.pages.vmstat.compactIsolated += 1 << order;
      isolated += 1 << order;
      pfn += 1 << order;
      if (cc.migratepages.length <= cc.freepages.length) break;
    }
    isolateStart = Math.min(pfn, blockEnd);
    if (isolateStart === blockEnd && isolated === 0) setSkip(kernel, cc, blockStart, false);
    if (cc.freepages.length >= cc.migratepages.length) {
      // Restart at the previous pageblock next time if this one was used up.
      if (isolateStart >= blockEnd) isolateStart = blockStart - BLOCK;
      break;
    }
    if (aborted || isolateStart < blockEnd) break;
  }
  cc.freePfn = isolateStart;
}
