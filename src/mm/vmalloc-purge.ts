import type { Assembler } from '../cpu/assembler.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { type Kernel, LOCK } from './kernel.ts';
import type { KernelProgram } from './kernel-page-tables.ts';
import { flushTlbKernelRange } from './smp.ts';

// Lazy freeing of vmap areas (mm/vmalloc.c, Linux 6.6: free_vmap_area_noflush(), lazy_max_pages(),
// __purge_vmap_area_lazy()). vfree() unmaps an area without flushing any TLB and frees its pages at once; the
// virtual range goes on a purge list and is not reused until a purge has flushed every CPU's TLB for it. A purge
// runs when more than lazy_max_pages() pages are waiting (Linux queues drain_vmap_work; here it runs next on the
// CPU that queued it), or when an area cannot be reserved. It flushes once for the span of all waiting areas (a
// full flush when that is more than 33 pages: one IPI round for many vfrees), then frees the ranges.
//
// Until the purge, a CPU may still hold a translation of a freed page: reading a vfree()d address is then a use
// after free in the caller, as on Linux (the frame guard reports it when it happens).

/** fls(): the position of the highest set bit, 1-based (fls(2) = 2). */
function fls(n: number): number {
  return 32 - Math.clz32(n);
}

/** lazy_max_pages(): 32 MiB of pages per fls(CPUs): 16384 pages on 2 CPUs. */
export function lazyMaxPages(cpus: number): number {
  return fls(cpus) * ((32 * 1024 * 1024) / PAGE_SIZE);
}

/**
 * free_vmap_area_noflush(): the area at `addr` (its pages already freed) waits on the lazy list; its pages, guard
 * included, count towards lazy_max_pages(); past it, purge.
 */
export function* freeVmapAreaNoflush(x: Assembler, kernel: Kernel, addr: number): KernelProgram<void> {
  const over: number = yield x.atomic(LOCK.VMAP_AREA, () => {
    const area = kernel.vmap.find(addr)!;
    area.lazy = true;
    kernel.vmapLazyNr += area.size / PAGE_SIZE + 1;
    return kernel.vmapLazyNr > lazyMaxPages(kernel.cpus) ? 1 : 0;
  });
  if (over) yield* purgeVmapAreaLazy(x, kernel);
}

/**
 * __purge_vmap_area_lazy() (also vm_unmap_aliases()): takes every waiting area, flushes [lowest start, highest
 * end) on every CPU, then frees the ranges. Returns how many areas it freed.
 */
export function* purgeVmapAreaLazy(x: Assembler, kernel: Kernel): KernelProgram {
  const count: number = yield x.atomic(LOCK.VMAP_AREA, () => {
    const areas = kernel.vmap.lazyAreas();
    for (const a of areas) a.purging = true;
    return areas.length;
  });
  if (count === 0) return 0;
  // The span to flush, each end read in a step (a program learns kernel state only from steps' results: the
  // stateful search's program contract, docs/checker.md).
  const purging = () => kernel.vmap.list.filter((a) => a.purging);
  const start: number = yield x.atomic(LOCK.VMAP_AREA, () => Math.min(...purging().map((a) => a.start)));
  const end: number = yield x.atomic(LOCK.VMAP_AREA, () =>
    Math.max(...purging().map((a) => a.start + a.size + PAGE_SIZE)),
  );
  yield* flushTlbKernelRange(x, kernel, start, end);
  yield x.atomic(LOCK.VMAP_AREA, () => {
    for (const a of kernel.vmap.list.filter((v) => v.purging)) {
      kernel.vmapLazyNr -= a.size / PAGE_SIZE + 1;
      kernel.vmap.release(a.start);
    }
    kernel.vmapPurges++;
    return 0;
  });
  return count;
}
