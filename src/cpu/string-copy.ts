import { offsetAddress } from '../mmu/address.ts';
import { ACCESS } from '../mmu/walker.ts';
import type { Activation } from './activation.ts';
import type { CpuCore } from './core.ts';
import type { Instruction } from './instruction.ts';

// String instructions: moves (rep movs: `x.copy`, `x.copyPage`) and stores (rep stos: `x.fill`, `x.clearPage`), one
// chunk per step through the executing CPU's MMU. Progress is kept in the activation (RSI/RDI/RCX) across faults.

/**
 * One chunk of a `copy` (one iteration of rep movs): translate the source for reading and the destination for
 * writing, then move the bytes. The copy stays pending until its last chunk; a fault keeps the progress, so the
 * re-executed copy goes on where it stopped.
 */
export function copyChunk(cpu: CpuCore, act: Activation, ins: Instruction): void {
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
    port.footprint.readList.push2(spa, n);
    port.footprint.writeList.push2(dpa, n);
  }
  act.progress = done + n;
  if (act.progress >= ins.value) {
    act.progress = 0;
    cpu.complete(act, 0);
  }
}

/** One chunk of a `fill` (rep stos): translate the destination for writing, then store the value in each 8 bytes. */
export function fillChunk(cpu: CpuCore, act: Activation, ins: Instruction): void {
  const done = act.progress;
  const n = ins.size;
  const dst = offsetAddress(ins.va, done);
  const port = cpu.port;
  cpu.lastCopyDestination = dst;
  const dpa = port.translate(dst, cpu.userAccess | ACCESS.WRITE);
  if (dpa < 0) return cpu.raiseFault();
  for (let off = 0; off < n; off += 8) cpu.memory.write64(dpa + off, ins.expected);
  if (port.footprint) port.footprint.writeList.push2(dpa, n);
  act.progress = done + n;
  if (act.progress >= ins.value) {
    act.progress = 0;
    cpu.complete(act, 0);
  }
}
