import type { Assembler } from '../cpu/assembler.ts';
import { LARGE_PAGE_SIZE, PAGE_SIZE } from '../mmu/address.ts';
import { describeHex, InputError, requireInteger, requireOptions } from '../mmu/input-error.ts';
import { PTE_LO } from '../mmu/pte.ts';
import { allocPages, allocPagesBulk } from './alloc-pages.ts';
import { GFP, GFP_KERNEL } from './gfp.ts';
import { type Kernel, LOCK, OWNER } from './kernel.ts';
import {
  clearEntry,
  type KernelProgram,
  PAGE_KERNEL_HI,
  PAGE_KERNEL_LO,
  setEntry,
  walkToEntry,
} from './kernel-page-tables.ts';
import { MIGRATION_LOCK_WORD } from './migrate.ts';
import { MAX_ORDER } from './mmzone.ts';
import { lockWord, spinLock, spinUnlock } from './smp.ts';
import { freeVmapAreaNoflush, purgeVmapAreaLazy } from './vmalloc-purge.ts';

// vmalloc and vfree as kernel programs (mm/vmalloc.c, Linux 6.6: __vmalloc_node_range(), __vmalloc_area_node(),
// vm_area_alloc_pages(), vmap_pages_range(), vfree()). The backing policy is the kernel's:
// - order0: order-0 pages, the bulk allocator first (100 at a time), then one by one (Linux as it is);
// - high-order: for the pages still needed, order ilog2(remaining) stepping down to 0, the attempts above order 0
//   with __GFP_NORETRY | __GFP_NOWARN (the 2018 proposal, and the 2025 "request large order pages" patch);
// - huge: vmap_allow_huge: callers that pass VM_ALLOW_HUGE_VMAP (vmalloc_huge(), 5.18+) get 2 MiB pages mapped by
//   PMD entries when the area is 2 MiB or more; everyone else gets order-0 pages;
// - high-order+migratable: as high-order, with __GFP_MOVABLE: the pages are grouped in MOVABLE pageblocks and
//   compaction may migrate them (the kernel's migration protocol), which is the point of making them movable.
// A high-order block is split into order-0 pages (split_page()), so vfree frees page by page. If a huge area
// cannot be backed, the area is given back and the real size reserved again with small pages. vfree unmaps
// without flushing and frees the pages at once; the range waits on the lazy list until lazy_max_pages() of them
// are pending, then one purge flushes every CPU's TLB for all of them (vmalloc-purge.ts).

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
  /** VM_ALLOW_HUGE_VMAP: the caller accepts PMD mappings (vmalloc_huge()); only the `huge` policy gives them. */
  readonly allowHuge?: boolean;
}

export { emptyVmallocStats, type VmallocStats } from './vmalloc-stats.ts';

/**
 * Checks a vmalloc request before its first step, so a bad one is refused with nothing reserved. A size that is a
 * number but cannot be had (0, negative, beyond the vmalloc space) is not an error: vmalloc returns NULL for it, as
 * __vmalloc_node_range does.
 */
