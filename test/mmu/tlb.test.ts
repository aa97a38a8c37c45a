import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HUGE_PAGE_SIZE, InputError, LARGE_PAGE_SIZE, PAGE_SIZE, toVirtual } from '../../src/mmu/address.ts';
import { PhysicalMemory } from '../../src/mmu/physical-memory.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';
import { TLB_FLAG, Tlb, type TlbConfig } from '../../src/mmu/tlb.ts';
import { ACCESS, WalkResult, walkPageTables } from '../../src/mmu/walker.ts';
import { PageTables } from './page-tables.ts';

const VA = toVirtual('0xffffc90000001000');
const VA_2M = toVirtual('0xffffc90000200000');
const VA_1G = toVirtual('0xffffc90040000000');

interface Rights {
  writable?: boolean;
  user?: boolean;
  noExecute?: boolean;
  dirty?: boolean;
  global?: boolean;
}

/** A successful walk result for a page at `pageBase`, as the walker would return it. */
function translation(pageBase: number, pageSize = PAGE_SIZE, rights: Rights = {}): WalkResult {
  const walk = new WalkResult();
  walk.ok = true;
  walk.pageBase = pageBase;
  walk.pa = pageBase;
  walk.pageSize = pageSize;
  walk.writable = rights.writable ?? true;
  walk.user = rights.user ?? false;
  walk.noExecute = rights.noExecute ?? false;
  walk.dirty = rights.dirty ?? false;
  walk.global = rights.global ?? false;
  return walk;
}

function fill(tlb: Tlb, va: number, pageBase: number, options: { size?: number; global?: boolean } = {}): number {
  const size = options.size ?? PAGE_SIZE;
  return tlb.fill(va, translation(pageBase, size), options.global ?? false);
}

/** The physical address the TLB gives for `va`, or undefined on a miss. */
function translate(tlb: Tlb, va: number): number | undefined {
  const slot = tlb.lookup(va);
  return slot < 0 ? undefined : tlb.physical(slot, va);
}

/** Virtual page `i` of the 4 KiB set `set` in a TLB with `sets` sets. */
function pageInSet(set: number, i: number, sets = 16): number {
  const first = Math.floor(VA / PAGE_SIZE / 1024) * 1024;
  return (first + set + i * sets) * PAGE_SIZE;
}

