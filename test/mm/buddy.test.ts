import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BuddyAllocator, MAX_ORDER, MIGRATETYPE, type Migratetype, PAGEBLOCK_ORDER } from '../../src/mm/buddy.ts';
import { InputError } from '../../src/mmu/input-error.ts';

// The buddy allocator's promises (mm/page_alloc.c): no frame is handed out twice, every free page is accounted
// for, freeing everything restores the blocks boot made, and a frame's generation only grows.

const FRAMES = 4 * 1024; // 16 MiB: four order-10 blocks

type Op = { kind: 'alloc'; order: number; type: Migratetype } | { kind: 'free'; pick: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('alloc' as const),
    order: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: MAX_ORDER })),
    type: fc.constantFrom(MIGRATETYPE.UNMOVABLE, MIGRATETYPE.MOVABLE, MIGRATETYPE.RECLAIMABLE),
  }),
  fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }),
);

/**
 * The buddy invariants, read from the allocator's arrays: free blocks do not overlap and are aligned; no free
 * block has a free buddy of its own order (merges are complete); each (order, migratetype) list holds exactly the
 * free blocks marked with that type; the free-page count is the sum of the free blocks.
 */
function checkInvariants(b: BuddyAllocator): void {
  const covered = new Uint8Array(b.frames);
  const perList = new Map<string, number>();
  let pages = 0;
  for (let i = 0; i < b.frames; i++) {
    if (b.free[i] !== 1) continue;
    const order = b.order[i]!;
    const pfn = b.firstPfn + i;
    if (pfn % (1 << order) !== 0) expect.fail(`free block at ${pfn} is not aligned to order ${order}`);
    for (let f = i; f < i + (1 << order); f++) {
      if (covered[f]) expect.fail(`frame ${f} is in two free blocks`);
      covered[f] = 1;
    }
    const buddy = (pfn ^ (1 << order)) - b.firstPfn;
    if (order < MAX_ORDER && buddy >= 0 && buddy < b.frames && b.free[buddy] === 1 && b.order[buddy] === order) {
      expect.fail(`free block at ${pfn} and its buddy of order ${order} were not merged`);
    }
    const key = `${order}/${b.freeType[i]}`;
    perList.set(key, (perList.get(key) ?? 0) + 1);
    pages += 1 << order;
  }
  for (let o = 0; o <= MAX_ORDER; o++) {
    for (let t = 0; t < 3; t++) expect(b.freeCount(o, t)).toBe(perList.get(`${o}/${t}`) ?? 0);
  }
  expect(b.freePages).toBe(pages);
}

/** Runs `ops`, checking after each step that no two live blocks overlap and the free-page count adds up. */
function play(b: BuddyAllocator, ops: readonly Op[], afterEach: () => void = () => {}) {
  const live: { pfn: number; order: number }[] = [];
  const owned = new Uint8Array(b.frames);
  for (const o of ops) {
    if (o.kind === 'alloc') {
      const pfn = b.alloc(o.order, o.type, 1);
      if (pfn < 0) {
        // NULL only when no block of that order or larger is free, in any migratetype.
        expect(
          b
            .buddyinfo()
            .free.slice(o.order)
            .every((n) => n === 0),
        ).toBe(true);
        continue;
      }
      expect(pfn % (1 << o.order)).toBe(0); // a buddy block is aligned to its size
      for (let f = pfn - b.firstPfn; f < pfn - b.firstPfn + (1 << o.order); f++) {
        expect(owned[f]).toBe(0);
        owned[f] = 1;
        expect(b.isFree(b.firstPfn + f)).toBe(false);
      }
      live.push({ pfn, order: o.order });
    } else if (live.length > 0) {
      const [block] = live.splice(o.pick % live.length, 1);
      b.freeBlock(block!.pfn, block!.order);
      for (let f = block!.pfn - b.firstPfn; f < block!.pfn - b.firstPfn + (1 << block!.order); f++) owned[f] = 0;
    }
    const used = owned.reduce((a, x) => a + x, 0);
    expect(b.freePages + used).toBe(b.frames);
    afterEach();
  }
  return live;
}

