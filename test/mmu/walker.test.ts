import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HUGE_PAGE_SIZE, InputError, LARGE_PAGE_SIZE, PAGE_SIZE, toVirtual } from '../../src/mmu/address.ts';
import { Footprint } from '../../src/mmu/footprint.ts';
import { PhysicalMemory } from '../../src/mmu/physical-memory.ts';
import {
  decodePte,
  encodePte,
  entryFrame,
  PTE_HI,
  PTE_LO,
  type PteFields,
  pteToBigInt,
  tableIndex,
} from '../../src/mmu/pte.ts';
import {
  ACCESS,
  type PagingControls,
  PF_ERROR,
  VECTOR_GP,
  VECTOR_PF,
  VECTOR_SS,
  WalkResult,
  walkPageTables,
} from '../../src/mmu/walker.ts';
import { type Level, PageTables } from './page-tables.ts';

const MiB = 1024 * 1024;
const VA = toVirtual('0xffffc90000001000');
const VA_2M = toVirtual('0xffffc90000200000');
const VA_1G = toVirtual('0xffffc90040000000');
const { RW, US, A, D, PS, G } = PTE_LO;

function tables(): PageTables {
  return new PageTables(new PhysicalMemory(64 * MiB));
}

function walk(pt: PageTables, va: number, access: number = ACCESS.READ, controls: Partial<PagingControls> = {}) {
  return walkPageTables(pt.memory, pt.controls(controls), va, access);
}

function setBits(memory: PhysicalMemory, entry: number, lo: number, hi = 0): void {
  memory.write32(entry, (memory.read32(entry) | lo) >>> 0);
  memory.write32(entry + 4, (memory.read32(entry + 4) | hi) >>> 0);
}

function clearBits(memory: PhysicalMemory, entry: number, lo: number): void {
  memory.write32(entry, (memory.read32(entry) & ~lo) >>> 0);
}

/** The entries a 4 KiB walk of `va` uses, outermost first. */
function entriesOf(pt: PageTables, va: number, levels: readonly Level[] = [4, 3, 2, 1]): number[] {
  return levels.map((level) => pt.entryAddress(va, level));
}

describe('page-table entry format', () => {
  const fields = fc.record({
    address: fc.nat({ max: 2 ** 40 - 1 }).map((frame) => frame * PAGE_SIZE),
    present: fc.boolean(),
    writable: fc.boolean(),
    user: fc.boolean(),
    writeThrough: fc.boolean(),
    cacheDisable: fc.boolean(),
    accessed: fc.boolean(),
    dirty: fc.boolean(),
    pageSize: fc.boolean(),
    global: fc.boolean(),
    software: fc.nat({ max: 7 }),
    protectionKey: fc.nat({ max: 15 }),
    noExecute: fc.boolean(),
  });

  it('decodes every field an entry was encoded with', () => {
    fc.assert(
      fc.property(fields, (f: PteFields) => {
        const { lo, hi } = encodePte(f);
        expect(lo).toBe(lo >>> 0);
        expect(hi).toBe(hi >>> 0);
        expect(decodePte(lo, hi)).toEqual(f);
        expect(entryFrame(lo, hi)).toBe(f.address);
      }),
    );
  });

  it('encodes every 64-bit entry it decodes, bit for bit (bits 58:52 are not fields)', () => {
    const unmodelled = 0x07f0_0000; // bits 58:52 in the high half
    fc.assert(
      fc.property(fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 0xffff_ffff }), (lo, hi) => {
        const again = encodePte(decodePte(lo, hi));
        expect(again).toEqual({ lo, hi: (hi & ~unmodelled) >>> 0 });
      }),
    );
  });

  it('puts NX in bit 63, the top bit of the high half', () => {
    const pte = encodePte({ address: 0, noExecute: true });
    expect(pte).toEqual({ lo: 0, hi: 0x8000_0000 });
    expect(pteToBigInt(pte)).toBe(1n << 63n);
    expect(decodePte(0, 0x8000_0000).noExecute).toBe(true);
    expect(decodePte(0xffff_ffff, 0x7fff_ffff).noExecute).toBe(false);
  });

  it('places each flag at its architectural bit', () => {
    const bit = (f: Partial<PteFields>) => pteToBigInt(encodePte({ address: 0, ...f }));
    expect(bit({ present: true })).toBe(1n << 0n);
    expect(bit({ writable: true })).toBe(1n << 1n);
    expect(bit({ user: true })).toBe(1n << 2n);
    expect(bit({ writeThrough: true })).toBe(1n << 3n);
    expect(bit({ cacheDisable: true })).toBe(1n << 4n);
    expect(bit({ accessed: true })).toBe(1n << 5n);
    expect(bit({ dirty: true })).toBe(1n << 6n);
    expect(bit({ pageSize: true })).toBe(1n << 7n);
    expect(bit({ global: true })).toBe(1n << 8n);
    expect(bit({ software: 7 })).toBe(7n << 9n);
    expect(bit({ protectionKey: 15 })).toBe(15n << 59n);
    expect(pteToBigInt(encodePte({ address: 2 ** 52 - PAGE_SIZE }))).toBe(((1n << 52n) - 1n) & ~0xfffn);
  });

  it('rejects an entry address that is unaligned or not below 2^52', () => {
    expect(() => encodePte({ address: 0x1001 })).toThrow(InputError);
    expect(() => encodePte({ address: 2 ** 52 })).toThrow(InputError);
    expect(() => encodePte({ address: -PAGE_SIZE })).toThrow(InputError);
  });

  it('indexes each level by bits 47:39, 38:30, 29:21 and 20:12 of the address', () => {
    const va = toVirtual('0xffffc90040203000');
    expect([4, 3, 2, 1].map((l) => tableIndex(va, l as Level))).toEqual([0x192, 1, 1, 3]);
    expect(tableIndex(toVirtual('0xffffffffffffffff'), 4)).toBe(511);
  });
});