function checkRequest(kernel: Kernel, size: unknown, range: unknown): void {
  requireInteger(size, 'vmalloc size', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const r = requireOptions<VmallocRange>(range, 'vmalloc range', ['start', 'end', 'align', 'allowHuge']);
  const { start: low, end: high } = kernel.vmap;
  const start = r.start === undefined ? low : requireInteger(r.start, 'vmalloc range start', low, high - PAGE_SIZE);
  if (r.end !== undefined) requireInteger(r.end, 'vmalloc range end', start + PAGE_SIZE, high);
  if (r.align !== undefined) {
    const align = requireInteger(r.align, 'vmalloc range align', PAGE_SIZE, high - low);
    if (2 ** Math.round(Math.log2(align)) !== align) {
      throw new InputError(`vmalloc range align ${describeHex(align)} is not a power of two`);
    }
  }
  if (r.allowHuge !== undefined && typeof r.allowHuge !== 'boolean') {
    throw new InputError(`vmalloc range allowHuge ${String(r.allowHuge)} must be true or false`);
  }
}

/** The GFP flags vmalloc's pages are allocated with under the kernel's policy. */
function vmallocGfp(kernel: Kernel): number {
  return kernel.policy === 'high-order+migratable' ? GFP_KERNEL | GFP.MOVABLE : GFP_KERNEL;
}

/** vmalloc_huge(): vmalloc with VM_ALLOW_HUGE_VMAP. */
export function vmallocHuge(x: Assembler, kernel: Kernel, size: number, range?: VmallocRange): KernelProgram {
  return vmalloc(x, kernel, size, { ...range, allowHuge: true });
}

/** Allocates `size` bytes of virtually contiguous kernel memory; returns its address, or 0 (NULL). */
export function* vmalloc(x: Assembler, kernel: Kernel, size: number, range?: VmallocRange): KernelProgram {
  checkRequest(kernel, size, range);
  yield x.atomic(LOCK.STATS, () => {
    kernel.vmallocStats.calls++;
    return 0;
  });
  if (size <= 0 || size > kernel.vmap.end - kernel.vmap.start) return yield* failed(x, kernel);
  const realSize = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
  const realAlign = range?.align ?? PAGE_SIZE;
  // vmap_allow_huge && VM_ALLOW_HUGE_VMAP && size >= PMD_SIZE: a PMD shift, the size and alignment rounded to it.
  let huge = kernel.policy === 'huge' && range?.allowHuge === true && realSize >= LARGE_PAGE_SIZE;
  for (;;) {
    const bytes = huge ? Math.ceil(realSize / LARGE_PAGE_SIZE) * LARGE_PAGE_SIZE : realSize;
    const align = huge ? Math.max(realAlign, LARGE_PAGE_SIZE) : realAlign;
    const start = yield* reserve(x, kernel, bytes, align, range);
    if (start < 0) return yield* failed(x, kernel);
    const backed = yield* vmAreaAllocPages(x, kernel, start, bytes, huge ? PMD_ORDER : 0);
    if (backed && (yield* mapArea(x, kernel, start, huge))) return start;
    // __vmalloc_area_node() failed: __vfree() what it got; a huge attempt retries with the real size.
    yield* vfreeArea(x, kernel, start);
    if (!huge) return yield* failed(x, kernel);
    huge = false;
    yield x.atomic(LOCK.STATS, () => {
      kernel.vmallocStats.hugeFallbacks++;
      return 0;
    });
  }
}

function* failed(x: Assembler, kernel: Kernel): KernelProgram {
  yield x.atomic(LOCK.STATS, () => {
    kernel.vmallocStats.failures++;
    return 0;
  });
  return 0;
}

/** alloc_vmap_area(): on failure, purge the lazy areas and try once more. */
function* reserve(x: Assembler, kernel: Kernel, bytes: number, align: number, range?: VmallocRange): KernelProgram {
  const take = () => kernel.vmap.reserve(bytes, align, range?.start, range?.end);
  const start: number = yield x.atomic(LOCK.VMAP_AREA, take);
  if (start >= 0) return start;
  const lazy: number = yield x.atomic(LOCK.VMAP_AREA, () => kernel.vmap.lazyAreas().length);
  if (lazy === 0) return -1;
  yield* purgeVmapAreaLazy(x, kernel);
  return yield x.atomic(LOCK.VMAP_AREA, take);
}

/**
 * vm_area_alloc_pages(): the pages for `bytes` at `start`, recorded on the area in the step that allocated them
 * (so a failure frees them with the area). Returns whether the zone supplied them all.
 *
 * What the pages are lives in the area (kernel bookkeeping, changed in atomic steps); the program keeps only what
 * those steps return (the count and each single allocation's frame). The stateful search caches a program's next
 * instruction by the results it has had, so an atomic action that wrote the program's own variables would leave
 * them as another branch had them (its program contract, docs/checker.md).
 */
function* vmAreaAllocPages(
  x: Assembler,
  kernel: Kernel,
  start: number,
  bytes: number,
  pageOrder: number,
): KernelProgram<boolean> {
  const gfp = vmallocGfp(kernel) | GFP.NOWARN;
  const nrPages = bytes / PAGE_SIZE;
  const record = (pfn: number, order: number) => {
    const area = kernel.vmap.find(start)!;
    const va = start + area.pages.length * PAGE_SIZE;
    area.blocks.push({ va, pfn, order });
    if (order > 0) kernel.zone.splitPage(pfn, order); // split_page()
    for (let k = 0; k < 1 << order; k++) {
      area.pages.push(pfn + k);
      kernel.vmallocPages.set(pfn + k, va + k * PAGE_SIZE);
    }
    kernel.vmallocStats.pages += 1 << order;
  };
  const countAlloc = () => {
    kernel.vmallocStats.pageAllocs++;
    return 0;
  };
  let done = 0;
  if (pageOrder === 0 && kernel.policy !== 'high-order' && kernel.policy !== 'high-order+migratable') {
    // The bulk allocator, at most 100 pages a call; a partial result falls back to single pages.
    while (done < nrPages) {
      const want = Math.min(100, nrPages - done);
      yield x.atomic(LOCK.STATS, countAlloc);
      const got = yield* allocPagesBulk(x, kernel, gfp, want, OWNER.VMALLOC, (pfn) => record(pfn, 0));
      done += got;
      if (got !== want) break;
    }
  }
  while (done < nrPages) {
    let order = pageOrder;
    if (kernel.policy !== 'order0' && kernel.policy !== 'huge' && pageOrder === 0) {
      order = Math.min(ilog2(nrPages - done), MAX_ORDER);
    }
    for (;;) {
      // High-order attempts of the high-order policies may fail quietly and cheaply; the last resort is order 0.
      const attemptGfp = order > 0 && pageOrder === 0 ? gfp | GFP.NORETRY : gfp;
      yield x.atomic(LOCK.STATS, countAlloc);
      const o = order;
      // Recorded in the allocating step: the area holds its pages from the start (undoing a failed area frees them).
      const pfn = yield* allocPages(x, kernel, attemptGfp, o, OWNER.VMALLOC, (p) => record(p, o));
      if (pfn >= 0) {
        done += 1 << o;
        break;
      }
      if (order > 0)
        yield x.atomic(LOCK.STATS, () => {
          kernel.vmallocStats.highOrderFailures++;
          return 0;
        });
      if (pageOrder > 0 || order === 0) return false;
      order--;
    }
  }
  return true;
}

/** A block's frame and order in one number (an atomic step's result). */
const ORDER_SPAN = 32;

/**
 * vmap_pages_range(): maps every block of the area at `start` (PMD leaves for a huge area); false when a page
 * table could not be had. Each block's frame is read in a step of its own (see vmAreaAllocPages).
 */
function* mapArea(x: Assembler, kernel: Kernel, start: number, huge: boolean): KernelProgram<boolean> {
  const count: number = yield x.atomic(LOCK.VMAP_AREA, () => kernel.vmap.find(start)!.blocks.length);
  const step = huge ? LARGE_PAGE_SIZE : PAGE_SIZE;
  let va = start;
  for (let j = 0; j < count; j++) {
    const block: number = yield x.atomic(LOCK.VMAP_AREA, () => {
      const b = kernel.vmap.find(start)!.blocks[j]!;
      return b.pfn * ORDER_SPAN + b.order;
    });
    const order = block % ORDER_SPAN;
    const pfn = (block - order) / ORDER_SPAN;
    for (let off = 0; off < PAGE_SIZE << order; off += step) {
      const entry = yield* walkToEntry(x, kernel, kernel.initMm, va + off, huge ? 2 : 1, true);
      if (entry < 0) return false;
      yield* setEntry(x, entry, pfn * PAGE_SIZE + off, PAGE_KERNEL_LO | (huge ? PTE_LO.PS : 0), PAGE_KERNEL_HI);
    }
    va += PAGE_SIZE << order;
  }
  yield x.atomic(LOCK.VMAP_AREA, () => {
    kernel.vmap.find(start)!.huge = huge;
    return 0;
  });
  return true;
}

/**
 * Frees an area vmalloc returned (vfree()): clears its entries without a flush, frees every page to this CPU's
 * per-CPU list, and puts the range on the lazy list; once more than lazy_max_pages() pages wait there, one purge
 * flushes every CPU's TLB and frees the ranges. An address that is no area's start is Linux's WARN ("Trying to
 * vfree() nonexistent vm area"): nothing is freed, and the result is -1.
 */
export function* vfree(x: Assembler, kernel: Kernel, addr: number): KernelProgram {
  const found = yield x.atomic(LOCK.VMAP_AREA, () => (kernel.vmap.find(addr) ? 1 : 0));
  if (found === 0) return -1;
  yield* vfreeArea(x, kernel, addr);
  return 0;
}

/** remove_vm_area() and the page frees of vfree(), for an area that exists. */
function* vfreeArea(x: Assembler, kernel: Kernel, addr: number): KernelProgram<void> {
  // With migratable vmalloc, a page's migration and its area's free exclude each other (the page reference a
  // migration holds, in Linux): the migration lock is held across the unmap and the frees.
  const migratable = kernel.migrateProtocol !== undefined;
  const lock = lockWord(kernel, MIGRATION_LOCK_WORD);
  if (migratable) yield* spinLock(x, lock);
  // What the area is, from steps' results (see vmAreaAllocPages): its page count and whether it is huge.
  const shape: number = yield x.atomic(LOCK.VMAP_AREA, () => {
    const area = kernel.vmap.find(addr)!;
    return area.pages.length * 2 + (area.huge ? 1 : 0);
  });
  const huge = shape % 2 === 1;
  const count = (shape - (shape % 2)) / 2;
  // vunmap_range_noflush(): the entries go, the TLBs are not flushed.
  const step = huge ? LARGE_PAGE_SIZE : PAGE_SIZE;
  for (let off = 0; off < count * PAGE_SIZE; off += step) {
    const entry = yield* walkToEntry(x, kernel, kernel.initMm, addr + off, huge ? 2 : 1, false);
    if (entry < 0) continue; // never mapped (a vmalloc undoing itself)
    yield* clearEntry(x, entry);
  }
  // Every page is freed at once, as order 0 (high-order blocks were split).
  const cpu = x.cpuId;
  for (let k = 0; k < count; k++) {
    yield x.atomic(LOCK.ZONE, () => {
      const pfn = kernel.vmap.find(addr)!.pages[k]!;
      kernel.vmallocPages.delete(pfn);
      kernel.vmallocStats.pages--;
      kernel.pages.free(cpu, pfn, 0);
      return 0;
    });
  }
  if (migratable) yield* spinUnlock(x, lock);
  yield* freeVmapAreaNoflush(x, kernel, addr);
}
