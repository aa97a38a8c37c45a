import { formatVirtual, PAGE_SIZE } from '../mmu/address.ts';
import { InputError } from '../mmu/input-error.ts';
import type { Activation } from './activation.ts';
import type { CpuCore } from './core.ts';
import { type Instruction, OP } from './instruction.ts';
import { STATUS } from './status.ts';

// Memory instructions other than the hot load/store/push/pop (which stay in Cpu.access for the step's fast path):
// locked read-modify-writes (LOCK CMPXCHG, XCHG; built in the reused object too, and sent here from step()) and the
// spin-until of a PAUSE loop.

/**
 * `cmpxchg` / `xchg`: one locked read-modify-write. It is a write access even when the compare fails (SDM Vol. 2
 * CMPXCHG: "the destination operand is written back if the comparison fails"); a split lock across pages is refused.
 */
export function lockedExchange(cpu: CpuCore, act: Activation, ins: Instruction): void {
  const port = cpu.port;
  const access = cpu.userAccess;
  const cached = port.exchangeCached(ins.va, ins.size, ins.value, ins.op === OP.XCHG ? -1 : ins.expected, access);
  if (cached >= 0) return cpu.complete(act, cached);
  const pa = port.translateForWrite(ins.va, ins.size, access);
  if (pa < 0 || (ins.va & 0xfff) + ins.size > PAGE_SIZE) {
    if (pa >= 0) throw new InputError(`locked access at ${formatVirtual(ins.va)} crosses a page (split lock)`);
    return cpu.raiseFault();
  }
  const old = cpu.memory.read(pa, ins.size);
  const swap = ins.op === OP.XCHG || old === ins.expected;
  if (port.footprint) port.footprint.readList.push2(pa, ins.size);
  if (swap) {
    if (port.footprint) port.footprint.writeList.push2(pa, ins.size);
    cpu.memory.write(pa, ins.size, ins.value);
  }
  cpu.complete(act, old);
}

/**
 * `spinUntil` and `waitUntil`: read the bytes and complete when the condition holds (waitUntil resumes the program
 * with 1); otherwise the CPU blocks, watching them, until a write to them (or a TLB change) wakes it to read again.
 */
export function spinUntil(cpu: CpuCore, act: Activation, ins: Instruction): void {
  const port = cpu.port;
  const value = port.read(ins.va, ins.size, cpu.userAccess);
  if (value < 0) return cpu.raiseFault();
  if (ins.aux!.condition!(value)) {
    cpu.complete(act, ins.aux!.valueUnused === true ? 1 : value);
    cpu.lastResult = value; // a trace shows the value read, not the 1 a wait-until resumes with
    return;
  }
  cpu.lastResult = value; // and the value the condition refused
  cpu.status = STATUS.BLOCKED;
  cpu.memory.watch(cpu.id, port.lastPa, ins.size);
}