describe('translation', () => {
  it('translates a 4 KiB page through four levels', () => {
    const pt = tables();
    const leaf = pt.map4k(VA, 0x5000);
    const r = walk(pt, VA + 0x123);
    expect(r.ok).toBe(true);
    expect(r.pa).toBe(0x5123);
    expect(r.pageBase).toBe(0x5000);
    expect(r.pageSize).toBe(PAGE_SIZE);
    expect(r.leafEntry).toBe(leaf);
    expect(Array.from(r.entries.subarray(0, r.entryCount))).toEqual(entriesOf(pt, VA));
    expect(r.fault()).toBeUndefined();
  });

  it('translates to a frame above 4 GiB using the address bits in the high half', () => {
    const pt = tables();
    pt.map4k(VA, 0x12_3456_7000);
    expect(walk(pt, VA + 0xfff).pa).toBe(0x12_3456_7fff);
  });

  it('translates a 2 MiB page through three levels, for every address inside it', () => {
    const pt = tables();
    const leaf = pt.map2m(VA_2M, 0x60_0000);
    for (const offset of [0, 0x1_2345, LARGE_PAGE_SIZE - 1]) {
      const r = walk(pt, VA_2M + offset);
      expect(r.ok).toBe(true);
      expect(r.pa).toBe(0x60_0000 + offset);
      expect(r.pageSize).toBe(LARGE_PAGE_SIZE);
      expect(r.pageBase).toBe(0x60_0000);
      expect(r.entryCount).toBe(3);
      expect(r.leafEntry).toBe(leaf);
    }
  });

  it('translates a 1 GiB page through two levels, for every address inside it', () => {
    const pt = tables();
    const leaf = pt.map1g(VA_1G, 5 * HUGE_PAGE_SIZE);
    for (const offset of [0, 0x2345_6789, HUGE_PAGE_SIZE - 1]) {
      const r = walk(pt, VA_1G + offset);
      expect(r.ok).toBe(true);
      expect(r.pa).toBe(5 * HUGE_PAGE_SIZE + offset);
      expect(r.pageSize).toBe(HUGE_PAGE_SIZE);
      expect(r.entryCount).toBe(2);
      expect(r.leafEntry).toBe(leaf);
    }
  });

  it('treats bit 12 of a 2 MiB or 1 GiB entry as PAT, not as an address bit', () => {
    const pt = tables();
    setBits(pt.memory, pt.map2m(VA_2M, 0x60_0000), 1 << 12);
    setBits(pt.memory, pt.map1g(VA_1G, HUGE_PAGE_SIZE), 1 << 12);
    expect(walk(pt, VA_2M + 0x10).pa).toBe(0x60_0010);
    expect(walk(pt, VA_1G + 0x10).pa).toBe(HUGE_PAGE_SIZE + 0x10);
  });

  it('reports R/W and U/S AND-ed across levels, XD OR-ed, and G and D of the leaf', () => {
    const pt = tables();
    pt.map4k(VA, 0x5000, RW | US | G);
    let r = walk(pt, VA);
    expect([r.writable, r.user, r.noExecute, r.global, r.dirty]).toEqual([true, true, false, true, false]);
    setBits(pt.memory, pt.entryAddress(VA, 3), 0, PTE_HI.NX);
    clearBits(pt.memory, pt.entryAddress(VA, 2), RW);
    clearBits(pt.memory, pt.entryAddress(VA, 4), US);
    r = walk(pt, VA);
    expect([r.writable, r.user, r.noExecute, r.global]).toEqual([false, false, true, true]);
  });

  it('allows a fetch with EFER.NXE=0 from a page whose XD bit is clear', () => {
    const pt = tables();
    pt.map4k(VA, 0x5000, RW);
    const r = walk(pt, VA, ACCESS.FETCH, { nxe: false });
    expect(r.ok).toBe(true);
    expect(r.noExecute).toBe(false);
  });

  it('reports only the current walk when a WalkResult is reused', () => {
    const pt = tables();
    pt.map4k(VA, 0x5000);
    pt.map2m(VA_2M, 0x60_0000);
    const out = new WalkResult();
    walkPageTables(pt.memory, pt.controls(), VA, ACCESS.READ, out);
    expect(out.entryCount).toBe(4);
    walkPageTables(pt.memory, pt.controls(), VA_2M, ACCESS.READ, out);
    expect([out.ok, out.entryCount, out.pageSize]).toEqual([true, 3, LARGE_PAGE_SIZE]);
    walkPageTables(pt.memory, pt.controls(), VA + PAGE_SIZE, ACCESS.READ, out);
    expect(out.ok).toBe(false);
    expect(out.fault()).toEqual({ vector: VECTOR_PF, errorCode: 0, cr2: VA + PAGE_SIZE });
  });
});

