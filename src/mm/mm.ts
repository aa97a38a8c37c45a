import type { Assembler } from '../cpu/assembler.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { MIGRATETYPE } from './buddy.ts';
import { type Kernel, LOCK, OWNER } from './kernel.ts';
import { direct, type KernelProgram } from './kernel-page-tables.ts';

// Process address spaces (arch/x86/mm/pgtable.c pgd_alloc / pgd_ctor): a new top-level table whose kernel half
// (entries 256..511, KERNEL_PGD_BOUNDARY) is a copy of init_mm's at the time it is made. A top-level entry that
// init_mm gains later is missing from it until vmalloc_fault copies it (sync 'lazy-fault'); with
// 'preallocated' every vmalloc entry existed at boot, so the copy already has it.

const HALF = PAGE_SIZE / 2;

/** pgd_alloc(): returns the new PGD's physical address (the CR3 value of its mm), or -1 (NULL). */
export function* mmCreate(x: Assembler, kernel: Kernel): KernelProgram {
  const pfn = yield x.atomic(LOCK.ZONE, () => kernel.zone.alloc(0, MIGRATETYPE.UNMOVABLE, OWNER.PAGE_TABLE));
  if (pfn < 0) return -1;
  const pgd = pfn * PAGE_SIZE;
  // The user half starts empty; the kernel half is init_mm's, copied entry by entry (clone_pgd_range()).
  yield x.fill(direct(pgd), HALF);
  yield x.copy(direct(pgd + HALF), direct(kernel.initMm + HALF), HALF);
  return pgd;
}
