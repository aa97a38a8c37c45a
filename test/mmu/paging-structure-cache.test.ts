import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InputError, PAGE_SIZE, toVirtual } from '../../src/mmu/address.ts';
import {
  PagingStructureCache,
  PSC_FLAG,
  PSC_LEVEL,
  PSC_SPAN,
  type PscLevel,
} from '../../src/mmu/paging-structure-cache.ts';
import { PhysicalMemory } from '../../src/mmu/physical-memory.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';
import { ACCESS, fillUpperLevels, PF_ERROR, VECTOR_PF, walkPageTables } from '../../src/mmu/walker.ts';
import { PageTables } from './page-tables.ts';

const MiB = 1024 * 1024;
const VA = toVirtual('0xffffc90000001000');
/** The next 4 KiB page: same PML4E, PDPTE and PDE as VA. */
const NEIGHBOUR = VA + PAGE_SIZE;
/** Another 2 MiB region under the same PDPTE. */
const OTHER_PD_SLOT = VA + 2 * MiB;
const { RW, US } = PTE_LO;

function tables(): PageTables {
  return new PageTables(new PhysicalMemory(64 * MiB));
}

describe('paging-structure caches (SDM §4.10.3)', () => {
  it('a walk caches its PML4E, PDPTE and PDE, and a walk of a neighbour starts from the PDE cache', () => {
    const pt = tables();
    pt.map4k(VA, 0x40_0000);
    pt.map4k(NEIGHBOUR, 0x40_1000);
    const psc = new PagingStructureCache();
    const first = walkPageTables(pt.memory, pt.controls(), VA, ACCESS.READ, undefined, undefined, psc);
    expect([first.ok, first.entryCount, first.pscLevel]).toEqual([true, 4, 0]);
    expect(psc.entries().map((e) => e.level)).toEqual([2, 3, 4]);
    expect(psc.entries()[0]!.table).toBe(pt.entryAddress(VA, 1) - (pt.entryAddress(VA, 1) % PAGE_SIZE));
    const second = walkPageTables(pt.memory, pt.controls(), NEIGHBOUR, ACCESS.READ, undefined, undefined, psc);
    expect([second.ok, second.entryCount, second.pscLevel, second.pa]).toEqual([true, 1, 2, 0x40_1000]);
  });

  it('a cached PDE keeps translating after the PDE in memory is cleared, until the cache is invalidated', () => {
    const pt = tables();
    pt.map4k(VA, 0x40_0000);
    pt.map4k(NEIGHBOUR, 0x40_1000);
    const psc = new PagingStructureCache();
    walkPageTables(pt.memory, pt.controls(), VA, ACCESS.READ, undefined, undefined, psc);
    const pde = pt.entryAddress(VA, 2);
    pt.memory.write32(pde, 0); // the PDE is no longer present
    const stale = walkPageTables(pt.memory, pt.controls(), NEIGHBOUR, ACCESS.READ, undefined, undefined, psc);
    expect([stale.ok, stale.pa]).toEqual([true, 0x40_1000]);
    expect(psc.invalidateAll()).toBe(3);
    const fresh = walkPageTables(pt.memory, pt.controls(), NEIGHBOUR, ACCESS.READ, undefined, undefined, psc);
    expect([fresh.ok, fresh.vector, fresh.errorCode]).toEqual([false, VECTOR_PF, 0]);
  });

  it('a walk from a cached entry uses the rights cached with it, not the entries above as they are now', () => {
    const pt = tables();
    pt.map4k(VA, 0x40_0000, RW | US);
    pt.map4k(NEIGHBOUR, 0x40_1000, RW | US);
    const psc = new PagingStructureCache();
    walkPageTables(pt.memory, pt.controls(), VA, ACCESS.WRITE | ACCESS.USER, undefined, undefined, psc);
    // The PML4E loses U/S: a fresh walk would refuse the user access; the cached PDE entry still allows it.
    const pml4e = pt.entryAddress(VA, 4);
    pt.memory.write32(pml4e, (pt.memory.read32(pml4e) & ~US) >>> 0);
    const r = walkPageTables(pt.memory, pt.controls(), NEIGHBOUR, ACCESS.USER, undefined, undefined, psc);
    expect([r.ok, r.user]).toEqual([true, true]);
    psc.invalidateAll();
    const fresh = walkPageTables(pt.memory, pt.controls(), NEIGHBOUR, ACCESS.USER, undefined, undefined, psc);
    expect([fresh.ok, fresh.errorCode]).toEqual([false, PF_ERROR.P | PF_ERROR.U]);
  });

  it('a PDE that maps a 2 MiB page is a translation, never a PDE-cache entry', () => {
    const pt = tables();
    pt.map2m(toVirtual('0xffffc90000200000'), 0x60_0000);
    const psc = new PagingStructureCache();
    walkPageTables(pt.memory, pt.controls(), toVirtual('0xffffc90000200000'), 0, undefined, undefined, psc);
    expect(psc.entries().map((e) => e.level)).toEqual([3, 4]);
  });

  it('a #PF invalidates only the entries that would translate its address', () => {
    const psc = new PagingStructureCache();
    psc.fill(PSC_LEVEL.PDE, VA, 0x1000, PSC_FLAG.WRITABLE);
    psc.fill(PSC_LEVEL.PDE, OTHER_PD_SLOT, 0x2000, PSC_FLAG.WRITABLE);
    psc.fill(PSC_LEVEL.PDPTE, VA, 0x3000, PSC_FLAG.WRITABLE);
    expect(psc.invalidateAddress(VA)).toBe(2);
    expect(psc.entries().map((e) => [e.level, e.table])).toEqual([[2, 0x2000]]);
  });

  it('a speculative upper walk caches the entries down to the PDE with no translation made, and only once', () => {
    const pt = tables();
    pt.map4k(VA, 0x40_0000);
    pt.memory.write32(pt.entryAddress(VA, 1), 0); // the PTE is not present: no translation, the PDE still caches
    const psc = new PagingStructureCache();
    expect(fillUpperLevels(pt.memory, pt.controls(), VA, PSC_LEVEL.PDE, psc)).toBe(true);
    expect(psc.entries().map((e) => e.level)).toEqual([2, 3, 4]);
    expect(fillUpperLevels(pt.memory, pt.controls(), VA, PSC_LEVEL.PDE, psc)).toBe(false); // cached already
    // The PDPTE alone, after the hardware dropped it: the walk starts from the cached PML4E.
    psc.drop(PSC_LEVEL.PDPTE, VA);
    expect(fillUpperLevels(pt.memory, pt.controls(), VA, PSC_LEVEL.PDPTE, psc)).toBe(true);
    expect(psc.entries().map((e) => e.level)).toEqual([2, 3, 4]);
    // A PDE that maps a 2 MiB page is no paging-structure entry.
    const large = toVirtual('0xffffc90000200000');
    pt.map2m(large, 0x60_0000);
    expect(fillUpperLevels(pt.memory, pt.controls(), large, PSC_LEVEL.PDE, new PagingStructureCache())).toBe(false);
  });

  it('refuses a capacity outside 1..64, naming it', () => {
    expect(() => new PagingStructureCache(0)).toThrow(InputError);
    expect(() => new PagingStructureCache(65)).toThrow(/65 must be an integer in 1\.\.64/);
  });

  it('agrees with a map from (level, region) to entry under any sequence of fills, drops and invalidations', () => {
    const level = fc.constantFrom<PscLevel>(2, 3, 4);
    // A few regions, so that fills collide and evict.
    const va = fc.nat({ max: 40 }).map((i) => toVirtual('0xffffc90000000000') + i * 2 * MiB);
    const op = fc.oneof(
      fc.record({ kind: fc.constant('fill' as const), level, va, table: fc.nat({ max: 1000 }) }),
      fc.record({ kind: fc.constant('drop' as const), level, va }),
      fc.record({ kind: fc.constant('all' as const) }),
      fc.record({ kind: fc.constant('address' as const), va }),
      fc.record({ kind: fc.constant('lookup' as const), va }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const psc = new PagingStructureCache(4);
        const model = new Map<string, number>();
        const key = (l: number, v: number) => `${l}:${Math.floor(v / PSC_SPAN[l]!)}`;
        for (const o of ops) {
          if (o.kind === 'fill') {
            psc.fill(o.level, o.va, o.table * PAGE_SIZE, 0);
            // The model allows any eviction: it only records what a present entry must hold.
            model.set(key(o.level, o.va), o.table * PAGE_SIZE);
          } else if (o.kind === 'drop') {
            psc.drop(o.level, o.va);
            model.delete(key(o.level, o.va));
          } else if (o.kind === 'all') {
            psc.invalidateAll();
            model.clear();
          } else if (o.kind === 'address') {
            psc.invalidateAddress(o.va);
            for (const l of [2, 3, 4]) model.delete(key(l, o.va));
          } else {
            const hit = psc.lookup(o.va);
            // A hit is the deepest held level, and holds what was last filled there.
            if (hit !== 0) expect(psc.hitTable).toBe(model.get(key(hit, o.va)));
            for (let l = 2; l < (hit || 5); l++) {
              expect(psc.entries().some((e) => e.level === l && key(l, e.va) === key(l, o.va))).toBe(false);
            }
          }
          // Every held entry is one the model has, with its table; no level holds more than its capacity.
          for (const e of psc.entries()) expect(model.get(key(e.level, e.va))).toBe(e.table);
          for (const l of [2, 3, 4]) expect(psc.entries().filter((e) => e.level === l).length).toBeLessThanOrEqual(4);
          expect(psc.size).toBe(psc.entries().length);
        }
      }),
      { seed: 19, numRuns: 300 },
    );
  });
});
