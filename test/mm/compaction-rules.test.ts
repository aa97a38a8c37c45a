import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/machine/machine.ts';
import { MIGRATETYPE, PAGEBLOCK_ORDER } from '../../src/mm/buddy.ts';
import {
  COMPACT_MAX_DEFER_SHIFT,
  CompactionState,
  compactionSuitable,
  EXTFRAG_THRESHOLD,
  suitablePageFree,
} from '../../src/mm/compaction-control.ts';
import {
  type CompactControl,
  isolateFreepages,
  isolateMigratepages,
  scannersMet,
  suitableMigrationSource,
  suitableMigrationTarget,
} from '../../src/mm/compaction-scanners.ts';
import { type Kernel, OWNER } from '../../src/mm/kernel.ts';
import { LRU } from '../../src/mm/lru.ts';
import { registerLruPage } from '../../src/mm/page-cache.ts';

// The rules of mm/compaction.c (Linux 6.6) on small hand-made zones: which pageblocks the scanners take, when they
// meet, when compaction is worth running, and how failures defer it.

const MiB = 1024 * 1024;
const BLOCK = 1 << PAGEBLOCK_ORDER;

/** A 16 MiB machine's kernel: a zone of 8 MiB, four pageblocks; every frame allocated to `owner` at first. */
function fullKernel(owner: number = OWNER.SLAB): Kernel {
  const m = Machine.create({ cpus: 1, trace: false, memory: 16 * MiB, kernel: {} });
  const kernel = m.kernel!;
  const zone = kernel.zone;
  for (;;) if (zone.alloc(0, MIGRATETYPE.MOVABLE, owner) < 0) break;
  return kernel;
}

function control(kernel: Kernel, over: Partial<CompactControl> = {}): CompactControl {
  const c = kernel.pages.compaction;
  return {
    order: 9,
    mode: 'sync-light',
    direct: true,
    migratetype: MIGRATETYPE.MOVABLE,
    wholeZone: true,
    ignoreSkipHint: false,
    ignoreBlockSuitable: false,
    vmallocMovable: false,
    migratePfn: c.initMigratePfn,
    freePfn: c.initFreePfn,
    migratepages: [],
    freepages: [],
    totalMigrateScanned: 0,
    totalFreeScanned: 0,
    ...over,
  };
}

describe('suitable_migration_source and suitable_migration_target', () => {
  it('async direct compaction for a MOVABLE request takes only MOVABLE pageblocks; sync takes any', () => {
    const kernel = fullKernel();
    const zone = kernel.zone;
    zone.setPageblockType(0, MIGRATETYPE.UNMOVABLE);
    const async = control(kernel, { mode: 'async' });
    expect(suitableMigrationSource(kernel, async, 0)).toBe(false);
    expect(suitableMigrationSource(kernel, async, BLOCK)).toBe(true);
    expect(suitableMigrationSource(kernel, control(kernel), 0)).toBe(true);
    expect(suitableMigrationSource(kernel, control(kernel, { mode: 'async', direct: false }), 0)).toBe(true);
  });

  it('async direct compaction for an UNMOVABLE request takes only pageblocks of its own type', () => {
    const kernel = fullKernel();
    kernel.zone.setPageblockType(0, MIGRATETYPE.UNMOVABLE);
    const cc = control(kernel, { mode: 'async', migratetype: MIGRATETYPE.UNMOVABLE });
    expect(suitableMigrationSource(kernel, cc, 0)).toBe(true);
    expect(suitableMigrationSource(kernel, cc, BLOCK)).toBe(false);
  });

  it('only MOVABLE pageblocks receive migrated pages, and a wholly free pageblock is never split for targets', () => {
    const kernel = fullKernel();
    const zone = kernel.zone;
    const first = zone.firstPfn;
    zone.setPageblockType(0, MIGRATETYPE.UNMOVABLE);
    expect(suitableMigrationTarget(kernel, control(kernel), 0)).toBe(false);
    expect(suitableMigrationTarget(kernel, control(kernel, { ignoreBlockSuitable: true }), 0)).toBe(true);
    expect(suitableMigrationTarget(kernel, control(kernel), BLOCK)).toBe(true);
    for (let f = 2 * BLOCK; f < 3 * BLOCK; f++) zone.freeBlock(first + f, 0); // pageblock 2: one free order-9 block
    expect(suitableMigrationTarget(kernel, control(kernel, { ignoreBlockSuitable: true }), 2 * BLOCK)).toBe(false);
  });
});