describe('what the TLB caches', () => {
  it('a new TLB caches nothing', () => {
    const tlb = new Tlb();
    expect(translate(tlb, VA)).toBeUndefined();
    expect(tlb.size).toBe(0);
    expect(tlb.entries()).toEqual([]);
  });

  it('caches only what fill() was given', () => {
    const tlb = new Tlb();
    fill(tlb, VA + 0x123, 0x5000);
    expect(translate(tlb, VA)).toBe(0x5000);
    expect(translate(tlb, VA + 0xfff)).toBe(0x5fff);
    expect(translate(tlb, VA + PAGE_SIZE)).toBeUndefined();
    expect(translate(tlb, VA - PAGE_SIZE)).toBeUndefined();
    expect(translate(tlb, VA + 16 * PAGE_SIZE)).toBeUndefined(); // same set, different page
    expect(tlb.size).toBe(1);
    expect(tlb.entries()).toEqual([
      {
        va: VA,
        pa: 0x5000,
        pageSize: PAGE_SIZE,
        writable: true,
        user: false,
        noExecute: false,
        dirty: false,
        global: false,
      },
    ]);
  });

  it("caches the walk's combined rights, and G only as the caller passes it (CR4.PGE)", () => {
    const tlb = new Tlb();
    const rights = { writable: false, user: true, noExecute: true, dirty: true, global: true };
    const slot = tlb.fill(VA, translation(0x5000, PAGE_SIZE, rights), false);
    expect(tlb.flagsOf(slot)).toBe(TLB_FLAG.USER | TLB_FLAG.NO_EXECUTE | TLB_FLAG.DIRTY);
    const global = tlb.fill(VA + PAGE_SIZE, translation(0x6000, PAGE_SIZE, { writable: true }), true);
    expect(tlb.flagsOf(global)).toBe(TLB_FLAG.WRITABLE | TLB_FLAG.GLOBAL);
    expect(tlb.entries().map((e) => e.global)).toEqual([false, true]);
  });

  it('refilling a cached page replaces its translation in place, evicting nothing', () => {
    const tlb = new Tlb();
    const pages = [0, 1, 2, 3].map((i) => pageInSet(5, i));
    pages.forEach((va, i) => {
      fill(tlb, va, 0x10_0000 + i * PAGE_SIZE);
    });
    const slot = fill(tlb, pages[1]!, 0x90_0000);
    expect(tlb.lookup(pages[1]!)).toBe(slot);
    expect(pages.map((va) => translate(tlb, va))).toEqual([0x10_0000, 0x90_0000, 0x10_2000, 0x10_3000]);
    expect(tlb.size).toBe(4);
  });

  it('a large-page entry translates any address inside it and nothing outside', () => {
    const tlb = new Tlb();
    fill(tlb, VA_2M + 0x1234, 0x60_0000, { size: LARGE_PAGE_SIZE });
    fill(tlb, VA_1G + 0x5678, 2 * HUGE_PAGE_SIZE, { size: HUGE_PAGE_SIZE });
    for (const offset of [0, 0x1000, 0x1_2345, LARGE_PAGE_SIZE - 1]) {
      expect(translate(tlb, VA_2M + offset)).toBe(0x60_0000 + offset);
    }
    for (const offset of [0, 0x2345_6789, HUGE_PAGE_SIZE - 1]) {
      expect(translate(tlb, VA_1G + offset)).toBe(2 * HUGE_PAGE_SIZE + offset);
    }
    expect(translate(tlb, VA_2M - 1)).toBeUndefined();
    expect(translate(tlb, VA_2M + LARGE_PAGE_SIZE)).toBeUndefined();
    expect(translate(tlb, VA_1G + HUGE_PAGE_SIZE)).toBeUndefined();
    expect(tlb.entries().map((e) => [e.va, e.pageSize])).toEqual([
      [VA_2M, LARGE_PAGE_SIZE],
      [VA_1G, HUGE_PAGE_SIZE],
    ]);
  });

  it('does not cache a large page when it has no large-page entries', () => {
    const tlb = new Tlb({ largeEntries: 0 });
    expect(fill(tlb, VA_2M, 0x60_0000, { size: LARGE_PAGE_SIZE })).toBe(-1);
    expect(translate(tlb, VA_2M)).toBeUndefined();
  });

  it('keeps every large page it can hold as more large pages are filled than it has entries', () => {
    const tlb = new Tlb({ largeEntries: 2 });
    const bases = [0, 1, 2, 3].map((i) => VA_2M + i * LARGE_PAGE_SIZE);
    for (const [i, va] of bases.entries()) {
      fill(tlb, va, (i + 1) * LARGE_PAGE_SIZE, { size: LARGE_PAGE_SIZE });
      expect(translate(tlb, va + 8)).toBe((i + 1) * LARGE_PAGE_SIZE + 8);
      expect(tlb.size).toBe(Math.min(i + 1, 2));
    }
  });
});

describe('stale entries', () => {
  function mapped() {
    const pt = new PageTables(new PhysicalMemory(16 * 1024 * 1024));
    const leaf = pt.map4k(VA, 0x5000, PTE_LO.RW);
    const tlb = new Tlb();
    const walk = walkPageTables(pt.memory, pt.controls(), VA, ACCESS.READ);
    tlb.fill(VA, walk, walk.global);
    return { pt, leaf, tlb };
  }

  it('a cached translation keeps working after its PTE is cleared, until invalidatePage', () => {
    const { pt, leaf, tlb } = mapped();
    pt.memory.write32(leaf, 0);
    pt.memory.write32(leaf + 4, 0);
    expect(walkPageTables(pt.memory, pt.controls(), VA, ACCESS.READ).ok).toBe(false);
    expect(translate(tlb, VA + 0x10)).toBe(0x5010);
    expect(translate(tlb, VA + 0x10)).toBe(0x5010);
    expect(tlb.invalidatePage(VA + 0x10)).toBe(1);
    expect(translate(tlb, VA + 0x10)).toBeUndefined();
  });

  it('a cached translation keeps the old frame after the PTE is pointed elsewhere, until invalidatePage', () => {
    const { pt, leaf, tlb } = mapped();
    pt.memory.write32(leaf, 0x9000 | PTE_LO.P | PTE_LO.RW);
    expect(walkPageTables(pt.memory, pt.controls(), VA, ACCESS.READ).pa).toBe(0x9000);
    expect(translate(tlb, VA)).toBe(0x5000);
    tlb.invalidatePage(VA);
    const walk = walkPageTables(pt.memory, pt.controls(), VA, ACCESS.READ);
    tlb.fill(VA, walk, false);
    expect(translate(tlb, VA)).toBe(0x9000);
  });
});