describe('accessed and dirty bits', () => {
  it('the walker sets A on every entry it uses and D on the final entry on a write, in memory', () => {
    const pt = tables();
    pt.map4k(VA, 0x5000, RW);
    const used = entriesOf(pt, VA);
    for (const entry of used) expect(pt.memory.read32(entry) & (A | D)).toBe(0);

    expect(walk(pt, VA).ok).toBe(true);
    for (const entry of used) expect(pt.memory.read32(entry) & (A | D)).toBe(A);

    const r = walk(pt, VA, ACCESS.WRITE);
    expect(r.dirty).toBe(true);
    const leaf = used.at(-1)!;
    for (const entry of used) expect(pt.memory.read32(entry) & (A | D)).toBe(entry === leaf ? A | D : A);
  });

  it('sets D on a 2 MiB or 1 GiB leaf on a write', () => {
    const pt = tables();
    const leaf2m = pt.map2m(VA_2M, 0x60_0000);
    const leaf1g = pt.map1g(VA_1G, HUGE_PAGE_SIZE);
    walk(pt, VA_2M + 8, ACCESS.WRITE);
    walk(pt, VA_1G + 8, ACCESS.WRITE);
    expect(pt.memory.read32(leaf2m) & (A | D)).toBe(A | D);
    expect(pt.memory.read32(leaf1g) & (A | D)).toBe(A | D);
    expect(pt.memory.read32(pt.entryAddress(VA_2M, 3)) & (A | D)).toBe(A);
  });

  it('does not set D on a read, and never clears A or D', () => {
    const pt = tables();
    const leaf = pt.map4k(VA, 0x5000, RW);
    walk(pt, VA, ACCESS.READ);
    expect(pt.memory.read32(leaf) & D).toBe(0);
    walk(pt, VA, ACCESS.WRITE);
    const r = walk(pt, VA, ACCESS.READ);
    expect(pt.memory.read32(leaf) & (A | D)).toBe(A | D);
    expect(r.dirty).toBe(true);
  });

  it('leaves the rest of each entry unchanged when it sets A and D', () => {
    const pt = tables();
    const leaf = pt.map4k(VA, 0x12_3456_7000, RW | US | G | (5 << 9), PTE_HI.NX | (3 << 27));
    const before = decodePte(pt.memory.read32(leaf), pt.memory.read32(leaf + 4));
    walk(pt, VA, ACCESS.WRITE);
    const after = decodePte(pt.memory.read32(leaf), pt.memory.read32(leaf + 4));
    expect(after).toEqual({ ...before, accessed: true, dirty: true });
  });

  it('a write that faults on protection does not set D', () => {
    const pt = tables();
    const leaf = pt.map4k(VA, 0x5000, 0);
    expect(walk(pt, VA, ACCESS.WRITE).ok).toBe(false);
    expect(pt.memory.read32(leaf) & D).toBe(0);
  });
});

