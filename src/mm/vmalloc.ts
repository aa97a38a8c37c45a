import type { Assembler } from '../cpu/assembler.ts';
import { LARGE_PAGE_SIZE, PAGE_SIZE } from '../mmu/address.ts';
import { describeHex, InputError, requireInteger, requireOptions } from '../mmu/input-error.ts';
import { PTE_LO } from '../mmu/pte.ts';
import { MAX_ORDER, MIGRATETYPE } from './buddy.ts';
import { type Kernel, LOCK, OWNER } from './kernel.ts';
import {
  clearEntry,
  type KernelProgram,
  PAGE_KERNEL_HI,
  PAGE_KERNEL_LO,
  setEntry,
  walkToEntry,
} from './kernel-page-tables.ts';
import { flushTlbKernelRange } from './smp.ts';
import type { BackingBlock } from './vmap-areas.ts';

// vmalloc and vfree as kernel programs (mm/vmalloc.c __vmalloc_node_range, vm_area_alloc_pages, vmap_pages_range,
// __vunmap). The backing policy is the kernel's:
// - order0: one order-0 page per page (Linux before 5.13, and the 2018 baseline);
// - high-order: for the pages still needed, try order ilog2(remaining) and step down to 0, never reclaiming or
//   compacting for it (the 2018 patch's __GFP_NORETRY);
// - huge: 2 MiB blocks mapped by PMD entries when the size is at least 2 MiB (vmalloc_huge, 5.13+), falling back
//   to order-0 pages when an order-9 block cannot be had.
// Pages are allocated first, then mapped, every entry with stores; a vmalloc that cannot be satisfied undoes what
// it did and returns 0 (NULL), it does not throw. Page tables are edited in init_mm.

const PMD_ORDER = 9;

function ilog2(n: number): number {
  return 31 - Math.clz32(n);
}

/** Where in the vmalloc space an area may go (__vmalloc_node_range's start and end); default: all of it. */
export interface VmallocRange {
  readonly start?: number;
  readonly end?: number;
  /** Alignment of the area (THREAD_ALIGN for a VMAP stack); default a page, 2 MiB for a huge area. */
  readonly align?: number;
}

/**
 * Checks a vmalloc request before its first step, so a bad one is refused with nothing reserved. A size that is a
 * number but cannot be had (0, negative, beyond the vmalloc space) is not an error: vmalloc returns NULL for it, as
 * __vmalloc_node_range does.
 */
