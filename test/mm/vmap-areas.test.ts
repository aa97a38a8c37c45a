import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VmapAreas } from '../../src/mm/vmap-areas.ts';
import { PAGE_SIZE } from '../../src/mmu/address.ts';

const START = 0x1000_0000;
const END = START + 256 * PAGE_SIZE;

type Op =
  | { kind: 'reserve'; pages: number }
  | { kind: 'release'; pick: number }
  | { kind: 'back'; pick: number; pfn: number; order: number }
  | { kind: 'migrate'; pick: number; page: number; pfn: number }
  | { kind: 'flag'; pick: number; flag: 'huge' | 'lazy' | 'purging' };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('reserve' as const), pages: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
  fc.record({
    kind: fc.constant('back' as const),
    pick: fc.nat(),
    pfn: fc.integer({ min: 0, max: 63 }),
    order: fc.integer({ min: 0, max: 2 }),
  }),
  fc.record({
    kind: fc.constant('migrate' as const),
    pick: fc.nat(),
    page: fc.nat(),
    pfn: fc.integer({ min: 0, max: 63 }),
  }),
  fc.record({
    kind: fc.constant('flag' as const),
    pick: fc.nat(),
    flag: fc.constantFrom('huge' as const, 'lazy' as const, 'purging' as const),
  }),
);

/** Applies `ops` as vmalloc, vfree, migration and the purge change an area (in place, as they do). */
function apply(v: VmapAreas, ops: readonly Op[]): void {
  for (const o of ops) {
    const areas = v.list;
    if (o.kind === 'reserve') {
      v.reserve(o.pages * PAGE_SIZE);
      continue;
    }
    if (areas.length === 0) continue;
    const a = areas[o.pick % areas.length]!;
    if (o.kind === 'release') v.release(a.start);
    else if (o.kind === 'back') {
      a.blocks.push({ va: a.start + a.pages.length * PAGE_SIZE, pfn: o.pfn, order: o.order });
      for (let i = 0; i < 1 << o.order; i++) a.pages.push(o.pfn + i);
    } else if (o.kind === 'migrate') {
      if (a.pages.length > 0) a.pages[o.page % a.pages.length] = o.pfn;
    } else a[o.flag] = !a[o.flag];
  }
}

const contents = (v: VmapAreas) => JSON.parse(JSON.stringify(v.list)) as unknown;

describe('going back to a saved state (the stateful checker)', () => {
  it('property: copyFrom, which keeps the areas that are equal, leaves the areas as a restore does, and neither side shares an area with the other', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 30 }),
        fc.array(op, { minLength: 1, maxLength: 30 }),
        fc.array(op, { minLength: 1, maxLength: 10 }),
        (before, after, later) => {
          const v = new VmapAreas(START, END);
          apply(v, before);
          const saved = v.clone();
          const expected = contents(saved);
          apply(v, after);
          v.copyFrom(saved);
          expect(contents(v)).toEqual(expected);
          // Changes after going back touch this object's own areas only: the saved state is taken up again later.
          apply(v, later);
          expect(contents(saved)).toEqual(expected);
          v.copyFrom(saved);
          expect(contents(v)).toEqual(expected);
          for (const a of v.list) {
            expect(saved.list).not.toContain(a);
            for (const b of saved.list) {
              expect(a.pages).not.toBe(b.pages);
              expect(a.blocks).not.toBe(b.blocks);
            }
          }
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });

  it('an area whose page array changed in place (a migrated page) is copied back; the others are kept as they are', () => {
    const v = new VmapAreas(START, END);
    for (const pages of [4, 4, 4]) v.reserve(pages * PAGE_SIZE);
    for (const [i, a] of v.list.entries()) for (let p = 0; p < 4; p++) a.pages.push(10 * i + p);
    const saved = v.clone();
    const [first, second, third] = v.list;
    second!.pages[2] = 99;
    v.copyFrom(saved);
    expect(v.list.map((a) => a.pages)).toEqual([
      [0, 1, 2, 3],
      [10, 11, 12, 13],
      [20, 21, 22, 23],
    ]);
    expect(v.list[0]).toBe(first);
    expect(v.list[1]).not.toBe(second);
    expect(v.list[2]).toBe(third);
  });
});
