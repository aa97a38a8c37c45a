import type { Assembler } from '../cpu/assembler.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { requireInteger, requireOptions } from '../mmu/input-error.ts';
import { MAX_ORDER, type Migratetype, PAGEBLOCK_ORDER } from './buddy.ts';
import { type Kernel, LOCK, OWNER } from './kernel.ts';
import { direct, type KernelProgram } from './kernel-page-tables.ts';
import { type MigrationProtocol, migratePage, migrationProtocol, type ProtocolName, requireChunk } from './migrate.ts';

// Memory compaction (mm/compaction.c compact_zone()), as a kernel program: a migrate scanner walks the zone's
// pageblocks from the bottom and isolates the movable pages in each; a free scanner walks from the top and isolates
// free blocks as targets; each page moves to a target; the scan stops when the scanners meet or a free block of the
// wanted order exists. Movable pages are page-cache pages (the kernel's pageCache registry: copied, the registry
// updated) and, when the run names a migration protocol, vmalloc pages (moved by that protocol on the emulated
// CPUs, so compacting a running task's stack double-faults with `naive` and works with `ipi-switcheroo`).

export interface CompactOptions {
  /**
   * Stop once a free block of this order exists (direct compaction for a failed allocation). Without it, the
   * whole zone is compacted until the scanners meet (explicit compaction, /proc/sys/vm/compact_memory: order -1).
   */
  readonly order?: number;
  /** vmalloc pages are movable only with a protocol (and only order-0 blocks). */
  readonly protocol?: ProtocolName | MigrationProtocol;
  /** Bytes copied per step (default 4096: a page a step; 8 is rep movsq's grain). */
  readonly chunk?: number;
  /** The CPU running a task whose stack may move (ipi-switcheroo sends its IPI there). */
  readonly taskCpu?: number;
}

export interface CompactResult {
  /** Pages moved, by kind. */
  readonly moved: number;
  readonly movedVmalloc: number;
  /** Whether a free block of the wanted order (MAX_ORDER for a full compaction) exists at the end. */
  readonly success: boolean;
  /** Simulated nanoseconds spent moving pages (RDTSC around each move; 0 outside a timed run). */
  readonly migrateNs: number;
}

/** The vmalloc address backed by `pfn` (an order-0 block), or -1. */
function vmallocAddressOf(kernel: Kernel, pfn: number): number {
  for (const area of kernel.vmap.list) {
    for (const b of area.blocks) if (b.pfn === pfn && b.order === 0) return b.va;
  }
  return -1;
}

/** A free block of `order` or larger exists. */
function suitable(kernel: Kernel, order: number): boolean {
  const { free } = kernel.zone.buddyinfo();
  return free.slice(order).some((n) => n > 0);
}

