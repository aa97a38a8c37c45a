import type { Assembler } from '../cpu/assembler.ts';
import { LAYOUT, PAGE_SIZE } from '../mmu/address.ts';
import { entryFrame, PTE_HI, PTE_LO, tableIndex } from '../mmu/pte.ts';
import { MIGRATETYPE } from './buddy.ts';
import { type Kernel, LOCK, OWNER } from './kernel.ts';
import type { KernelProgram } from './kernel-program.ts';

// Kernel page-table editing as programs (mm/memory.c, arch/x86/include/asm/pgalloc.h): every entry is read and
// written with instructions through the direct map, so another CPU can observe each intermediate state. Entries are
// 8 bytes written as two 4-byte halves: a new entry gets its high half first and the low half (with P) last, and a
// cleared one loses P first, so no CPU ever sees a present entry with a stale half.

export type { KernelProgram };

const TABLE_FLAGS = PTE_LO.P | PTE_LO.RW | PTE_LO.A | PTE_LO.D; // _KERNPG_TABLE
/** PAGE_KERNEL: present, writable, accessed, dirty, global; NX in the high half. */
export const PAGE_KERNEL_LO = PTE_LO.P | PTE_LO.RW | PTE_LO.A | PTE_LO.D | PTE_LO.G;
export const PAGE_KERNEL_HI = PTE_HI.NX;

const TWO_32 = 2 ** 32;

/** The direct-map address of physical address `pa`: how kernel code reaches page tables and frames. */
export function direct(pa: number): number {
  return LAYOUT.directMap + pa;
}

/**
 * Walks from the top-level table at `pgd` to the entry for `va` at `level` (1 = PTE, 2 = PMD), creating missing
 * tables on the way when `create` (a zeroed frame from the zone, published with cmpxchg so that two CPUs racing to
 * populate one entry agree; the loser frees its frame, as pud_populate under page_table_lock does). Returns the
 * entry's physical address, or -1 when a table is missing (and `create` is off, or the zone had no frame), or a
 * large page covers `va` above `level`.
 */
export function* walkToEntry(
  x: Assembler,
  kernel: Kernel,
  pgd: number,
  va: number,
  level: 1 | 2,
  create: boolean,
): KernelProgram {
  let table = pgd;
  for (let l = 4; l > level; l--) {
    const entry = table + tableIndex(va, l as 2 | 3 | 4) * 8;
    let lo = yield x.load(direct(entry), 4);
    if ((lo & PTE_LO.P) === 0) {
      if (!create) return -1;
      const pfn = yield x.atomic(LOCK.ZONE, () => kernel.zone.alloc(0, MIGRATETYPE.UNMOVABLE, OWNER.PAGE_TABLE));
      if (pfn < 0) return -1;
      const frame = pfn * PAGE_SIZE;
      yield x.clearPage(direct(frame));
      // Tables come from the zone, below 4 GiB here, so the high half stays 0 and the low half publishes the entry.
      const old = yield x.cmpxchg(direct(entry), 4, lo, (frame | TABLE_FLAGS) >>> 0);
      if (old === lo) lo = (frame | TABLE_FLAGS) >>> 0;
      else {
        yield x.atomic(LOCK.ZONE, () => {
          kernel.zone.freeBlock(pfn, 0);
          return 0;
        });
        lo = old;
      }
    } else if ((lo & PTE_LO.PS) !== 0) {
      return -1;
    }
    const hi = yield x.load(direct(entry + 4), 4);
    table = entryFrame(lo, hi);
  }
  return table + tableIndex(va, level) * 8;
}

/** Writes a present leaf entry at `entry` mapping physical `pa` (high half first, then the low half with P). */
export function* setEntry(x: Assembler, entry: number, pa: number, lo: number, hi: number): KernelProgram<void> {
  yield x.store(direct(entry + 4), 4, (hi | Math.floor(pa / TWO_32)) >>> 0);
  yield x.store(direct(entry), 4, (lo | (pa % TWO_32)) >>> 0);
}

/** Clears the entry at `entry`: the low half (P) first, then the high half. */
export function* clearEntry(x: Assembler, entry: number): KernelProgram<void> {
  yield x.store(direct(entry), 4, 0);
  yield x.store(direct(entry + 4), 4, 0);
}