describe('not-present faults', () => {
  const accesses = [
    ['a supervisor read', ACCESS.READ],
    ['a supervisor write', ACCESS.WRITE],
    ['a user read', ACCESS.USER],
    ['a user write', ACCESS.USER | ACCESS.WRITE],
  ] as const;
  const levels = [
    [4, 'PML4E'],
    [3, 'PDPTE'],
    [2, 'PDE'],
    [1, 'PTE'],
  ] as const;

  for (const [level, name] of levels) {
    for (const [what, access] of accesses) {
      it(`${what} through a not-present ${name} raises #PF with P=0, the W/U bits of the access and CR2 = va`, () => {
        const pt = tables();
        pt.map4k(VA, 0x5000, RW | US);
        clearBits(pt.memory, pt.entryAddress(VA, level), PTE_LO.P);
        const va = VA + 0x10;
        const r = walk(pt, va, access);
        expect(r.ok).toBe(false);
        expect(r.fault()).toEqual({ vector: VECTOR_PF, errorCode: access & (PF_ERROR.W | PF_ERROR.U), cr2: va });
        expect(r.entryCount).toBe(5 - level);
      });
    }
  }

  it('a not-present fault on a fetch reports I with EFER.NXE and not without it', () => {
    const pt = tables();
    expect(walk(pt, VA, ACCESS.FETCH).errorCode).toBe(PF_ERROR.I);
    expect(walk(pt, VA, ACCESS.FETCH | ACCESS.USER, { nxe: false }).errorCode).toBe(PF_ERROR.U);
  });

  it('ignores every other bit of a not-present entry (no RSVD)', () => {
    const pt = tables();
    const leaf = pt.map4k(VA, 0x5000, RW);
    pt.memory.write32(leaf, 0xffff_fffe);
    pt.memory.write32(leaf + 4, 0xffff_ffff);
    expect(walk(pt, VA, ACCESS.WRITE, { nxe: false }).fault()).toEqual({
      vector: VECTOR_PF,
      errorCode: PF_ERROR.W,
      cr2: VA,
    });
  });

  it('faults with P=0 for an address nothing maps, in an empty address space', () => {
    const pt = tables();
    for (const va of [0, VA, toVirtual('0xffffffffffffffff')]) {
      expect(walk(pt, va).fault()).toEqual({ vector: VECTOR_PF, errorCode: 0, cr2: va });
    }
  });
});

