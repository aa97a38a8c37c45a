import { offsetAddress } from '../mmu/address.ts';
import type { Footprint } from '../mmu/footprint.ts';
import type { PhysicalMemory } from '../mmu/physical-memory.ts';
import { ACCESS } from '../mmu/walker.ts';
import type { StoreBuffer } from './store-buffer.ts';

// An access that crosses a page boundary, byte by byte: every byte is translated (and may fault) before any is read
// or written, so a #PF on the second page leaves memory untouched (SDM Vol. 3 §4.7: the access faults as a whole).
// Rare and cold: the hot paths in MemoryPort handle accesses within one page.

/** What a split access needs of the CPU's memory port (memory-port.ts). */
export interface SplitPort {
  readonly memory: PhysicalMemory;
  readonly footprint: Footprint | undefined;
  readonly storeBuffer: StoreBuffer | undefined;
  translate(va: number, access: number): number;
}

/** Reads `size` bytes at `va` across a page boundary: the value, or -1 with the port's fault record set. */
export function readSplit(port: SplitPort, va: number, size: number, access: number): number {
  const pas = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    // Crossing from the lower half into bit 47 is non-canonical (offsetAddress).
    const pa = port.translate(offsetAddress(va, i), access);
    if (pa < 0) return -1;
    pas[i] = pa;
  }
  const sb = port.storeBuffer;
  let value = 0;
  for (let i = size - 1; i >= 0; i--) {
    if (port.footprint) port.footprint.readList.push2(pas[i]!, 1);
    value =
      value * 256 +
      (sb !== undefined && sb.length !== 0 ? sb.forward(port.memory, pas[i]!, 1) : port.memory.read8(pas[i]!));
  }
  return value;
}

/** Writes `size` bytes at `va` across a page boundary; false on a fault (nothing written). */
export function writeSplit(port: SplitPort, va: number, size: number, value: number, access: number): boolean {
  const pas = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const pa = port.translate(offsetAddress(va, i), access | ACCESS.WRITE);
    if (pa < 0) return false;
    pas[i] = pa;
  }
  let v = value;
  for (let i = 0; i < size; i++) {
    if (port.footprint) port.footprint.writeList.push2(pas[i]!, 1);
    port.memory.write8(pas[i]!, ((v % 256) + 256) % 256);
    v = Math.floor(v / 256);
  }
  return true;
}
