import { PAGE_SIZE } from '../mmu/address.ts';
import { MAX_PHYS_ADDR_BITS } from '../mmu/pte.ts';
import type { Tlb } from '../mmu/tlb.ts';
import { type Instruction, MSR, OP } from './instruction.ts';
import type { MemoryPort } from './memory-port.ts';
import { CR0, CR4, EFER, type Registers } from './registers.ts';

// Instructions that write system state: control registers, EFER, RSP and the TLB (INVLPG). Each either completes
// or raises #GP(0) with no effect, as the SDM's MOV CR / WRMSR pages say for the cases the model keeps.

/** executeSystemRegister's answer when the instruction raises #GP(0) and changes nothing. */
export const GP_FAULT = -1;

const TWO_32 = 2 ** 32;
/** CR3 bits at or above MAXPHYADDR are reserved (SDM §4.5). */
const CR3_LIMIT = 2 ** MAX_PHYS_ADDR_BITS;
/** EFER bits software may write: SCE, LME, LMA (ignored on write), NXE; the rest are reserved here. */
const EFER_WRITABLE = 1 | EFER.LME | EFER.LMA | EFER.NXE;

/** The parts of a CPU these instructions reach. */
export interface SystemState {
  readonly regs: Registers;
  readonly tlb: Tlb;
  readonly port: MemoryPort;
}

/** Whether `op` is one of the instructions executeSystemRegister runs. */
export function isSystemRegisterOp(op: number): boolean {
  return (
    op === OP.INVLPG ||
    op === OP.MOV_TO_CR0 ||
    op === OP.MOV_TO_CR2 ||
    op === OP.MOV_TO_CR3 ||
    op === OP.MOV_TO_CR4 ||
    op === OP.WRMSR ||
    op === OP.MOV_TO_RSP ||
    op === OP.MOV_FROM_CR
  );
}

/**
 * Whether `op` is serializing (SDM §8.3: INVLPG, MOV to a control register, WRMSR): the CPU's buffered stores reach
 * memory before it executes. MOV from CR and MOV to RSP are not.
 */
export function isSerializingSystemOp(op: number): boolean {
  return op !== OP.MOV_FROM_CR && op !== OP.MOV_TO_RSP && isSystemRegisterOp(op);
}

/** Executes one of them; returns its result (0, or the register read) or GP_FAULT. Privileged ones fault at CPL 3. */
export function executeSystemRegister(cpu: SystemState, ins: Instruction): number {
  const regs = cpu.regs;
  const footprint = cpu.port.footprint;
  if (ins.op === OP.MOV_TO_RSP) {
    regs.rsp = ins.value;
    return 0;
  }
  if (regs.cpl !== 0) return GP_FAULT;
  const value = ins.value;
  switch (ins.op) {
    case OP.INVLPG:
      cpu.tlb.invalidatePage(ins.va);
      // INVLPG also invalidates every paging-structure-cache entry, whatever its address (SDM §4.10.4.1).
      cpu.port.psc?.invalidateAll();
      if (footprint) footprint.tlbInvalidationList.push(Math.floor(ins.va / PAGE_SIZE));
      return 0;
    case OP.MOV_TO_CR0:
      // In IA-32e mode clearing PG (or PE) is #GP(0); so are bits 63:32 and NW without CD (SDM Vol. 2 MOV CR).
      if (value >= TWO_32 || (value & CR0.PG) === 0 || (value & CR0.PE) === 0) return GP_FAULT;
      if ((value & CR0.NW) !== 0 && (value & CR0.CD) === 0) return GP_FAULT;
      regs.cr0 = value >>> 0;
      return 0;
    case OP.MOV_TO_CR2:
      regs.cr2 = value;
      return 0;
    case OP.MOV_FROM_CR:
      return value === 0 ? regs.cr0 : value === 2 ? regs.cr2 : value === 3 ? regs.cr3 : regs.cr4;
    case OP.MOV_TO_CR3:
      if (value >= CR3_LIMIT) return GP_FAULT;
      regs.cr3 = value;
      cpu.tlb.flushNonGlobal();
      // Paging-structure-cache entries are never global: a CR3 write drops them all (SDM §4.10.4.1).
      cpu.port.psc?.invalidateAll();
      if (footprint) footprint.tlbInvalidationList.push(-1);
      return 0;
    case OP.MOV_TO_CR4:
      // Clearing PAE, or changing LA57, in IA-32e mode is #GP(0); bits 63:32 are reserved (SDM Vol. 3 §2.5).
      if (value >= TWO_32 || (value & CR4.PAE) === 0 || ((value ^ regs.cr4) & CR4.LA57) !== 0) return GP_FAULT;
      // Changing CR4.PGE invalidates all TLB entries, global ones included (SDM §4.10.4.1).
      if (((regs.cr4 ^ value) & CR4.PGE) !== 0) {
        cpu.tlb.flushAll();
        cpu.port.psc?.invalidateAll();
        if (footprint) footprint.tlbInvalidationList.push(-2);
      }
      regs.cr4 = value >>> 0;
      return 0;
    case OP.WRMSR: {
      if (ins.expected !== MSR.EFER || value >= TWO_32 || (value & ~EFER_WRITABLE) !== 0) return GP_FAULT;
      // LME cannot change while paging is on (SDM Vol. 3 §10.8.5); LMA is read-only.
      if (((value ^ regs.efer) & EFER.LME) !== 0) return GP_FAULT;
      regs.efer = ((value & ~EFER.LMA) | (regs.efer & EFER.LMA)) >>> 0;
      return 0;
    }
  }
  return 0;
}