describe('protection faults (P=1)', () => {
  const P = PF_ERROR.P;
  const W = PF_ERROR.W;
  const U = PF_ERROR.U;
  const I = PF_ERROR.I;

  function faultOf(flags: number, access: number, controls: Partial<PagingControls> = {}, hi = 0) {
    const pt = tables();
    pt.map4k(VA, 0x5000, flags, hi);
    return walk(pt, VA, access, controls).fault();
  }

  it('a user access to a supervisor page faults with P|U (and W for a write)', () => {
    expect(faultOf(RW, ACCESS.USER)).toEqual({ vector: VECTOR_PF, errorCode: P | U, cr2: VA });
    expect(faultOf(RW, ACCESS.USER | ACCESS.WRITE)?.errorCode).toBe(P | W | U);
  });

  it('a user access faults when any upper level is supervisor-only', () => {
    for (const level of [4, 3, 2] as const) {
      const pt = tables();
      pt.map4k(VA, 0x5000, RW | US);
      clearBits(pt.memory, pt.entryAddress(VA, level), US);
      expect(walk(pt, VA, ACCESS.USER).errorCode).toBe(P | U);
    }
  });

  it('a supervisor access to a user page is allowed (SMAP/SMEP are not modelled)', () => {
    expect(faultOf(RW | US, ACCESS.WRITE)).toBeUndefined();
  });

  it('a user write to a read-only page faults with P|W|U, whatever CR0.WP', () => {
    expect(faultOf(US, ACCESS.USER | ACCESS.WRITE)?.errorCode).toBe(P | W | U);
    expect(faultOf(US, ACCESS.USER | ACCESS.WRITE, { wp: false })?.errorCode).toBe(P | W | U);
    expect(faultOf(US, ACCESS.USER)).toBeUndefined();
  });

  it('a supervisor write to a read-only page faults with CR0.WP=1 and succeeds, setting D, with WP=0', () => {
    expect(faultOf(0, ACCESS.WRITE, { wp: true })).toEqual({ vector: VECTOR_PF, errorCode: P | W, cr2: VA });
    const pt = tables();
    const leaf = pt.map4k(VA, 0x5000, 0);
    const r = walk(pt, VA, ACCESS.WRITE, { wp: false });
    expect(r.ok).toBe(true);
    expect(r.writable).toBe(false);
    expect(pt.memory.read32(leaf) & D).toBe(D);
  });

  it('a write faults when any upper level is read-only', () => {
    for (const level of [4, 3, 2] as const) {
      const pt = tables();
      pt.map4k(VA, 0x5000, RW);
      clearBits(pt.memory, pt.entryAddress(VA, level), RW);
      expect(walk(pt, VA, ACCESS.WRITE).errorCode).toBe(P | W);
    }
  });

  it('a fetch from an NX page with EFER.NXE faults with P|I; a read of it does not', () => {
    expect(faultOf(RW, ACCESS.FETCH, {}, PTE_HI.NX)).toEqual({ vector: VECTOR_PF, errorCode: P | I, cr2: VA });
    expect(faultOf(RW | US, ACCESS.FETCH | ACCESS.USER, {}, PTE_HI.NX)?.errorCode).toBe(P | U | I);
    expect(faultOf(RW, ACCESS.READ, {}, PTE_HI.NX)).toBeUndefined();
    expect(faultOf(RW, ACCESS.FETCH, {}, 0)).toBeUndefined();
  });

  it('a fetch faults when XD is set at any upper level', () => {
    for (const level of [4, 3, 2] as const) {
      const pt = tables();
      pt.map4k(VA, 0x5000, RW);
      setBits(pt.memory, pt.entryAddress(VA, level), 0, PTE_HI.NX);
      expect(walk(pt, VA, ACCESS.FETCH).errorCode).toBe(P | I);
    }
  });

  it('a protection fault on a large page reports P=1 too', () => {
    const pt = tables();
    pt.map2m(VA_2M, 0x60_0000, 0);
    expect(walk(pt, VA_2M + 0x1000, ACCESS.USER).fault()).toEqual({
      vector: VECTOR_PF,
      errorCode: P | U,
      cr2: VA_2M + 0x1000,
    });
  });
});

