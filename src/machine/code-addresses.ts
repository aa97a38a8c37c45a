import type { Program } from '../cpu/assembler.ts';
import { LAYOUT } from '../mmu/address.ts';

// Where programs' code lives: each program gets a code address the first time a CPU runs it, so a return address
// on a stack names its continuation (Machine.codeAddress and userCodeAddress, the CPU bus's).

/** Programs get code addresses in kernel text, 64 KiB apart, in order of first use (deterministic). */
export const CODE_BASE = LAYOUT.kernelText + 0x100_0000;
const CODE_STRIDE = 0x1_0000;
/** User programs (entered by iret at a userEntry) get code addresses in the low half, from the ELF default base. */
export const USER_CODE_BASE = 0x40_0000;

/** A program's code address in `assigned`, given in order of first use from `base` (deterministic). */
export function assignCodeAddress(assigned: Map<Program, number>, program: Program, base: number): number {
  let address = assigned.get(program);
  if (address === undefined) {
    address = base + assigned.size * CODE_STRIDE;
    assigned.set(program, address);
  }
  return address;
}
