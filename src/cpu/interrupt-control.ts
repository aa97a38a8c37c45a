import { VECTOR_GP } from '../mmu/walker.ts';
import type { Activation } from './activation.ts';
import type { CpuCore } from './core.ts';
import { type Instruction, type IpiMode, OP } from './instruction.ts';
import { RFLAGS } from './registers.ts';
import { STATUS } from './status.ts';

// The interrupt-control instructions: CLI, STI (with its one-instruction shadow), HLT, and the local APIC's
// send-IPI (a write to the ICR) and EOI.

/** CLI, STI and HLT: privileged at CPL 3 with IOPL 0, where they raise #GP(0) (SDM Vol. 2 CLI/STI/HLT). */
export function interruptFlag(cpu: CpuCore, act: Activation, ins: Instruction): void {
  if (cpu.regs.cpl !== 0) return cpu.raise(VECTOR_GP, 0, 0);
  if (ins.op === OP.CLI) cpu.regs.rflags &= ~RFLAGS.IF;
  else if (ins.op === OP.STI) {
    // Interrupts are recognised only after the instruction following STI (SDM Vol. 2 STI).
    if (!cpu.interruptsEnabled) cpu.interruptShadow = true;
    cpu.regs.rflags |= RFLAGS.IF;
  } else cpu.status = STATUS.HALTED;
  cpu.complete(act, 0);
}

/** Sends an IPI through the machine's bus; the result is the number of CPUs it went to. */
export function sendIpi(cpu: CpuCore, act: Activation, ins: Instruction): void {
  const mode: IpiMode = ins.expected === 1 ? 'nmi' : 'fixed';
  const targets = cpu.bus.sendIpi(cpu.id, ins.aux!.target!, ins.value, mode);
  cpu.lastIpiTargets = targets;
  const footprint = cpu.port.footprint;
  if (footprint) for (const t of targets) footprint.ipiList.push2(t, ins.value);
  cpu.complete(act, targets.length);
}