describe('reserved bits (RSVD|P)', () => {
  const RSVD = PF_ERROR.RSVD | PF_ERROR.P;

  it('an address bit at or above MAXPHYADDR (46) in the final entry faults with RSVD|P and the access bits', () => {
    for (const bit of [46, 47, 51]) {
      const pt = tables();
      setBits(pt.memory, pt.map4k(VA, 0x5000, RW | US), 0, 1 << (bit - 32));
      expect(walk(pt, VA).fault()).toEqual({ vector: VECTOR_PF, errorCode: RSVD, cr2: VA });
      expect(walk(pt, VA, ACCESS.USER | ACCESS.WRITE).errorCode).toBe(RSVD | PF_ERROR.W | PF_ERROR.U);
    }
  });

  it('an address bit above MAXPHYADDR in an upper entry faults with RSVD|P', () => {
    for (const level of [4, 3, 2] as const) {
      const pt = tables();
      pt.map4k(VA, 0x5000, RW);
      setBits(pt.memory, pt.entryAddress(VA, level), 0, 1 << (46 - 32));
      expect(walk(pt, VA).errorCode).toBe(RSVD);
    }
  });

  it('address bits below MAXPHYADDR and the ignored bits 62:52 are not reserved', () => {
    const pt = tables();
    pt.map4k(VA, 2 ** 45, RW, 0x7ff0_0000);
    const r = walk(pt, VA + 1);
    expect(r.ok).toBe(true);
    expect(r.pa).toBe(2 ** 45 + 1);
  });

  it('the NX bit with EFER.NXE=0 is reserved, at any level', () => {
    for (const level of [4, 3, 2, 1] as const) {
      const pt = tables();
      pt.map4k(VA, 0x5000, RW);
      setBits(pt.memory, pt.entryAddress(VA, level), 0, PTE_HI.NX);
      expect(walk(pt, VA, ACCESS.READ, { nxe: false }).fault()).toEqual({
        vector: VECTOR_PF,
        errorCode: RSVD,
        cr2: VA,
      });
      expect(walk(pt, VA, ACCESS.READ, { nxe: true }).ok).toBe(true);
    }
  });

  it('PS in a PML4E is reserved', () => {
    const pt = tables();
    pt.map4k(VA, 0x5000, RW);
    setBits(pt.memory, pt.entryAddress(VA, 4), PS);
    expect(walk(pt, VA).errorCode).toBe(RSVD);
  });

  it('each of bits 20:13 in a 2 MiB PDE is reserved', () => {
    for (let bit = 13; bit <= 20; bit++) {
      const pt = tables();
      setBits(pt.memory, pt.map2m(VA_2M, 0x60_0000), 1 << bit);
      expect(walk(pt, VA_2M).fault()).toEqual({ vector: VECTOR_PF, errorCode: RSVD, cr2: VA_2M });
    }
  });

  it('each of bits 29:13 in a 1 GiB PDPTE is reserved', () => {
    for (let bit = 13; bit <= 29; bit++) {
      const pt = tables();
      setBits(pt.memory, pt.map1g(VA_1G, HUGE_PAGE_SIZE), 1 << bit);
      expect(walk(pt, VA_1G).errorCode).toBe(RSVD);
    }
  });

  it('bits 20:13 of a PDE that points to a page table are address bits, not reserved', () => {
    const pt = new PageTables(new PhysicalMemory(64 * MiB), 0x1f_c000); // the page table lands at 0x1ff000
    pt.map4k(VA, 0x5000, RW);
    const pde = pt.memory.read32(pt.entryAddress(VA, 2));
    expect(pde & 0x001f_e000).not.toBe(0);
    expect(walk(pt, VA).pa).toBe(0x5000);
  });

  it('a table pointer past installed memory reads all ones and faults with RSVD|P', () => {
    const pt = new PageTables(new PhysicalMemory(4 * MiB));
    pt.map4k(VA, 0x5000, RW);
    const pde = pt.entryAddress(VA, 2);
    pt.memory.write32(pde, (8 * MiB) | PTE_LO.P | RW);
    expect(walk(pt, VA).errorCode).toBe(RSVD);
  });

  it('a reserved-bit fault on a fetch with NXE also reports I', () => {
    const pt = tables();
    setBits(pt.memory, pt.map4k(VA, 0x5000, RW), 0, 1 << (46 - 32));
    expect(walk(pt, VA, ACCESS.FETCH).errorCode).toBe(RSVD | PF_ERROR.I);
  });
});