function checkRequest(kernel: Kernel, size: unknown, range: unknown): void {
  requireInteger(size, 'vmalloc size', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const r = requireOptions<VmallocRange>(range, 'vmalloc range', ['start', 'end', 'align']);
  const { start: low, end: high } = kernel.vmap;
  const start = r.start === undefined ? low : requireInteger(r.start, 'vmalloc range start', low, high - PAGE_SIZE);
  if (r.end !== undefined) requireInteger(r.end, 'vmalloc range end', start + PAGE_SIZE, high);
  if (r.align !== undefined) {
    const align = requireInteger(r.align, 'vmalloc range align', PAGE_SIZE, high - low);
    if (2 ** Math.round(Math.log2(align)) !== align) {
      throw new InputError(`vmalloc range align ${describeHex(align)} is not a power of two`);
    }
  }
}

/** Allocates `size` bytes of virtually contiguous kernel memory; returns its address, or 0 (NULL). */
export function* vmalloc(x: Assembler, kernel: Kernel, size: number, range?: VmallocRange): KernelProgram {
  checkRequest(kernel, size, range);
  if (size <= 0 || size > kernel.vmap.end - kernel.vmap.start) return 0;
  const huge = kernel.policy === 'huge' && size >= LARGE_PAGE_SIZE;
  const bytes = huge ? Math.ceil(size / LARGE_PAGE_SIZE) * LARGE_PAGE_SIZE : Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
  const align = range?.align ?? (huge ? LARGE_PAGE_SIZE : PAGE_SIZE);
  const start = yield x.atomic(LOCK.VMAP_AREA, () => kernel.vmap.reserve(bytes, align, range?.start, range?.end));
  if (start < 0) return 0;
  let blocks = huge ? yield* allocBlocks(x, kernel, start, bytes, 'huge') : undefined;
  const isHuge = blocks !== undefined;
  if (blocks === undefined)
    blocks = yield* allocBlocks(x, kernel, start, bytes, kernel.policy === 'huge' ? 'order0' : kernel.policy);
  if (blocks === undefined) {
    yield x.atomic(LOCK.VMAP_AREA, () => {
      kernel.vmap.release(start);
      return 0;
    });
    return 0;
  }
  const backing = blocks;
  yield x.atomic(LOCK.VMAP_AREA, () => {
    const area = kernel.vmap.find(start)!;
    area.blocks = backing;
    area.huge = isHuge;
    return 0;
  });
  if (!(yield* mapArea(x, kernel, backing, isHuge))) {
    yield* vfree(x, kernel, start);
    return 0;
  }
  return start;
}

/**
 * Allocates the frames for `bytes` at `start` by `how`; returns the blocks, or undefined after freeing what it got
 * when the zone cannot supply them.
 */
function* allocBlocks(
  x: Assembler,
  kernel: Kernel,
  start: number,
  bytes: number,
  how: 'order0' | 'high-order' | 'huge',
): KernelProgram<BackingBlock[] | undefined> {
  const blocks: BackingBlock[] = [];
  let done = 0;
  while (done < bytes) {
    const remaining = (bytes - done) / PAGE_SIZE;
    let order = how === 'huge' ? PMD_ORDER : how === 'high-order' ? Math.min(ilog2(remaining), MAX_ORDER) : 0;
    let pfn = -1;
    for (;;) {
      const o = order;
      pfn = yield x.atomic(LOCK.ZONE, () => kernel.zone.alloc(o, MIGRATETYPE.UNMOVABLE, OWNER.VMALLOC));
      if (pfn >= 0 || how !== 'high-order' || order === 0) break;
      order--; // never reclaim or compact for a high order: step down
    }
    if (pfn < 0) {
      yield* freeBlocks(x, kernel, blocks);
      return undefined;
    }
    blocks.push({ va: start + done, pfn, order });
    done += PAGE_SIZE << order;
  }
  return blocks;
}

function* freeBlocks(x: Assembler, kernel: Kernel, blocks: readonly BackingBlock[]): KernelProgram<void> {
  for (const b of blocks) {
    yield x.atomic(LOCK.ZONE, () => {
      kernel.zone.freeBlock(b.pfn, b.order);
      return 0;
    });
  }
}

/** Maps every page of the blocks (PMD leaves for a huge area); false when a page table could not be allocated. */
function* mapArea(
  x: Assembler,
  kernel: Kernel,
  blocks: readonly BackingBlock[],
  huge: boolean,
): KernelProgram<boolean> {
  for (const b of blocks) {
    const step = huge ? LARGE_PAGE_SIZE : PAGE_SIZE;
    for (let off = 0; off < PAGE_SIZE << b.order; off += step) {
      const entry = yield* walkToEntry(x, kernel, kernel.initMm, b.va + off, huge ? 2 : 1, true);
      if (entry < 0) return false;
      yield* setEntry(x, entry, b.pfn * PAGE_SIZE + off, PAGE_KERNEL_LO | (huge ? PTE_LO.PS : 0), PAGE_KERNEL_HI);
    }
  }
  return true;
}

/**
 * Frees an area vmalloc returned: clears its entries, flushes this CPU's TLB for each page (the SMP issue brings
 * the shootdown), frees each block with its order, and releases the area. An address that is no area's start is
 * Linux's WARN ("Trying to vfree() nonexistent vm area"): nothing is freed, and the result is -1.
 */
export function* vfree(x: Assembler, kernel: Kernel, addr: number): KernelProgram {
  let blocks: readonly BackingBlock[] = [];
  let huge = false;
  const found = yield x.atomic(LOCK.VMAP_AREA, () => {
    const area = kernel.vmap.find(addr);
    if (!area) return 0;
    blocks = area.blocks;
    huge = area.huge;
    return 1;
  });
  if (found === 0) return -1;
  for (const b of blocks) {
    const step = huge ? LARGE_PAGE_SIZE : PAGE_SIZE;
    for (let off = 0; off < PAGE_SIZE << b.order; off += step) {
      const entry = yield* walkToEntry(x, kernel, kernel.initMm, b.va + off, huge ? 2 : 1, false);
      if (entry < 0) continue; // never mapped (a vmalloc undoing itself)
      yield* clearEntry(x, entry);
    }
  }
  // vunmap's flush_tlb_kernel_range() on every CPU, waiting for all, before the frames go back to the zone.
  const end = blocks.reduce((last, b) => Math.max(last, b.va + (PAGE_SIZE << b.order)), addr);
  yield* flushTlbKernelRange(x, kernel, addr, end);
  yield* freeBlocks(x, kernel, blocks);
  yield x.atomic(LOCK.VMAP_AREA, () => {
    kernel.vmap.release(addr);
    return 0;
  });
  return 0;
}
