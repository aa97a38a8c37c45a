import type { Cpu } from '../cpu/cpu.ts';
import { RFLAGS } from '../cpu/registers.ts';
import { exceptionGates } from '../faults/handlers.ts';
import { THREAD_SIZE } from '../mm/task.ts';
import { InputError, LAYOUT, PAGE_SIZE, toVirtual } from '../mmu/address.ts';
import type { PhysicalMemory } from '../mmu/physical-memory.ts';
import { BootFrameAllocator, PageTableEditor } from './page-tables.ts';

// The minimal boot, under every machine (a kernel boots on top of it, src/machine/kernel-boot.ts): a direct map of
// all memory, a 16 KiB VMAP-style task stack per CPU with a guard page below (THREAD_SIZE, CONFIG_VMAP_STACK), #DF
// and NMI stacks on IST1/IST2 in a cpu_entry_area-like region with guard pages, and the IDT of src/faults: without
// a kernel, #PF oopses unless the faulting instruction has an exception-table fixup, and #DF panics.

export { THREAD_SIZE };
export const EXCEPTION_STACK_SIZE = PAGE_SIZE;
/** First frame the boot allocator hands out (below it: the legacy first MiB). */
export const BOOT_FRAMES_START = 0x100000;
/** cpu_entry_area (Documentation/arch/x86/x86_64/mm.rst): per-CPU IST stacks live here. */
export const CPU_ENTRY_AREA = toVirtual(0xffff_fe00_0000_0000n);
const PER_CPU_STRIDE = 0x10000;

export interface StackRange {
  /** Lowest mapped address. */
  readonly bottom: number;
  /** Address just above the stack (initial RSP). */
  readonly top: number;
  /** The unmapped guard page just below `bottom`. */
  readonly guard: number;
}

export interface BootInfo {
  readonly pml4: number;
  readonly pageTables: PageTableEditor;
  readonly frames: BootFrameAllocator;
  /** Per CPU: its task's VMAP stack. */
  readonly taskStacks: readonly StackRange[];
  /** Per CPU: the #DF stack (IST1) and the NMI stack (IST2). */
  readonly doubleFaultStacks: readonly StackRange[];
  readonly nmiStacks: readonly StackRange[];
  /** Virtual address of a physical address in the direct map. */
  directMap(pa: number): number;
}

function mapStack(pt: PageTableEditor, frames: BootFrameAllocator, bottom: number, size: number): StackRange {
  for (let va = bottom; va < bottom + size; va += PAGE_SIZE) {
    pt.map4k(va, frames.alloc(), { writable: true, global: true, noExecute: true });
  }
  return { bottom, top: bottom + size, guard: bottom - PAGE_SIZE };
}

/** Builds page tables, stacks and IDTs for every CPU, and sets their registers to run kernel code. */
export function bootMinimal(memory: PhysicalMemory, cpus: readonly Cpu[], frameLimit = memory.size): BootInfo {
  if (memory.size < 4 * 1024 * 1024) {
    throw new InputError(`memory of ${memory.size} bytes is too small to boot: the minimal boot needs 4 MiB`);
  }
  // With a kernel, frames above `frameLimit` belong to its zone; the boot allocator keeps to the ones below.
  const frames = new BootFrameAllocator(BOOT_FRAMES_START, Math.min(frameLimit, memory.size));
  const pml4 = frames.alloc();
  const pageTables = new PageTableEditor(memory, pml4, frames);
  // Direct map of all memory, like Linux's kernel_physical_mapping_init(): 1 GiB pages where a whole GiB is
  // memory (gbpages), 2 MiB pages for the rest, all global. So booting costs the same for 64 MiB and for 1 TiB.
  pageTables.mapLargeRange(LAYOUT.directMap, 0, memory.size, { writable: true, global: true, noExecute: true });
  const taskStacks: StackRange[] = [];
  const doubleFaultStacks: StackRange[] = [];
  const nmiStacks: StackRange[] = [];
  for (const cpu of cpus) {
    // VMAP stack: THREAD_SIZE-aligned in vmalloc space, the page below left unmapped as the guard.
    const area = LAYOUT.vmallocStart + cpu.id * PER_CPU_STRIDE;
    taskStacks.push(mapStack(pageTables, frames, area + THREAD_SIZE, THREAD_SIZE));
    const entryArea = CPU_ENTRY_AREA + cpu.id * PER_CPU_STRIDE;
    doubleFaultStacks.push(mapStack(pageTables, frames, entryArea + PAGE_SIZE, EXCEPTION_STACK_SIZE));
    nmiStacks.push(mapStack(pageTables, frames, entryArea + 3 * PAGE_SIZE, EXCEPTION_STACK_SIZE));
  }
  const gates = exceptionGates(taskStacks);
  for (const cpu of cpus) {
    for (const [vector, gate] of gates) cpu.setGate(vector, gate);
    const task = taskStacks[cpu.id]!;
    cpu.regs.cr3 = pml4;
    cpu.regs.rsp = task.top;
    cpu.regs.rflags = RFLAGS.FIXED | RFLAGS.IF;
    cpu.tss.rsp0 = task.top;
    cpu.tss.ist[1] = doubleFaultStacks[cpu.id]!.top;
    cpu.tss.ist[2] = nmiStacks[cpu.id]!.top;
  }
  return {
    pml4,
    pageTables,
    frames,
    taskStacks,
    doubleFaultStacks,
    nmiStacks,
    directMap: (pa: number) => LAYOUT.directMap + pa,
  };
}