describe('non-canonical addresses', () => {
  const nonCanonical = [toVirtual(0x0000_8000_0000_0000n), toVirtual(0xffff_7fff_ffff_f000n), -PAGE_SIZE, 2 ** 48];

  it('raise #GP(0) without reading any page-table entry', () => {
    const pt = tables();
    pt.map4k(VA, 0x5000, RW | US);
    for (const va of nonCanonical) {
      for (const access of [ACCESS.READ, ACCESS.WRITE, ACCESS.USER, ACCESS.FETCH]) {
        const footprint = new Footprint();
        const r = walkPageTables(pt.memory, pt.controls(), va, access, new WalkResult(), footprint);
        expect(r.fault()).toEqual({ vector: VECTOR_GP, errorCode: 0 });
        expect(r.entryCount).toBe(0);
        expect(footprint.pteReads).toEqual([]);
      }
    }
  });

  it('raise #SS(0) for a stack access', () => {
    const pt = tables();
    for (const va of nonCanonical) {
      expect(walk(pt, va, ACCESS.STACK | ACCESS.WRITE).fault()).toEqual({ vector: VECTOR_SS, errorCode: 0 });
      expect(walk(pt, va, ACCESS.STACK).fault()).toEqual({ vector: VECTOR_SS, errorCode: 0 });
    }
  });

  it('a stack access to an unmapped canonical address is still a #PF', () => {
    const pt = tables();
    expect(walk(pt, VA, ACCESS.STACK | ACCESS.WRITE).fault()).toEqual({
      vector: VECTOR_PF,
      errorCode: PF_ERROR.W,
      cr2: VA,
    });
  });
});

describe('footprint', () => {
  it('records every entry read and the A/D updates it writes', () => {
    const pt = tables();
    pt.map4k(VA, 0x5000, RW);
    const used = entriesOf(pt, VA);
    const footprint = new Footprint();
    const run = (access: number) => {
      footprint.clear();
      walkPageTables(pt.memory, pt.controls(), VA, access, new WalkResult(), footprint);
      return { reads: [...footprint.pteReads], writes: [...footprint.pteWrites] };
    };
    expect(run(ACCESS.READ)).toEqual({ reads: used, writes: used });
    expect(run(ACCESS.READ)).toEqual({ reads: used, writes: [] });
    expect(run(ACCESS.WRITE)).toEqual({ reads: used, writes: [used[3]] });
    expect(run(ACCESS.WRITE)).toEqual({ reads: used, writes: [] });
  });

  it('records the entries read by a walk that faults, up to the faulting one', () => {
    const pt = tables();
    pt.map4k(VA, 0x5000, RW);
    clearBits(pt.memory, pt.entryAddress(VA, 2), PTE_LO.P);
    const footprint = new Footprint();
    walkPageTables(pt.memory, pt.controls(), VA, ACCESS.READ, new WalkResult(), footprint);
    expect(footprint.pteReads).toEqual(entriesOf(pt, VA, [4, 3, 2]));
    for (const entry of footprint.pteWrites) expect(entriesOf(pt, VA, [4, 3])).toContain(entry);
  });

  it('a walk changes nothing in memory but the A and D bits it sets', () => {
    const pt = tables();
    pt.map4k(VA, 0x5000, RW);
    const before = entriesOf(pt, VA).map((e) => pt.memory.read32(e));
    const frames = pt.memory.materialisedFrames();
    walk(pt, VA, ACCESS.WRITE);
    const after = entriesOf(pt, VA).map((e) => pt.memory.read32(e));
    expect(after.map((v, i) => v ^ before[i]!)).toEqual([A, A, A, A | D]);
    expect(pt.memory.materialisedFrames()).toEqual(frames);
  });
});

