import { describe, expect, it } from 'vitest';
import { BuddyAllocator, MIGRATETYPE, PAGEBLOCK_ORDER } from '../../src/mm/buddy.ts';
import {
  CAN_STEAL,
  canStealFallback,
  FALLBACKS,
  findSuitableFallback,
  NO_FALLBACK,
  rmqueueFallback,
  STEAL_ORDER,
} from '../../src/mm/fallback.ts';
import { ALLOC } from '../../src/mm/gfp.ts';

// The migratetype fallback rules of mm/page_alloc.c (Linux 6.6) on small hand-made zones: every frame is first
// allocated order-0, pageblocks are given types, and chosen frames are freed so that the free lists hold exactly
// the blocks a rule needs.

const BLOCK = 1 << PAGEBLOCK_ORDER;
const MOVABLE_OWNER = 4; // a page-cache-like owner tag, declared movable below
const PINNED_OWNER = 5; // a slab-like owner tag

/** A zone of `blocks` pageblocks, every frame allocated order-0 by PINNED_OWNER, pageblocks typed as given. */
function fullZone(types: readonly number[]): BuddyAllocator {
  const zone = new BuddyAllocator(0, types.length * BLOCK);
  zone.movableOwners[MOVABLE_OWNER] = 1;
  for (let i = 0; i < zone.frames; i++) zone.alloc(0, MIGRATETYPE.MOVABLE, PINNED_OWNER);
  expect(zone.freePages).toBe(0);
  types.forEach((t, b) => {
    zone.setPageblockType(b * BLOCK, t);
  });
  zone.extfrag.events = 0;
  zone.extfrag.fragmenting = 0;
  zone.extfrag.changeOwnership = 0;
  return zone;
}

/** Frees frames [from, from + count) one by one (they merge into the largest aligned blocks). */
function freeRange(zone: BuddyAllocator, from: number, count: number): void {
  for (let f = from; f < from + count; f++) zone.freeBlock(f, 0);
}

/** Gives frames [from, from + count) to `owner` (they stay allocated). */
function own(zone: BuddyAllocator, from: number, count: number, owner: number): void {
  for (let f = from; f < from + count; f++) zone.setOwner(f, owner);
}

const { UNMOVABLE, MOVABLE, RECLAIMABLE } = MIGRATETYPE;

describe('can_steal_fallback and find_suitable_fallback', () => {
  it('the steal threshold is pageblock_order / 2 in integer division: 4, not 4.5', () => {
    expect(STEAL_ORDER).toBe(4);
    expect(canStealFallback(4, MOVABLE)).toBe(true);
    expect(canStealFallback(3, MOVABLE)).toBe(false);
  });

  it('UNMOVABLE and RECLAIMABLE requests may claim a pageblock at any order', () => {
    for (const order of [0, 1, 2, 3]) {
      expect(canStealFallback(order, UNMOVABLE)).toBe(true);
      expect(canStealFallback(order, RECLAIMABLE)).toBe(true);
    }
  });

  it('a block of a pageblock or more may always be claimed', () => {
    expect(canStealFallback(PAGEBLOCK_ORDER, MOVABLE)).toBe(true);
    expect(canStealFallback(10, MOVABLE)).toBe(true);
  });

  it("fallbacks[] is Linux's table", () => {
    expect(FALLBACKS).toEqual([
      [RECLAIMABLE, MOVABLE],
      [RECLAIMABLE, UNMOVABLE],
      [UNMOVABLE, MOVABLE],
    ]);
  });

  it('finds the first fallback type in table order that has a block, and says whether it may claim', () => {
    const zone = fullZone([RECLAIMABLE, MOVABLE]);
    freeRange(zone, 0, 8); // an order-3 block on RECLAIMABLE's list
    freeRange(zone, BLOCK, 8); // and one on MOVABLE's
    expect(findSuitableFallback(zone, 3, UNMOVABLE, false)).toBe(RECLAIMABLE | CAN_STEAL);
    expect(findSuitableFallback(zone, 3, RECLAIMABLE, false)).toBe(MOVABLE | CAN_STEAL);
    // MOVABLE at order 3 may not claim: returned without CAN_STEAL, and not at all when only stealable ones count.
    expect(findSuitableFallback(zone, 3, MOVABLE, false)).toBe(RECLAIMABLE);
    expect(findSuitableFallback(zone, 3, MOVABLE, true)).toBe(NO_FALLBACK);
    expect(findSuitableFallback(zone, 4, UNMOVABLE, false)).toBe(NO_FALLBACK);
  });
});