describe('the scanners', () => {
  it('the migrate scanner isolates the LRU pages of the first suitable pageblock, COMPACT_CLUSTER_MAX at most', () => {
    const kernel = fullKernel(OWNER.PAGE_CACHE);
    const first = kernel.zone.firstPfn;
    for (let f = 16; f < BLOCK; f++) registerLruPage(kernel, first + f, f, false); // the SMP area is below 16
    const cc = control(kernel, { ignoreSkipHint: true });
    expect(isolateMigratepages(kernel, cc)).toBe(32);
    expect(cc.migratepages.map((p) => p.pfn)).toEqual(Array.from({ length: 32 }, (_, k) => first + 16 + k));
    expect(kernel.lru.isolated(first + 16)).toBe(true);
    expect(kernel.lru.size(LRU.FILE)).toBe(BLOCK - 16 - 32);
    expect(cc.migratePfn).toBe(first + 48); // it goes on from there next time
  });

  it('a pageblock where a whole scan isolated nothing gets its skip bit, and is passed over next time', () => {
    const kernel = fullKernel(OWNER.SLAB);
    const zone = kernel.zone;
    const cc = control(kernel);
    expect(isolateMigratepages(kernel, cc)).toBe(0);
    expect(zone.pageblockSkip[0]).toBe(1);
    const again = control(kernel);
    isolateMigratepages(kernel, again);
    expect(again.totalMigrateScanned).toBeLessThanOrEqual(BLOCK); // pageblock 0 skipped, pageblock 1 scanned
    expect(zone.pageblockSkip[1]).toBe(1);
    kernel.pages.compaction.resetIsolationSuitable();
    expect([...zone.pageblockSkip]).toEqual([0, 0, 0, 0]);
  });

  it('the free scanner takes free pages from the top, down to the migrate scanner, as order-0 targets', () => {
    const kernel = fullKernel();
    const zone = kernel.zone;
    const first = zone.firstPfn;
    // 200 free pages in the top block (isolation keeps the zone above its min watermark, 90 pages here).
    for (let f = 3 * BLOCK; f < 3 * BLOCK + 400; f += 2) zone.freeBlock(first + f, 0);
    const cc = control(kernel, { migratepages: Array.from({ length: 8 }, () => ({ pfn: 0, va: -1 })) });
    isolateFreepages(kernel, cc);
    expect(cc.freepages).toHaveLength(8); // as many as pages to migrate
    expect(Math.min(...cc.freepages)).toBeGreaterThanOrEqual(first + 3 * BLOCK);
    for (const t of cc.freepages) expect(zone.ownerOf(t)).toBe(OWNER.COMPACTION);
  });

  it("the scanners meet when the free scanner reaches the migrate scanner's pageblock", () => {
    const kernel = fullKernel();
    const first = kernel.zone.firstPfn;
    const cc = control(kernel, { migratePfn: first + BLOCK + 5, freePfn: first + 2 * BLOCK });
    expect(scannersMet(cc)).toBe(false);
    cc.freePfn = first + BLOCK + 300;
    expect(scannersMet(cc)).toBe(true);
    // With no targets above it, isolate_freepages() runs into the migrate scanner: they have met.
    const empty = control(kernel, { migratePfn: first + BLOCK, migratepages: [{ pfn: 0, va: -1 }] });
    isolateFreepages(kernel, empty);
    expect(empty.freepages).toEqual([]);
    expect(scannersMet(empty)).toBe(true);
  });
});