describe('random page tables', () => {
  type Mapping = { va: number; pa: number; size: number };
  // Each PML4 slot holds mappings of one size only (slot % 3), so the helper never mixes sizes in one table.
  const region = (kind: number, sizeShift: number, pageSize: number, paFrames: number) =>
    fc
      .record({
        slot: fc.oneof(fc.nat({ max: 2 }), fc.nat({ max: 169 })),
        page: fc.oneof(fc.nat({ max: 15 }), fc.nat({ max: 2 ** (39 - sizeShift) - 1 })),
        frame: fc.nat({ max: paFrames - 1 }),
      })
      .map(
        ({ slot, page, frame }): Mapping => ({
          va: (slot * 3 + kind) * 2 ** 39 + page * pageSize,
          pa: frame * pageSize,
          size: pageSize,
        }),
      );
  const mapping = fc.oneof(
    region(0, 12, PAGE_SIZE, 2 ** 34),
    region(1, 21, LARGE_PAGE_SIZE, 2 ** 25),
    region(2, 30, HUGE_PAGE_SIZE, 2 ** 16),
  );
  const access = fc.constantFrom(
    ACCESS.READ,
    ACCESS.WRITE,
    ACCESS.USER,
    ACCESS.USER | ACCESS.WRITE,
    ACCESS.FETCH,
    ACCESS.STACK,
  );

  it('walkPageTables translates every mapped va to the pa it was mapped to and faults with P=0 elsewhere', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(mapping, { selector: (m) => m.va, maxLength: 30 }),
        fc.array(fc.tuple(fc.nat({ max: 29 }), fc.double({ min: 0, max: 1, noNaN: true }), access), {
          maxLength: 30,
        }),
        fc.array(fc.tuple(fc.nat({ max: 2 ** 48 - 1 }), access), { maxLength: 20 }),
        (mappings, mappedProbes, randomProbes) => {
          const pt = tables();
          for (const { va, pa, size } of mappings) {
            if (size === PAGE_SIZE) pt.map4k(va, pa, RW | US);
            else if (size === LARGE_PAGE_SIZE) pt.map2m(va, pa, RW | US);
            else pt.map1g(va, pa, RW | US);
          }
          const probes: [number, number][] = [...randomProbes];
          for (const [i, fraction, kind] of mappedProbes) {
            const m = mappings[i % Math.max(1, mappings.length)];
            if (m) probes.push([m.va + Math.min(m.size - 1, Math.floor(fraction * m.size)), kind]);
            if (m) probes.push([m.va + m.size, kind], [m.va - 1, kind]);
          }
          for (const [va, kind] of probes) {
            if (va < 0 || va >= 2 ** 48) continue;
            const r = walk(pt, va, kind);
            const m = mappings.find((x) => va >= x.va && va < x.va + x.size);
            if (m) {
              expect(r.ok).toBe(true);
              expect(r.pa).toBe(m.pa + (va - m.va));
              expect(r.pageSize).toBe(m.size);
            } else {
              expect(r.ok).toBe(false);
              expect(r.vector).toBe(VECTOR_PF);
              expect(r.errorCode & (PF_ERROR.P | PF_ERROR.RSVD)).toBe(0);
              expect(r.cr2).toBe(va);
            }
          }
        },
      ),
    );
  });

  it('the walker never throws, whatever the memory, controls, address and access', () => {
    const frames = [0x1000, 0x2000, 0x3000, 0x4000];
    const word = fc.oneof(
      fc.nat({ max: 0xffff_ffff }),
      fc.tuple(fc.constantFrom(...frames), fc.nat({ max: 0xfff })).map(([frame, flags]) => frame | flags | 1),
    );
    const entry = fc.record({
      frame: fc.constantFrom(...frames),
      index: fc.nat({ max: 3 }),
      lo: word,
      hi: fc.oneof(fc.constant(0), fc.nat({ max: 0xffff_ffff }), fc.constant(0x8000_0000)),
    });
    const index = fc.nat({ max: 3 });
    const va = fc.oneof(
      fc
        .tuple(index, index, index, index, fc.nat({ max: 0xfff }))
        .map(([a, b, c, d, offset]) => a * 2 ** 39 + b * 2 ** 30 + c * 2 ** 21 + d * 2 ** 12 + offset),
      fc.double(),
      fc.nat({ max: 2 ** 49 }),
    );
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 40 }),
        fc.record({ cr3: fc.oneof(fc.constantFrom(...frames), fc.double()), wp: fc.boolean(), nxe: fc.boolean() }),
        va,
        fc.nat({ max: 0x1ff }),
        (entries, controls, address, accessBits) => {
          const memory = new PhysicalMemory(0x10_0000);
          for (const e of entries) {
            memory.write32(e.frame + e.index * 8, e.lo);
            memory.write32(e.frame + e.index * 8 + 4, e.hi);
          }
          const r = walkPageTables(memory, controls, address, accessBits);
          if (r.ok) {
            expect([PAGE_SIZE, LARGE_PAGE_SIZE, HUGE_PAGE_SIZE]).toContain(r.pageSize);
            expect(r.pa - r.pageBase).toBeGreaterThanOrEqual(0);
            expect(r.pa - r.pageBase).toBeLessThan(r.pageSize);
          } else {
            expect([VECTOR_SS, VECTOR_GP, VECTOR_PF]).toContain(r.vector);
            if (r.vector === VECTOR_PF) expect(r.cr2).toBe(address);
            else expect(r.errorCode).toBe(0);
          }
        },
      ),
    );
  });
});
