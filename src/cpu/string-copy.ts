import { LOWER_HALF_END, NON_CANONICAL } from '../mmu/address.ts';
import { ACCESS } from '../mmu/walker.ts';
import type { Activation, Cpu } from './cpu.ts';
import type { Instruction } from './instruction.ts';

// String moves (rep movs): `x.copy` and `x.copyPage`, one chunk per step through the executing CPU's MMU.

/**
 * `base + offset` for a multi-byte access that walks forward: leaving the lower canonical half (bit 47) makes the
 * address non-canonical, not a high-half one (model addresses keep only bits 47:0).
 */
export function offsetAddress(base: number, offset: number): number {
  const a = base + offset;
  return base < LOWER_HALF_END && a >= LOWER_HALF_END ? a + NON_CANONICAL : a;
}

/**
 * One chunk of a `copy` (one iteration of rep movs): translate the source for reading and the destination for
 * writing, then move the bytes. The copy stays pending until its last chunk; a fault keeps the progress, so the
 * re-executed copy goes on where it stopped.
 */
export function copyChunk(cpu: Cpu, act: Activation, ins: Instruction): void {
  const done = act.progress;
  const n = ins.size;
  const src = offsetAddress(ins.expected, done);
  const dst = offsetAddress(ins.va, done);
  const port = cpu.port;
  const user = cpu.userAccess;
  cpu.lastCopyDestination = dst;
  const spa = port.translate(src, user);
  if (spa < 0) return cpu.raiseFault();
  const dpa = port.translate(dst, user | ACCESS.WRITE);
  if (dpa < 0) return cpu.raiseFault();
  cpu.memory.copy(spa, dpa, n);
  if (port.footprint) {
    port.footprint.reads.push(spa, n);
    port.footprint.writes.push(dpa, n);
  }
  act.progress = done + n;
  if (act.progress >= ins.value) {
    act.progress = 0;
    cpu.complete(act, 0);
  }
}