describe('invalidation', () => {
  it('INVLPG removes the entry for the page, global or not, and nothing else', () => {
    const tlb = new Tlb();
    fill(tlb, VA, 0x5000, { global: true });
    fill(tlb, VA + PAGE_SIZE, 0x6000);
    fill(tlb, VA + 16 * PAGE_SIZE, 0x7000);
    expect(tlb.invalidatePage(VA + 0xabc)).toBe(1);
    expect(translate(tlb, VA)).toBeUndefined();
    expect(translate(tlb, VA + PAGE_SIZE)).toBe(0x6000);
    expect(translate(tlb, VA + 16 * PAGE_SIZE)).toBe(0x7000);
    expect(tlb.invalidatePage(VA)).toBe(0);
  });

  it('INVLPG of any address inside a large page removes the large entry, global or not', () => {
    const tlb = new Tlb();
    fill(tlb, VA_2M, 0x60_0000, { size: LARGE_PAGE_SIZE, global: true });
    fill(tlb, VA_1G, HUGE_PAGE_SIZE, { size: HUGE_PAGE_SIZE });
    fill(tlb, VA_2M + LARGE_PAGE_SIZE, 0x80_0000, { size: LARGE_PAGE_SIZE });
    expect(tlb.invalidatePage(VA_2M + 0x1f_f000)).toBe(1);
    expect(tlb.invalidatePage(VA_1G + 0x3000_0000)).toBe(1);
    expect(translate(tlb, VA_2M)).toBeUndefined();
    expect(translate(tlb, VA_1G)).toBeUndefined();
    expect(translate(tlb, VA_2M + LARGE_PAGE_SIZE)).toBe(0x80_0000);
    expect(tlb.size).toBe(1);
  });

  it('INVLPG removes a large entry even after the large-page array has had to evict entries', () => {
    const tlb = new Tlb({ largeEntries: 2 });
    const page = (i: number) => VA_2M + i * LARGE_PAGE_SIZE;
    for (let i = 0; i < 4; i++) fill(tlb, page(i), (10 + i) * LARGE_PAGE_SIZE, { size: LARGE_PAGE_SIZE });
    tlb.invalidatePage(page(3));
    fill(tlb, page(4), 20 * LARGE_PAGE_SIZE, { size: LARGE_PAGE_SIZE });
    expect(translate(tlb, page(3))).toBeUndefined();
  });

  it('INVLPG removes both a 4 KiB entry and a large entry that translate the same address', () => {
    const tlb = new Tlb();
    fill(tlb, VA_2M, 0x60_0000, { size: LARGE_PAGE_SIZE });
    fill(tlb, VA_2M + PAGE_SIZE, 0x9000);
    expect(translate(tlb, VA_2M + PAGE_SIZE)).toBe(0x9000);
    expect(tlb.invalidatePage(VA_2M + PAGE_SIZE)).toBe(2);
    expect(tlb.size).toBe(0);
  });

  it('flushNonGlobal (MOV to CR3) keeps global entries, 4 KiB and large, and removes the rest', () => {
    const tlb = new Tlb();
    fill(tlb, VA, 0x5000, { global: true });
    fill(tlb, VA + PAGE_SIZE, 0x6000);
    fill(tlb, VA_2M, 0x60_0000, { size: LARGE_PAGE_SIZE, global: true });
    fill(tlb, VA_1G, HUGE_PAGE_SIZE, { size: HUGE_PAGE_SIZE });
    tlb.flushNonGlobal();
    expect(translate(tlb, VA)).toBe(0x5000);
    expect(translate(tlb, VA + PAGE_SIZE)).toBeUndefined();
    expect(translate(tlb, VA_2M)).toBe(0x60_0000);
    expect(translate(tlb, VA_1G)).toBeUndefined();
    expect(tlb.size).toBe(2);
  });

  it('flushAll (CR4.PGE toggle) removes everything, global entries too', () => {
    const tlb = new Tlb();
    fill(tlb, VA, 0x5000, { global: true });
    fill(tlb, VA + PAGE_SIZE, 0x6000);
    fill(tlb, VA_2M, 0x60_0000, { size: LARGE_PAGE_SIZE, global: true });
    tlb.flushAll();
    expect(tlb.size).toBe(0);
    expect([VA, VA + PAGE_SIZE, VA_2M].map((va) => translate(tlb, va))).toEqual([undefined, undefined, undefined]);
  });
});