/** Everything an allocator's future depends on, as plain values: its arrays (the free lists' tails included). */
function contents(b: BuddyAllocator) {
  const inner = b as unknown as { tails: Int32Array; freeTotal: number };
  return {
    arrays: b.stateArrays().map((a) => Array.from(a)),
    tails: Array.from(inner.tails),
    pageblockSkip: Array.from(b.pageblockSkip),
    movableOwners: Array.from(b.movableOwners),
    freePages: b.freePages,
  };
}

describe('the buddy allocator', () => {
  it('boot hands all frames over as order-10 blocks, all MOVABLE', () => {
    const b = new BuddyAllocator(0x400, FRAMES);
    expect(b.buddyinfo().free).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    expect(b.buddyinfo().byType[MIGRATETYPE.MOVABLE]![MAX_ORDER]).toBe(4);
    expect(b.freePages).toBe(FRAMES);
  });

  it('blocks are aligned to their size in physical frame numbers: a start at pfn 0x200 begins with an order-9 block', () => {
    const b = new BuddyAllocator(0x200, FRAMES);
    expect(b.buddyinfo().free).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3]);
  });

  it('an order-0 allocation splits one order-10 block into one block of each order 0..9', () => {
    const b = new BuddyAllocator(0, 1 << MAX_ORDER);
    expect(b.alloc(0, MIGRATETYPE.MOVABLE)).toBe(0);
    expect(b.buddyinfo().free).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
  });

  it('freeing a block merges it with its free buddy, order by order', () => {
    const b = new BuddyAllocator(0, 1 << MAX_ORDER);
    const pfn = b.alloc(0, MIGRATETYPE.MOVABLE);
    b.freeBlock(pfn, 0);
    expect(b.buddyinfo().free).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  });

  it('a request with no block of its migratetype falls back, stealing the largest block first', () => {
    const b = new BuddyAllocator(0, 2 << MAX_ORDER);
    const pfn = b.alloc(0, MIGRATETYPE.UNMOVABLE);
    expect(pfn).toBeGreaterThanOrEqual(0);
    // The order-10 block moved to UNMOVABLE and its two pageblocks changed type.
    expect(b.pageblockType[pfn >>> PAGEBLOCK_ORDER]).toBe(MIGRATETYPE.UNMOVABLE);
    expect(b.buddyinfo().byType[MIGRATETYPE.UNMOVABLE]!.slice(0, 10)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(b.buddyinfo().byType[MIGRATETYPE.MOVABLE]![MAX_ORDER]).toBe(1);
  });

  it('an allocation that nothing can satisfy returns -1 (NULL), it does not throw', () => {
    const b = new BuddyAllocator(0, 1 << MAX_ORDER);
    expect(b.alloc(MAX_ORDER, MIGRATETYPE.MOVABLE)).toBe(0);
    expect(b.alloc(0, MIGRATETYPE.MOVABLE)).toBe(-1);
  });

  it('a double free or a free of the wrong order is refused, naming the pfn', () => {
    const b = new BuddyAllocator(0, 1 << MAX_ORDER);
    const pfn = b.alloc(2, MIGRATETYPE.MOVABLE);
    expect(() => b.freeBlock(pfn, 1)).toThrow(InputError);
    b.freeBlock(pfn, 2);
    expect(() => b.freeBlock(pfn, 2)).toThrow(/not an allocated block of that order/);
    expect(b.freePages).toBe(1 << MAX_ORDER);
  });

  it('a free bumps the generation of every frame of the block', () => {
    const b = new BuddyAllocator(0, 1 << MAX_ORDER);
    const pfn = b.alloc(1, MIGRATETYPE.MOVABLE);
    b.freeBlock(pfn, 1);
    expect([b.generation[pfn], b.generation[pfn + 1], b.generation[pfn + 2]]).toEqual([1, 1, 0]);
  });

  it('fragmentation index: -1000 when a block of the order is free, 0 when nothing is, near 1000 when scattered', () => {
    const b = new BuddyAllocator(0, 1 << MAX_ORDER);
    expect(b.fragmentationIndex(3)).toBe(-1000);
    // Take every page, then free every other one: 512 free order-0 pages, no order-3 block.
    const pages = Array.from({ length: 1 << MAX_ORDER }, () => b.alloc(0, MIGRATETYPE.MOVABLE));
    expect(b.fragmentationIndex(0)).toBe(0);
    for (let i = 0; i < pages.length; i += 2) b.freeBlock(pages[i]!, 0);
    // 1000 - (1000 + 512 * 1000 / 8) / 512 = 1000 - 126 = 874 (integer arithmetic, as mm/vmstat.c).
    expect(b.fragmentationIndex(3)).toBe(874);
  });

  it('property: no frame is handed out twice and the free-page count always adds up', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        play(new BuddyAllocator(0x200, FRAMES), ops);
      }),
      { numRuns: 100 },
    );
  });

  it('property: freeing everything restores the blocks boot made, whatever happened before', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const b = new BuddyAllocator(0x200, FRAMES);
        const initial = b.buddyinfo().free;
        for (const block of play(b, ops)) b.freeBlock(block.pfn, block.order);
        expect(b.buddyinfo().free).toEqual(initial);
        expect(b.freePages).toBe(FRAMES);
      }),
      { numRuns: 100 },
    );
  });

  it('property: free blocks never overlap, merges are complete, and every list count matches its blocks', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const b = new BuddyAllocator(0x200, FRAMES);
        play(b, ops, () => checkInvariants(b));
      }),
      { numRuns: 60 },
    );
  });

  it('property: generations only grow', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 150 }), (ops) => {
        const b = new BuddyAllocator(0x200, FRAMES);
        let before = b.generation.slice();
        play(b, ops, () => {
          for (let f = 0; f < b.frames; f++) if (b.generation[f]! < before[f]!) expect.fail(`frame ${f} went back`);
          before = b.generation.slice();
        });
      }),
      { numRuns: 30 },
    );
  });

  it('a clone is independent of the original', () => {
    const b = new BuddyAllocator(0, 1 << MAX_ORDER);
    const c = b.clone();
    b.alloc(0, MIGRATETYPE.MOVABLE);
    expect(c.freePages).toBe(1 << MAX_ORDER);
    expect(c.alloc(MAX_ORDER, MIGRATETYPE.MOVABLE)).toBe(0);
    expect(b.buddyinfo().free[MAX_ORDER]).toBe(0);
  });
});

describe('going back to a saved state (the stateful checker)', () => {
  it('property: copyFrom, which goes back in place, leaves the allocator as a restore does, list tails and skip bits included', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.array(op, { minLength: 1, maxLength: 30 }), (before, after) => {
        const b = new BuddyAllocator(0, FRAMES);
        const live: { pfn: number; order: number }[] = [];
        const apply = (ops: readonly Op[]) => {
          for (const o of ops) {
            if (o.kind === 'alloc') {
              const pfn = b.alloc(o.order, o.type, 1);
              if (pfn >= 0) live.push({ pfn, order: o.order });
            } else if (live.length > 0) {
              const [block] = live.splice(o.pick % live.length, 1);
              b.freeBlock(block!.pfn, block!.order);
            }
          }
        };
        apply(before);
        const saved = b.clone();
        apply(after);
        b.writable();
        b.pageblockSkip[0] = 1;
        b.copyFrom(saved);
        expect(contents(b)).toEqual(contents(saved.clone()));
      }),
      { numRuns: 200, seed: 18 },
    );
  });
});
