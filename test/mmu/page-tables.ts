// Test-only builder of x86-64 4-level page tables in a PhysicalMemory. Table frames come from a bump allocator;
// entries are written as two 32-bit halves, the way the walker reads them. Intermediate entries are P|RW|US so the
// leaf decides the permissions unless a test edits an upper entry itself (see entryAddress).
import { HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE } from '../../src/mmu/address.ts';
import type { PhysicalMemory } from '../../src/mmu/physical-memory.ts';
import { entryFrame, PTE_LO } from '../../src/mmu/pte.ts';
import type { PagingControls } from '../../src/mmu/walker.ts';

export type Level = 1 | 2 | 3 | 4;
const TABLE_FLAGS = PTE_LO.P | PTE_LO.RW | PTE_LO.US;
const TWO_32 = 2 ** 32;

export class PageTables {
  readonly cr3: number;
  private nextFrame: number;

  constructor(
    readonly memory: PhysicalMemory,
    firstTableFrame = 0x10_0000,
  ) {
    this.nextFrame = firstTableFrame;
    this.cr3 = this.allocateTable();
  }

  /** A fresh zeroed table frame (memory is zero until written). */
  allocateTable(): number {
    const pa = this.nextFrame;
    this.nextFrame += PAGE_SIZE;
    return pa;
  }

  /** Physical address of the entry for `va` at `level`, creating the tables above it as needed. */
  entryAddress(va: number, level: Level): number {
    let table = this.cr3;
    for (let l = 4; l > level; l--) {
      const entry = table + index(va, l as Level) * 8;
      let lo = this.memory.read32(entry);
      let hi = this.memory.read32(entry + 4);
      if ((lo & PTE_LO.P) === 0) {
        const next = this.allocateTable();
        lo = (next % TWO_32) | TABLE_FLAGS;
        hi = Math.floor(next / TWO_32);
        this.memory.write32(entry, lo);
        this.memory.write32(entry + 4, hi);
      }
      table = entryFrame(lo, hi);
    }
    return table + index(va, level) * 8;
  }

  /** Maps a 4 KiB page; P is always set, `flags` adds low-half bits, `hi` adds high-half bits (e.g. PTE_HI.NX). */
  map4k(va: number, pa: number, flags: number = PTE_LO.RW, hi = 0): number {
    return this.writeLeaf(va, 1, pa, flags, hi);
  }

  map2m(va: number, pa: number, flags: number = PTE_LO.RW, hi = 0): number {
    return this.writeLeaf(va, 2, pa, flags | PTE_LO.PS, hi);
  }

  map1g(va: number, pa: number, flags: number = PTE_LO.RW, hi = 0): number {
    return this.writeLeaf(va, 3, pa, flags | PTE_LO.PS, hi);
  }

  /** Paging controls for these tables: CR0.WP=1 and EFER.NXE=1 unless overridden. */
  controls(overrides: Partial<PagingControls> = {}): PagingControls {
    return { cr3: this.cr3, wp: true, nxe: true, ...overrides };
  }

  private writeLeaf(va: number, level: Level, pa: number, flags: number, hi: number): number {
    const size = level === 1 ? PAGE_SIZE : level === 2 ? LARGE_PAGE_SIZE : HUGE_PAGE_SIZE;
    if (va % size !== 0 || pa % size !== 0) throw new Error(`map: va ${va} / pa ${pa} not aligned to ${size}`);
    const entry = this.entryAddress(va, level);
    this.memory.write32(entry, (pa % TWO_32) | flags | PTE_LO.P);
    this.memory.write32(entry + 4, Math.floor(pa / TWO_32) | hi);
    return entry;
  }
}

function index(va: number, level: Level): number {
  return Math.floor(va / 2 ** (3 + 9 * level)) % 512;
}