describe('replacement', () => {
  it('filling ways+1 pages that map to one set evicts the first filled, then the second', () => {
    const tlb = new Tlb({ entries: 64, ways: 4 });
    const pages = [0, 1, 2, 3, 4, 5].map((i) => pageInSet(7, i));
    const other = pageInSet(8, 0);
    fill(tlb, other, 0xf000);
    for (const [i, va] of pages.slice(0, 5).entries()) fill(tlb, va, (i + 1) * PAGE_SIZE);
    expect(pages.slice(0, 5).map((va) => translate(tlb, va))).toEqual([undefined, 0x2000, 0x3000, 0x4000, 0x5000]);
    fill(tlb, pages[5]!, 0x6000);
    expect(pages.map((va) => translate(tlb, va))).toEqual([undefined, undefined, 0x3000, 0x4000, 0x5000, 0x6000]);
    expect(translate(tlb, other)).toBe(0xf000);
  });

  it('a 512-way set keeps evicting in fill order past its 256th eviction', () => {
    const tlb = new Tlb({ entries: 512, ways: 512 });
    const page = (i: number) => VA + i * PAGE_SIZE;
    for (let i = 0; i < 512 + 257; i++) fill(tlb, page(i), i * PAGE_SIZE);
    // 257 evictions so far: pages 0..256 are gone, the 512 most recent (257..768) are cached.
    expect(translate(tlb, page(256))).toBeUndefined();
    expect(translate(tlb, page(512))).toBe(512 * PAGE_SIZE);
    expect(translate(tlb, page(768))).toBe(768 * PAGE_SIZE);
  });

  it('replacement is deterministic: two TLBs given the same fills hold the same entries', () => {
    const fills = fc.array(fc.tuple(fc.nat({ max: 63 }), fc.nat({ max: 0xffff })), { maxLength: 100 });
    fc.assert(
      fc.property(fills, (sequence) => {
        const a = new Tlb({ entries: 16, ways: 2 });
        const b = new Tlb({ entries: 16, ways: 2 });
        for (const [page, frame] of sequence) {
          fill(a, VA + page * PAGE_SIZE, frame * PAGE_SIZE);
          fill(b, VA + page * PAGE_SIZE, frame * PAGE_SIZE);
        }
        expect(a.entries()).toEqual(b.entries());
      }),
    );
  });
});

describe('counters and copies', () => {
  it('counts a hit for each lookup that finds a translation and a miss for each that does not', () => {
    const tlb = new Tlb();
    fill(tlb, VA, 0x5000);
    fill(tlb, VA_2M, 0x60_0000, { size: LARGE_PAGE_SIZE });
    tlb.lookup(VA);
    tlb.lookup(VA + 0xfff);
    tlb.lookup(VA_2M + 0x1234);
    tlb.lookup(VA + PAGE_SIZE);
    expect([tlb.hits, tlb.misses]).toEqual([3, 1]);
  });

  it('copyFrom copies entries, replacement state and counters, and the copy is independent', () => {
    const source = new Tlb({ entries: 8, ways: 2, largeEntries: 2 });
    const pages = [0, 1, 2].map((i) => pageInSet(1, i, 4));
    fill(source, pages[0]!, 0x1000);
    fill(source, pages[1]!, 0x2000, { global: true });
    fill(source, VA_2M, 0x60_0000, { size: LARGE_PAGE_SIZE });
    source.lookup(pages[0]!);
    source.lookup(pageInSet(2, 0, 4));
    const copy = new Tlb({ entries: 8, ways: 2, largeEntries: 2 });
    copy.copyFrom(source);
    expect(copy.entries()).toEqual(source.entries());
    expect([copy.hits, copy.misses]).toEqual([1, 1]);
    expect(translate(copy, VA_2M + 5)).toBe(0x60_0005);

    // The next eviction in the copied set picks the same victim in both.
    fill(source, pages[2]!, 0x3000);
    fill(copy, pages[2]!, 0x3000);
    expect(copy.entries()).toEqual(source.entries());

    copy.flushAll();
    expect(translate(source, pages[2]!)).toBe(0x3000);
    expect(source.size).toBe(3);
  });

  it('copyFrom rejects a TLB of a different geometry with an InputError', () => {
    expect(() => new Tlb({ entries: 8 }).copyFrom(new Tlb({ entries: 16 }))).toThrow(InputError);
    expect(() => new Tlb({ ways: 2 }).copyFrom(new Tlb({ ways: 4 }))).toThrow(InputError);
    expect(() => new Tlb({ largeEntries: 1 }).copyFrom(new Tlb({ largeEntries: 2 }))).toThrow(InputError);
  });

  it('prints each entry with its canonical virtual address', () => {
    const tlb = new Tlb();
    tlb.fill(VA, translation(0x5000, PAGE_SIZE, { dirty: true }), true);
    expect(tlb.toString()).toBe('0xffffc90000001000 -> 0x5000 G D');
  });
});

