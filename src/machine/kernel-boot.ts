import { BuddyAllocator, MAX_ORDER, MIGRATETYPE } from '../mm/buddy.ts';
import { Kernel, type KernelOptions, OWNER } from '../mm/kernel.ts';
import { migrationProtocol } from '../mm/migrate.ts';
import { smpAreaOrder } from '../mm/smp.ts';
import { LAYOUT, PAGE_SIZE } from '../mmu/address.ts';
import { InputError } from '../mmu/input-error.ts';
import type { PhysicalMemory } from '../mmu/physical-memory.ts';
import type { BootInfo } from './boot.ts';

// Booting the Linux-like kernel on top of the minimal boot: the frames above the boot reserve go to the zone's
// buddy allocator (memblock_free_all()), and with `sync: 'preallocated'` every top-level entry of the vmalloc space
// gets its second-level table now (preallocate_vmalloc_pages(), 5.9+), so no mm ever lacks one.

/** Frames below this stay with the boot allocator (boot page tables, stacks, m.map() at set-up). */
export const BOOT_RESERVE = 8 * 1024 * 1024;
/** The zone manages at most this much memory: its per-frame metadata is allocated up front. */
export const MAX_ZONE_BYTES = 4 * 1024 * 1024 * 1024;
/** The least memory a kernel boots in: the boot reserve plus one 4 MiB block. */
export const MIN_KERNEL_MEMORY = BOOT_RESERVE + (PAGE_SIZE << MAX_ORDER);

export function bootKernel(memory: PhysicalMemory, boot: BootInfo, options: Required<KernelOptions>): Kernel {
  if (memory.size < MIN_KERNEL_MEMORY) {
    throw new InputError(
      `memory of ${memory.size} bytes is too small for a kernel: it needs ${MIN_KERNEL_MEMORY} (the 8 MiB boot ` +
        'reserve and one 4 MiB block for the zone)',
    );
  }
  const firstPfn = BOOT_RESERVE / PAGE_SIZE;
  const end = Math.min(memory.size, MAX_ZONE_BYTES);
  const zone = new BuddyAllocator(firstPfn, Math.floor((end - BOOT_RESERVE) / PAGE_SIZE));
  if (options.sync === 'preallocated') {
    for (let va = LAYOUT.vmallocStart; va < LAYOUT.vmallocEnd; va += 2 ** 39) boot.pageTables.ensureTable(va, 3);
  }
  // The SMP area (csd slots, lock words) is the zone's first allocation: zeroed, as memory starts.
  const cpus = boot.taskStacks.length;
  const smpPfn = zone.alloc(smpAreaOrder(cpus), MIGRATETYPE.UNMOVABLE, OWNER.OTHER);
  const kernel = new Kernel(zone, boot.pml4, options.vmalloc, options.sync, cpus, smpPfn * PAGE_SIZE);
  if (options.vmalloc === 'high-order+migratable') {
    // Migratable vmalloc: its pages count as movable (__PageMovable) and compaction moves them by this protocol.
    zone.movableOwners[OWNER.VMALLOC] = 1;
    kernel.migrateProtocol = migrationProtocol('migration-entry');
  }
  // The boot's task stacks are VMAP stacks in the vmalloc space: their areas (guard page below included) are taken.
  for (const stack of boot.taskStacks) kernel.vmap.reserveFixed(stack.guard, stack.top - stack.guard);
  attachKernel(memory, kernel);
  return kernel;
}

/**
 * Makes `kernel`'s zone the CPUs' frame guard on `memory` (use after free and lost writes are checked on every
 * translation), and tells the memory when frames are released. At boot, and for each image instance's own copy.
 */
export function attachKernel(memory: PhysicalMemory, kernel: Kernel): void {
  memory.guard = kernel.zone;
  kernel.zone.onRelease = (pfn, frames) => memory.guardChanged(pfn, frames);
}