export function* compactZone(x: Assembler, kernel: Kernel, options: CompactOptions = {}): KernelProgram<CompactResult> {
  // Everything is checked before the first step: a refused call changes nothing.
  const o = requireOptions<CompactOptions>(options, 'compactZone options', ['order', 'protocol', 'chunk', 'taskCpu']);
  const full = o.order === undefined;
  const order = o.order === undefined ? MAX_ORDER : requireInteger(o.order, 'compactZone order', 0, MAX_ORDER);
  const chunk = o.chunk === undefined ? PAGE_SIZE : requireChunk(o.chunk, 'compactZone chunk');
  if (o.protocol !== undefined) migrationProtocol(o.protocol);
  if (o.taskCpu !== undefined) requireInteger(o.taskCpu, 'compactZone taskCpu', 0, kernel.cpus - 1);
  const zone = kernel.zone;
  const block = 1 << PAGEBLOCK_ORDER;
  const first = zone.firstPfn;
  let migrate = first;
  let free = first + Math.floor(zone.frames / block) * block;
  const targets: number[] = [];
  let moved = 0;
  let movedVmalloc = 0;
  let migrateNs = 0;
  let done: number = full ? 0 : yield x.atomic(LOCK.ZONE, () => (suitable(kernel, order) ? 1 : 0));
  while (done === 0 && migrate < free) {
    // isolate_migratepages_block(): the movable pages of this pageblock, under the zone lock.
    const start = migrate;
    const candidates: number[] = [];
    yield x.atomic(LOCK.ZONE, () => {
      for (let pfn = start; pfn < start + block && pfn < first + zone.frames; pfn++) {
        if (zone.orderAt(pfn) !== 0) continue;
        const owner = zone.ownerOf(pfn);
        if (owner === OWNER.PAGE_CACHE) candidates.push(pfn);
        else if (owner === OWNER.VMALLOC && o.protocol !== undefined && vmallocAddressOf(kernel, pfn) >= 0) {
          candidates.push(-pfn - 1); // vmalloc: moved by the protocol
        }
      }
      return candidates.length;
    });
    for (const c of candidates) {
      // isolate_freepages(): targets from the top pageblocks, down to the migrate scanner.
      while (targets.length === 0 && free - block > migrate) {
        free -= block;
        const top = free;
        yield x.atomic(LOCK.ZONE, () => {
          for (let pfn = top; pfn < top + block; pfn++) {
            const o = zone.isolateFree(pfn, OWNER.COMPACTION);
            if (o >= 0) for (let f = pfn + (1 << o) - 1; f >= pfn; f--) targets.push(f);
          }
          return targets.length;
        });
      }
      const target = targets.pop();
      if (target === undefined) break; // the scanners met
      const t0: number = yield x.rdtsc();
      if (c >= 0) {
        yield x.copy(direct(target * PAGE_SIZE), direct(c * PAGE_SIZE), PAGE_SIZE, { chunk });
        yield x.atomic(LOCK.ZONE, () => {
          const id = kernel.pageCache.get(c)!;
          kernel.pageCache.delete(c);
          kernel.pageCache.set(target, id);
          kernel.pageCacheById.set(id, target);
          zone.setOwner(target, OWNER.PAGE_CACHE);
          zone.freeBlock(c, 0);
          return 0;
        });
        moved++;
      } else {
        const pfn = -c - 1;
        const va: number = yield x.atomic(LOCK.VMAP_AREA, () => vmallocAddressOf(kernel, pfn));
        const r = yield* migratePage(x, kernel, va, o.protocol!, {
          newPfn: target,
          chunk,
          ...(o.taskCpu === undefined ? {} : { taskCpu: o.taskCpu }),
        });
        yield x.atomic(LOCK.ZONE, () => {
          if (r === 0) zone.setOwner(target, OWNER.VMALLOC);
          else zone.freeBlock(target, 0);
          return 0;
        });
        if (r === 0) {
          moved++;
          movedVmalloc++;
        }
      }
      const t1: number = yield x.rdtsc();
      migrateNs += t1 - t0;
    }
    migrate += block;
    if (!full) done = yield x.atomic(LOCK.ZONE, () => (suitable(kernel, order) ? 1 : 0));
  }
  // Unused targets go back to the zone (they merge with their buddies again).
  if (targets.length > 0) {
    yield x.atomic(LOCK.ZONE, () => {
      for (const t of targets) zone.freeBlock(t, 0);
      return 0;
    });
  }
  const success: number = yield x.atomic(LOCK.ZONE, () => (suitable(kernel, order) ? 1 : 0));
  return { moved, movedVmalloc, success: success !== 0, migrateNs };
}

/**
 * __alloc_pages_direct_compact(): allocates 2^order frames of `type`; when the zone has no block that large,
 * compacts for that order and tries once more. Returns the pfn or -1, and what the compaction did (if it ran).
 */
export function* allocWithCompaction(
  x: Assembler,
  kernel: Kernel,
  order: number,
  type: Migratetype,
  owner: number,
  options: Omit<CompactOptions, 'order'> = {},
): KernelProgram<{ readonly pfn: number; readonly compaction: CompactResult | undefined }> {
  let pfn: number = yield x.atomic(LOCK.ZONE, () => kernel.zone.alloc(order, type, owner));
  if (pfn >= 0) return { pfn, compaction: undefined };
  const compaction = yield* compactZone(x, kernel, { ...options, order });
  pfn = yield x.atomic(LOCK.ZONE, () => kernel.zone.alloc(order, type, owner));
  return { pfn, compaction };
}