describe('configuration', () => {
  it.each<[TlbConfig, RegExp]>([
    [{ entries: 48 }, /entries 48/],
    [{ entries: 0 }, /entries 0/],
    [{ entries: 4, ways: 8 }, /ways 8/],
    [{ ways: 3 }, /ways 3/],
    [{ largeEntries: -1 }, /largeEntries -1/],
    [{ largeEntries: 256 }, /largeEntries 256/],
  ])('rejects %j with an InputError naming the value', (config, message) => {
    expect(() => new Tlb(config)).toThrow(InputError);
    expect(() => new Tlb(config)).toThrow(message);
  });

  it('reports its geometry', () => {
    const tlb = new Tlb({ entries: 32, ways: 8, largeEntries: 4 });
    expect([tlb.capacity, tlb.ways, tlb.largeCapacity]).toEqual([32, 8, 4]);
  });
});

describe('against a reference model', () => {
  // Working set: 4 KiB pages in one region, 2 MiB pages in another, 1 GiB pages in a third (no overlaps).
  const SMALL_PAGES = 40;
  const LARGE_PAGES = 6;
  const HUGE_PAGES = 2;
  const SMALL_BASE = VA;
  const LARGE_BASE = VA_2M + HUGE_PAGE_SIZE;
  const HUGE_BASE = toVirtual('0xffffe00000000000');

  type Page = { va: number; size: number };
  const pages: Page[] = [
    ...Array.from({ length: SMALL_PAGES }, (_, i) => ({ va: SMALL_BASE + i * PAGE_SIZE, size: PAGE_SIZE })),
    ...Array.from({ length: LARGE_PAGES }, (_, i) => ({ va: LARGE_BASE + i * LARGE_PAGE_SIZE, size: LARGE_PAGE_SIZE })),
    ...Array.from({ length: HUGE_PAGES }, (_, i) => ({ va: HUGE_BASE + i * HUGE_PAGE_SIZE, size: HUGE_PAGE_SIZE })),
  ];

  type Op =
    | { kind: 'fill'; page: number; frame: number; global: boolean }
    | { kind: 'invlpg'; page: number; offset: number }
    | { kind: 'flushNonGlobal' }
    | { kind: 'flushAll' };
  const op = (pageCount: number): fc.Arbitrary<Op> =>
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant('fill' as const),
          page: fc.nat({ max: pageCount - 1 }),
          frame: fc.nat({ max: 7 }),
          global: fc.boolean(),
        }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('invlpg' as const),
          page: fc.nat({ max: pageCount - 1 }),
          offset: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        }),
      },
      { weight: 1, arbitrary: fc.constant({ kind: 'flushNonGlobal' as const }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'flushAll' as const }) },
    );

  /** The ideal TLB: never evicts; `cached` maps a page index to its pa, `globals` holds global page indices. */
  class Reference {
    readonly cached = new Map<number, number>();
    readonly globals = new Set<number>();
    apply(o: Op): void {
      if (o.kind === 'fill') {
        this.cached.set(o.page, frameBase(o.page, o.frame));
        if (o.global) this.globals.add(o.page);
        else this.globals.delete(o.page);
      } else if (o.kind === 'invlpg') {
        this.cached.delete(o.page);
        this.globals.delete(o.page);
      } else if (o.kind === 'flushNonGlobal') {
        for (const page of this.cached.keys()) if (!this.globals.has(page)) this.cached.delete(page);
      } else {
        this.cached.clear();
        this.globals.clear();
      }
    }
  }

  function frameBase(page: number, frame: number): number {
    return (page * 8 + frame + 1) * pages[page]!.size;
  }

  function apply(tlb: Tlb, o: Op): void {
    if (o.kind === 'fill') {
      const { va, size } = pages[o.page]!;
      tlb.fill(va, translation(frameBase(o.page, o.frame), size), o.global);
    } else if (o.kind === 'invlpg') {
      const { va, size } = pages[o.page]!;
      tlb.invalidatePage(va + Math.floor(o.offset * size));
    } else if (o.kind === 'flushNonGlobal') {
      tlb.flushNonGlobal();
    } else {
      tlb.flushAll();
    }
  }

  /** Probe addresses: the start, the middle and the last byte of every page in the working set. */
  function probes(page: number): number[] {
    const { va, size } = pages[page]!;
    return [va, va + size / 2 + 8, va + size - 1];
  }

  it('a fully associative TLB larger than the working set translates exactly like the reference', () => {
    fc.assert(
      fc.property(fc.array(op(pages.length), { maxLength: 80 }), (ops) => {
        const tlb = new Tlb({ entries: 64, ways: 64, largeEntries: 16 });
        const reference = new Reference();
        let lookups = 0;
        for (const o of ops) {
          apply(tlb, o);
          reference.apply(o);
          for (let page = 0; page < pages.length; page++) {
            const expected = reference.cached.get(page);
            for (const va of probes(page)) {
              lookups++;
              const got = translate(tlb, va);
              expect(got).toBe(expected === undefined ? undefined : expected + (va - pages[page]!.va));
            }
          }
          expect(tlb.size).toBe(reference.cached.size);
        }
        expect(tlb.hits + tlb.misses).toBe(lookups);
      }),
    );
  });

  const anyConfig = fc
    .record({ entriesLog: fc.nat({ max: 6 }), waysLog: fc.nat({ max: 6 }), largeEntries: fc.nat({ max: 4 }) })
    .map(({ entriesLog, waysLog, largeEntries }) => ({
      entries: 2 ** entriesLog,
      ways: 2 ** Math.min(waysLog, entriesLog),
      largeEntries,
    }));

  it('with any configuration, a hit always returns a pa that some earlier fill for that page gave', () => {
    fc.assert(
      fc.property(anyConfig, fc.array(op(pages.length), { maxLength: 120 }), (config, ops) => {
        const tlb = new Tlb(config);
        const given = new Map<number, Set<number>>();
        for (const o of ops) {
          apply(tlb, o);
          if (o.kind === 'fill') {
            const set = given.get(o.page) ?? new Set<number>();
            set.add(frameBase(o.page, o.frame));
            given.set(o.page, set);
          }
          for (let page = 0; page < pages.length; page++) {
            for (const va of probes(page)) {
              const got = translate(tlb, va);
              if (got === undefined) continue;
              const base = got - (va - pages[page]!.va);
              expect(given.get(page)?.has(base)).toBe(true);
            }
          }
        }
      }),
    );
  });

  it('with any configuration, a hit agrees with the reference: evictions lose entries, invalidations never miss one', () => {
    fc.assert(
      fc.property(anyConfig, fc.array(op(pages.length), { maxLength: 120 }), (config, ops) => {
        const tlb = new Tlb(config);
        const reference = new Reference();
        for (const o of ops) {
          apply(tlb, o);
          reference.apply(o);
          for (let page = 0; page < pages.length; page++) {
            for (const va of probes(page)) {
              const got = translate(tlb, va);
              if (got !== undefined) expect(got).toBe(reference.cached.get(page)! + (va - pages[page]!.va));
            }
          }
          expect(tlb.size).toBeLessThanOrEqual(tlb.capacity + tlb.largeCapacity);
          expect(tlb.entries().length).toBe(tlb.size);
        }
      }),
      { numRuns: 500 },
    );
  });
});