describe('__rmqueue_fallback', () => {
  it('an UNMOVABLE request falls back to RECLAIMABLE before MOVABLE', () => {
    const zone = fullZone([RECLAIMABLE, MOVABLE]);
    freeRange(zone, 0, 8);
    freeRange(zone, BLOCK, 8);
    const pfn = zone.alloc(0, UNMOVABLE, 1);
    expect(pfn).toBeGreaterThanOrEqual(0);
    expect(pfn).toBeLessThan(8);
    expect(zone.extfrag.events).toBe(1);
  });

  it('the largest free block of the fallback type is taken first', () => {
    const zone = fullZone([MOVABLE, MOVABLE]);
    freeRange(zone, 0, 8); // order 3
    freeRange(zone, BLOCK, 32); // order 5
    const pfn = zone.alloc(0, UNMOVABLE, 1);
    expect(pfn).toBeGreaterThanOrEqual(BLOCK);
    expect(pfn).toBeLessThan(BLOCK + 32);
  });

  it('a MOVABLE request that cannot claim the pageblock takes the smallest fallback block (find_smallest)', () => {
    const zone = fullZone([UNMOVABLE, UNMOVABLE]);
    freeRange(zone, 0, 8); // order 3: below the steal threshold for MOVABLE
    freeRange(zone, BLOCK, 4); // order 2
    const pfn = zone.alloc(0, MOVABLE, 1);
    expect(pfn).toBeGreaterThanOrEqual(BLOCK);
    expect(pfn).toBeLessThan(BLOCK + 4);
    // Nothing was claimed: both pageblocks stay UNMOVABLE, and the event is a fragmenting one.
    expect([...zone.pageblockType]).toEqual([UNMOVABLE, UNMOVABLE]);
    expect(zone.extfrag).toMatchObject({ events: 1, fragmenting: 1, changeOwnership: 0 });
  });

  it('a MOVABLE request with a block it may claim takes the largest one, not the smallest', () => {
    const zone = fullZone([UNMOVABLE, UNMOVABLE]);
    freeRange(zone, 0, 16); // order 4: at the threshold
    freeRange(zone, BLOCK, 4); // order 2
    const pfn = zone.alloc(0, MOVABLE, 1);
    expect(pfn).toBeLessThan(16);
  });

  it('a MOVABLE request steals the whole pageblock when it takes at least half of it', () => {
    const zone = fullZone([UNMOVABLE]);
    freeRange(zone, 0, BLOCK / 2); // an order-8 block: half the pageblock
    zone.alloc(0, MOVABLE, 1);
    expect(zone.pageblockType[0]).toBe(MOVABLE);
    expect(zone.extfrag.changeOwnership).toBe(1);
  });

  it('a MOVABLE request that claims a pageblock with too few free or movable pages moves its free blocks only', () => {
    const zone = fullZone([UNMOVABLE]);
    freeRange(zone, 0, 16); // order 4: may claim, but 16 free pages
    freeRange(zone, 256, 8); // another free block in the same pageblock
    own(zone, 300, 100, MOVABLE_OWNER); // 100 movable pages: 16 + 8 + 100 < 256
    const pfn = zone.alloc(0, MOVABLE, 1);
    expect(zone.pageblockType[0]).toBe(UNMOVABLE);
    // Both free blocks moved to MOVABLE's lists (move_freepages_block()); the retried __rmqueue_smallest() then
    // split the smaller one, and none is left on UNMOVABLE's.
    expect(pfn).toBeGreaterThanOrEqual(256);
    expect(pfn).toBeLessThan(264);
    expect(zone.freeCount(4, MOVABLE)).toBe(1);
    for (let o = 0; o <= 10; o++) expect(zone.freeCount(o, UNMOVABLE)).toBe(0);
  });

  it('movable pages count as alike for a MOVABLE request: free + movable >= half claims the pageblock', () => {
    const zone = fullZone([UNMOVABLE]);
    freeRange(zone, 0, 16);
    own(zone, 16, 240, MOVABLE_OWNER); // 16 + 240 = 256
    zone.alloc(0, MOVABLE, 1);
    expect(zone.pageblockType[0]).toBe(MOVABLE);
  });

  it('an UNMOVABLE request counts the non-movable pages of a MOVABLE pageblock as alike', () => {
    const claimed = fullZone([MOVABLE]);
    freeRange(claimed, 0, 8); // 8 free
    own(claimed, 8, 264, MOVABLE_OWNER); // 264 movable: alike = 512 - (8 + 264) = 240, 248 < 256
    claimed.alloc(0, UNMOVABLE, 1);
    expect(claimed.pageblockType[0]).toBe(MOVABLE);
    const stolen = fullZone([MOVABLE]);
    freeRange(stolen, 0, 8);
    own(stolen, 8, 248, MOVABLE_OWNER); // alike = 512 - 256 = 256: 264 >= 256
    stolen.alloc(0, UNMOVABLE, 1);
    expect(stolen.pageblockType[0]).toBe(UNMOVABLE);
  });

  it('between UNMOVABLE and RECLAIMABLE nothing counts as alike: only free pages decide', () => {
    const zone = fullZone([RECLAIMABLE]);
    freeRange(zone, 0, 128); // a quarter free, the rest unmovable-like
    zone.alloc(0, UNMOVABLE, 1);
    expect(zone.pageblockType[0]).toBe(RECLAIMABLE);
  });

  it("a block of a pageblock or more changes its pageblocks' type outright", () => {
    const zone = fullZone([MOVABLE, MOVABLE, MOVABLE, MOVABLE]);
    freeRange(zone, 2 * BLOCK, 2 * BLOCK); // an order-10 block: two pageblocks
    zone.alloc(0, UNMOVABLE, 1);
    expect([...zone.pageblockType]).toEqual([MOVABLE, MOVABLE, UNMOVABLE, UNMOVABLE]);
    expect(zone.extfrag).toMatchObject({ events: 1, fragmenting: 0 });
  });

  it('with ALLOC_NOFRAGMENT only a whole pageblock may be taken from another type', () => {
    const zone = fullZone([MOVABLE, MOVABLE]);
    freeRange(zone, 0, 64); // order 6
    expect(rmqueueFallback(zone, 0, UNMOVABLE, ALLOC.NOFRAGMENT)).toBe(false);
    expect(rmqueueFallback(zone, 0, UNMOVABLE, 0)).toBe(true);
    const whole = fullZone([MOVABLE, MOVABLE]);
    freeRange(whole, BLOCK, BLOCK);
    expect(rmqueueFallback(whole, 0, UNMOVABLE, ALLOC.NOFRAGMENT)).toBe(true);
    expect(whole.pageblockType[1]).toBe(UNMOVABLE);
  });
});

