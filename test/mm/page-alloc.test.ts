import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BuddyAllocator, MIGRATETYPE, PAGEBLOCK_ORDER } from '../../src/mm/buddy.ts';
import { ALLOC, GFP, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_NOWAIT } from '../../src/mm/gfp.ts';
import { PageAllocator } from '../../src/mm/page-alloc.ts';
import {
  minFreeKbytes,
  zoneBatchsize,
  zoneHighsize,
  zoneWatermarkOk,
  zoneWatermarks,
} from '../../src/mm/watermarks.ts';

// Per-CPU lists, watermarks and the fast path of mm/page_alloc.c (Linux 6.6) on small zones.

const GiB = 262144; // pages

function allocator(frames: number, cpus = 2): PageAllocator {
  return new PageAllocator(new BuddyAllocator(0, frames), { cpus });
}

describe('zone watermarks and per-CPU list sizes', () => {
  it('min_free_kbytes is sqrt(16 x lowmem KiB), clamped to 128 KiB .. 256 MiB', () => {
    expect(minFreeKbytes(GiB)).toBe(4096);
    expect(minFreeKbytes(4 * GiB)).toBe(8192);
    expect(minFreeKbytes(64)).toBe(128);
  });

  it('the watermarks of a 1 GiB zone: min 1024 pages, low and high 262 apart (0.1% of the zone)', () => {
    expect(zoneWatermarks(GiB)).toEqual({ min: 1024, low: 1286, high: 1548, boost: 0 });
  });

  it('batch is 63 for a zone of 1 GiB or more, and high is the low watermark split across CPUs', () => {
    expect(zoneBatchsize(GiB)).toBe(63);
    expect(zoneBatchsize(4 * GiB)).toBe(63);
    expect(zoneBatchsize(4096)).toBe(0); // zone_set_pageset_high_and_batch() makes it at least 1
    expect(zoneHighsize(1286, 63, 2)).toBe(643);
    expect(zoneHighsize(100, 63, 2)).toBe(252); // at least four batches
  });

  it('an order-0 check passes only above the mark plus the pages taken; __GFP_HIGH may use half the reserve', () => {
    const zone = new BuddyAllocator(0, 1024);
    expect(zoneWatermarkOk(zone, 0, 1023, 0)).toBe(true);
    expect(zoneWatermarkOk(zone, 0, 1024, 0)).toBe(false);
    expect(zoneWatermarkOk(zone, 0, 2000, 0)).toBe(false);
    expect(zoneWatermarkOk(zone, 0, 2000, ALLOC.MIN_RESERVE)).toBe(true); // 2000 - 1000 = 1000 < 1024
  });

  it('a high-order check also needs a free block of that order or larger', () => {
    const zone = new BuddyAllocator(0, 2048);
    expect(zoneWatermarkOk(zone, 9, 100, 0)).toBe(true);
    // Every other frame free: 1024 free pages, all order 0.
    for (let f = 0; f < 2048; f++) zone.alloc(0, MIGRATETYPE.MOVABLE, 1);
    for (let f = 0; f < 2048; f += 2) zone.freeBlock(f, 0);
    expect(zoneWatermarkOk(zone, 0, 100, 0)).toBe(true);
    expect(zoneWatermarkOk(zone, 9, 100, 0)).toBe(false);
  });
});