describe('compaction_suitable, __compact_finished and deferral', () => {
  it('a costly order is not compacted when its fragmentation index is 0..extfrag_threshold (a lack of memory)', () => {
    const m = Machine.create({ cpus: 1, trace: false, memory: 64 * MiB, kernel: {} });
    const pages = m.kernel!.pages;
    const zone = pages.zone;
    // Take everything; give back every other page of the first half: plenty of free pages, none above order 0.
    const all: number[] = [];
    for (;;) {
      const p = zone.alloc(0, MIGRATETYPE.MOVABLE, OWNER.OTHER);
      if (p < 0) break;
      all.push(p);
    }
    for (let k = 0; k < all.length / 2; k += 2) zone.freeBlock(all[k]!, 0);
    expect(zone.fragmentationIndex(9)).toBeGreaterThan(EXTFRAG_THRESHOLD);
    expect(compactionSuitable(pages, 9)).toBe(true);
    // Free pages in order-8 blocks instead: index (1000 - (1000 + free*1000/512)/blocks) is small: not suitable.
    const m2 = Machine.create({ cpus: 1, trace: false, memory: 64 * MiB, kernel: {} });
    const z2 = m2.kernel!.zone;
    const held: number[] = [];
    for (;;) {
      const p = z2.alloc(8, MIGRATETYPE.MOVABLE, OWNER.OTHER);
      if (p < 0) break;
      held.push(p);
    }
    while (z2.alloc(0, MIGRATETYPE.MOVABLE, OWNER.OTHER) >= 0); // the small blocks left: gone
    for (let k = 0; k < held.length; k += 2) z2.freeBlock(held[k]!, 8); // free pages only in order-8 blocks
    const index = z2.fragmentationIndex(9);
    expect(index).toBeGreaterThanOrEqual(0);
    expect(index).toBeLessThanOrEqual(EXTFRAG_THRESHOLD);
    expect(compactionSuitable(m2.kernel!.pages, 9)).toBe(false);
    expect(compactionSuitable(m2.kernel!.pages, 3)).toBe(true); // not costly: the index is not consulted
  });

  it('a direct compactor is done once a block of its order is free for its type, or one it could claim whole', () => {
    const kernel = fullKernel();
    const zone = kernel.zone;
    const first = zone.firstPfn;
    expect(suitablePageFree(zone, 9, MIGRATETYPE.MOVABLE)).toBe(false);
    zone.setPageblockType(BLOCK, MIGRATETYPE.UNMOVABLE);
    for (let f = BLOCK; f < 2 * BLOCK; f++) zone.freeBlock(first + f, 0);
    // An order-9 block on UNMOVABLE's list: a MOVABLE request can claim a whole pageblock, so it is done.
    expect(suitablePageFree(zone, 9, MIGRATETYPE.MOVABLE)).toBe(true);
  });

  it('after a failure, compaction at that order is skipped 1, 2, 4 ... up to 64 times (defer_compaction)', () => {
    const kernel = fullKernel();
    const c = new CompactionState(kernel.zone);
    expect(c.deferred(9)).toBe(false);
    const skippedAfter = (failures: number) => {
      for (let i = 0; i < failures; i++) c.defer(9);
      let skipped = 0;
      while (c.deferred(9)) skipped++;
      return skipped;
    };
    expect(skippedAfter(1)).toBe(1); // defer shift 1: limit 2, the first of two considered is skipped
    expect(skippedAfter(1)).toBe(3);
    expect(skippedAfter(1)).toBe(7);
    expect(skippedAfter(10)).toBe((1 << COMPACT_MAX_DEFER_SHIFT) - 1);
    expect(c.restarting(9)).toBe(true);
    // Lower orders than the one that failed are never deferred; a success resets it all.
    expect(c.deferred(3)).toBe(false);
    c.deferReset(9, true);
    expect(c.deferred(9)).toBe(false);
    expect(c.restarting(9)).toBe(false);
  });
});
