import { offsetAddress } from '../mmu/address.ts';
import { ACCESS } from '../mmu/walker.ts';
import type { Activation } from './activation.ts';
import type { CpuCore } from './core.ts';
import { type Instruction, OP } from './instruction.ts';

/**
 * A push or pop with RSP near a canonical boundary, out of Cpu.access's fast path: RSP arithmetic is 64-bit
 * (offsetAddress), so a push from 0x0000800000000000 writes the canonical 0x00007ffffffffff8, one from
 * 0xffff800000000000 the non-canonical 0xffff7ffffffffff8 (#SS), and a push from 0 wraps to the top of the upper
 * half. A faulting push or pop changes nothing: the instruction stays pending for the handler's iret.
 */
export function boundaryStackAccess(cpu: CpuCore, act: Activation, ins: Instruction): void {
  const rsp = cpu.regs.rsp;
  const access = cpu.userAccess | ACCESS.STACK;
  let result = 0;
  if (ins.op === OP.POP) {
    result = cpu.port.read(rsp, ins.size, access);
    if (result < 0) {
      act.pending = ins;
      return cpu.raiseFault();
    }
    cpu.regs.rsp = offsetAddress(rsp, 8);
  } else {
    const va = offsetAddress(rsp, -8);
    if (!cpu.port.write(va, ins.size, ins.value, access)) {
      act.pending = ins;
      return cpu.raiseFault();
    }
    cpu.regs.rsp = va;
  }
  cpu.complete(act, result);
}