describe('the free lists', () => {
  it('a freed block goes to the head of its list, so it is the next one taken', () => {
    const zone = fullZone([MOVABLE, MOVABLE]);
    zone.freeBlock(100, 0);
    zone.freeBlock(700, 0);
    expect(zone.firstFree(0, MOVABLE)).toBe(700);
  });

  it('a freed block whose merged buddy is likely to merge further goes to the tail (buddy_merge_likely)', () => {
    const zone = fullZone([MOVABLE, MOVABLE]);
    freeRange(zone, 2, 2); // frames 2-3: an order-1 block; its order-2 buddy (0-3 needs 0-1)...
    zone.freeBlock(700, 0);
    // Frame 4 freed: its buddy 5 is allocated, but the order-1 buddy of [4,5] is [6,7] (allocated): head.
    zone.freeBlock(4, 0);
    expect(zone.firstFree(0, MOVABLE)).toBe(4);
    // Frame 1 freed: no merge (0 is allocated); the order-1 block [0,1]'s buddy [2,3] is free: likely, so the tail.
    zone.freeBlock(1, 0);
    expect(zone.firstFree(0, MOVABLE)).toBe(4);
    let last = zone.firstFree(0, MOVABLE);
    while (zone.nextFree(last) >= 0) last = zone.nextFree(last);
    expect(last).toBe(1);
  });
});