describe('per-CPU page lists', () => {
  it('an empty list is refilled with batch pages in one go, and the allocation takes its head', () => {
    const pages = allocator(GiB);
    const batch = pages.pcp.batch;
    expect(batch).toBe(63);
    const before = pages.zone.freePages;
    const pfn = pages.allocFast(0, GFP_KERNEL, 0, 1);
    expect(pfn).toBeGreaterThanOrEqual(0);
    expect(pages.zone.freePages).toBe(before - batch);
    expect(pages.pcp.count(0)).toBe(batch - 1);
    expect(pages.pcp.count(1)).toBe(0);
    // The next allocation comes from the list: the zone is not touched.
    pages.allocFast(0, GFP_KERNEL, 0, 1);
    expect(pages.zone.freePages).toBe(before - batch);
  });

  it('a higher-order list is refilled with max(batch >> order, 2) blocks', () => {
    const pages = allocator(GiB);
    pages.allocFast(0, GFP_KERNEL, 3, 1);
    expect(pages.pcp.count(0)).toBe((Math.max(63 >> 3, 2) - 1) << 3);
  });

  it('frees go to the list until the CPU holds high pages; then a batch goes back to the zone', () => {
    const pages = allocator(GiB / 8);
    const { high, batch } = pages.pcp;
    const pfns = [];
    for (let i = 0; i < high + batch; i++) pfns.push(pages.allocFast(1, GFP_KERNEL, 0, 1));
    const held = pages.pcp.count(1);
    for (let i = 0; i < high - held - 1; i++) pages.free(1, pfns.pop()!, 0);
    expect(pages.pcp.count(1)).toBe(high - 1);
    pages.free(1, pfns.pop()!, 0); // reaches high: nr_pcp_free() gives back one batch
    expect(pages.pcp.count(1)).toBe(high - batch);
  });

  it('while frees keep coming without allocations, each drain doubles (free_factor)', () => {
    const pages = allocator(GiB / 8);
    const { high, batch } = pages.pcp;
    const pfns = [];
    for (let i = 0; i < 3 * high; i++) pfns.push(pages.allocFast(0, GFP_KERNEL, 0, 1));
    const counts: number[] = [];
    let last = pages.pcp.count(0);
    while (pfns.length > 0) {
      pages.free(0, pfns.pop()!, 0);
      const now = pages.pcp.count(0);
      if (now < last) counts.push(last + 1 - now);
      last = now;
    }
    expect(counts.slice(0, 3)).toEqual([batch, 2 * batch, 4 * batch].map((n) => Math.min(n, high - batch)));
  });

  it('draining a CPU returns its pages to the buddy lists, where they merge', () => {
    const pages = allocator(2048);
    const pfn = pages.allocFast(0, GFP_KERNEL, 0, 1);
    pages.free(0, pfn, 0);
    expect(pages.zone.freePages).toBeLessThan(2048);
    pages.pcp.drainAll(pages.zone);
    expect(pages.zone.freePages).toBe(2048);
    expect(pages.zone.buddyinfo().free[10]).toBe(2);
  });

  it('property: every frame is free on the buddy lists, on one CPU list, or owned, never two of these', () => {
    const op = fc.oneof(
      fc.record({ alloc: fc.nat(3), cpu: fc.nat(1), movable: fc.boolean() }),
      fc.record({ free: fc.nat(), cpu: fc.nat(1) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const pages = allocator(1024);
        const live: { pfn: number; order: number }[] = [];
        for (const o of ops) {
          if ('alloc' in o) {
            const gfp = o.movable ? GFP_HIGHUSER_MOVABLE : GFP_KERNEL;
            const pfn = pages.allocFast(o.cpu, gfp, o.alloc, 1);
            if (pfn >= 0) live.push({ pfn, order: o.alloc });
          } else if (live.length > 0) {
            const [b] = live.splice(o.free % live.length, 1);
            pages.free(o.cpu, b!.pfn, b!.order);
          }
        }
        const zone = pages.zone;
        let owned = 0;
        for (const b of live) owned += 1 << b.order;
        expect(zone.freePages + pages.pcp.total() + owned).toBe(zone.frames);
        for (let f = 0; f < zone.frames; f++) {
          const states = [zone.isFree(f), zone.owner[f] !== -1].filter(Boolean).length;
          expect(states).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe('the fast path', () => {
  it('uses the low watermark: an allocation that would leave the zone at low fails and needs the slow path', () => {
    const pages = allocator(GiB / 8);
    const low = pages.watermarks.low;
    let got = 0;
    while (pages.allocFast(0, GFP_NOWAIT, 0, 1) >= 0) got++;
    // It stops once free pages reach the low watermark (per-CPU pages held are not free).
    expect(pages.zone.freePages).toBeLessThanOrEqual(low + pages.pcp.batch);
    expect(got).toBeGreaterThan(0);
  });

  it('with ALLOC_NOFRAGMENT, a request first looks for a whole foreign pageblock, then falls back below one', () => {
    const pages = allocator(1 << 11);
    const zone = pages.zone;
    // Take everything as MOVABLE order-0, then free a small MOVABLE block and a whole MOVABLE pageblock.
    const all = [];
    for (let i = 0; i < zone.frames; i++) all.push(zone.alloc(0, MIGRATETYPE.MOVABLE, 1));
    for (let f = 0; f < 8; f++) zone.freeBlock(f, 0);
    for (let f = 1024; f < 1024 + (1 << PAGEBLOCK_ORDER); f++) zone.freeBlock(f, 0);
    const flags = ALLOC.NO_WATERMARKS | ALLOC.NOFRAGMENT;
    const i = pages.getPageFromFreelist(0, GFP_KERNEL | GFP.NOWARN, 4, flags);
    expect(i).toBeGreaterThanOrEqual(1024); // the whole pageblock, not the order-3 block at 0
    expect(zone.pageblockType[2]).toBe(MIGRATETYPE.UNMOVABLE);
  });

  it('a fallback that splits a foreign pageblock boosts the watermarks and wakes kswapd (boost_watermark)', () => {
    const pages = allocator(4096);
    const zone = pages.zone;
    expect(pages.watermarks.boost).toBe(0);
    // Everything allocated but one order-4 MOVABLE block: an UNMOVABLE request must split it.
    for (let f = 0; f < zone.frames; f++) zone.alloc(0, MIGRATETYPE.MOVABLE, 1);
    for (let f = 0; f < 16; f++) zone.freeBlock(f, 0);
    const i = pages.getPageFromFreelist(0, GFP_KERNEL, 0, ALLOC.NO_WATERMARKS | ALLOC.KSWAPD);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(pages.zone.extfrag.fragmenting).toBe(1);
    expect(pages.watermarks.boost).toBe(1 << PAGEBLOCK_ORDER);
    expect(pages.kswapdPending).toBe(true);
  });

  it('the bulk allocator fills from the CPU list, and declines when the zone is near its low watermark', () => {
    const pages = allocator(GiB / 8);
    const pfns: number[] = [];
    expect(pages.allocBulk(0, GFP_KERNEL, 100, 2, pfns)).toBe(100);
    expect(new Set(pfns).size).toBe(100);
    expect(pages.allocBulk(0, GFP_KERNEL, 1, 2, pfns)).toBe(0); // a single page takes the normal path
    expect(pages.allocBulk(0, GFP_KERNEL, pages.zone.freePages, 2, [])).toBe(0);
  });
});

describe('going back to a saved state (the stateful checker)', () => {
  type Op = { alloc: number; cpu: number; movable: boolean } | { free: number; cpu: number } | { wake: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ alloc: fc.nat(3), cpu: fc.nat(1), movable: fc.boolean() }),
    fc.record({ free: fc.nat(), cpu: fc.nat(1) }),
    fc.record({ wake: fc.nat(4) }),
  );
  /** Applies `ops`; returns what each did (the pfns allocated), to compare two allocators' futures. */
  function apply(pages: PageAllocator, live: { pfn: number; order: number }[], ops: readonly Op[]): number[] {
    const out: number[] = [];
    for (const o of ops) {
      if ('alloc' in o) {
        const pfn = pages.allocFast(o.cpu, o.movable ? GFP_HIGHUSER_MOVABLE : GFP_KERNEL, o.alloc, 1);
        out.push(pfn);
        if (pfn >= 0) live.push({ pfn, order: o.alloc });
      } else if ('free' in o) {
        if (live.length === 0) continue;
        const [b] = live.splice(o.free % live.length, 1);
        pages.free(o.cpu, b!.pfn, b!.order);
      } else if (o.wake === 4) pages.wakeupKcompactd(2);
      else pages.wakeupKswapd(o.wake);
    }
    return out;
  }
  function state(pages: PageAllocator): unknown {
    const words: number[] = [];
    pages.stateWords(words);
    return { words, vmstat: { ...pages.vmstat }, watermarks: { ...pages.watermarks }, free: pages.zone.freePages };
  }

  it('property: copyFrom, which keeps the per-CPU lists that are equal, leaves the allocator as a restore does', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 60 }),
        fc.array(op, { minLength: 1, maxLength: 60 }),
        fc.array(op, { minLength: 1, maxLength: 60 }),
        (before, after, later) => {
          const pages = allocator(1024);
          const live: { pfn: number; order: number }[] = [];
          apply(pages, live, before);
          const saved = pages.clone(pages.zone.clone());
          const savedLive = live.slice();
          const expected = state(saved);
          apply(pages, live, after);
          pages.watermarks.boost = 7;
          // Every plain field changed, including any added later that copyFrom does not know of yet.
          const fields = pages as unknown as Record<string, unknown>;
          for (const [key, value] of Object.entries(pages)) {
            if (key === 'nofragment') continue; // configuration, readonly: the same in every state
            if (typeof value === 'number') fields[key] = value + 1;
            else if (typeof value === 'boolean') fields[key] = !value;
          }
          pages.zone.copyFrom(saved.zone);
          pages.copyFrom(saved);
          expect(state(pages)).toEqual(expected);
          for (const [key, value] of Object.entries(saved)) {
            if (typeof value !== 'object') expect([key, fields[key]]).toEqual([key, value]);
          }
          // Its future is a restored allocator's, and the saved one is left as it was.
          const restored = saved.clone(saved.zone.clone());
          expect(apply(pages, savedLive.slice(), later)).toEqual(apply(restored, savedLive.slice(), later));
          expect(state(pages)).toEqual(state(restored));
          expect(state(saved)).toEqual(expected);
        },
      ),
      { numRuns: 100, seed: 11 },
    );
  });

  it('a per-CPU list of the same length with another page on it is copied back', () => {
    const pages = allocator(GiB / 8, 1);
    const a = pages.allocFast(0, GFP_KERNEL, 0, 1);
    const b = pages.allocFast(0, GFP_KERNEL, 0, 1);
    pages.free(0, a, 0);
    const saved = pages.clone(pages.zone.clone());
    const expected = state(saved);
    pages.free(0, b, 0);
    expect(pages.allocFast(0, GFP_KERNEL, 0, 1)).toBe(b); // the head: the list holds what it held, but a for b
    const c = pages.allocFast(0, GFP_KERNEL, 0, 1);
    pages.free(0, b, 0);
    pages.free(0, c, 0);
    pages.allocFast(0, GFP_KERNEL, 0, 1);
    pages.zone.copyFrom(saved.zone);
    pages.copyFrom(saved);
    expect(state(pages)).toEqual(expected);
  });
});
