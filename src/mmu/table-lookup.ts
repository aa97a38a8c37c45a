import type { PhysicalMemory } from './physical-memory.ts';
import { entryFrame, PTE_LO, tableIndex } from './pte.ts';

// Reading the page tables as they stand, with no side effects: no TLB, no A/D bits, no faults. For set-up code,
// tests and readers (which entry maps this address, what does this frame hold), never for a CPU's accesses, which
// go through walkPageTables.

/** The entries on the way to `va`, from the PML4E down. */
export interface TableLookup {
  /** Physical address of the entry used at each level, indexed by level (4 = PML4E .. 1 = PTE); -1 if not reached. */
  readonly entries: readonly number[];
  /** The level of the last entry read: the leaf, or the first entry that was not present. */
  readonly level: 1 | 2 | 3 | 4;
  /** Whether every entry down to a leaf was present. */
  readonly present: boolean;
  /** Size of the leaf's page (4 KiB, 2 MiB, 1 GiB) when present. */
  readonly pageSize: number;
  /** Physical address of `va` when present, else -1. */
  readonly pa: number;
}

const PAGE_SIZE_AT_LEVEL = [0, 4096, 2 ** 21, 2 ** 30];

/** Follows the tables under `root` (a CR3 value; its low 12 bits are ignored) for the canonical address `va`. */
export function lookupTables(memory: PhysicalMemory, root: number, va: number): TableLookup {
  const entries = [-1, -1, -1, -1, -1];
  let table = Math.floor(root / 4096) * 4096;
  for (let level = 4; level >= 1; level--) {
    const entry = table + tableIndex(va, level as 1 | 2 | 3 | 4) * 8;
    entries[level] = entry;
    const lo = memory.read32(entry);
    const hi = memory.read32(entry + 4);
    const l = level as 1 | 2 | 3 | 4;
    if ((lo & PTE_LO.P) === 0) return { entries, level: l, present: false, pageSize: 0, pa: -1 };
    if (level === 1 || (level <= 3 && (lo & PTE_LO.PS) !== 0)) {
      const pageSize = PAGE_SIZE_AT_LEVEL[level]!;
      const base = Math.floor(entryFrame(lo, hi) / pageSize) * pageSize;
      return { entries, level: l, present: true, pageSize, pa: base + (va % pageSize) };
    }
    table = entryFrame(lo, hi);
  }
  return { entries, level: 1, present: false, pageSize: 0, pa: -1 };
}
