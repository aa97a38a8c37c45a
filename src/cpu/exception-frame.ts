import { fromCanonicalHalves } from '../mmu/address.ts';
import { requireInteger } from '../mmu/input-error.ts';
import type { PhysicalMemory } from '../mmu/physical-memory.ts';
import { lookupTables } from '../mmu/table-lookup.ts';
import type { Activation } from './activation.ts';
import type { CpuCore } from './core.ts';

// The 64-bit interrupt stack frame (SDM Vol. 3 §6.14.2, Figure 6-9), read back for tests and tools: the slots
// delivery pushed, from the lowest address up: [error code,] RIP, CS, RFLAGS, RSP, SS.

/** The frame a handler received, as stored in memory, in model form. */
export interface ExceptionFrame {
  readonly vector: number;
  /** The error code slot, when the event pushed one. */
  readonly errorCode?: number;
  readonly rip: number;
  readonly cs: number;
  readonly rflags: number;
  readonly rsp: number;
  readonly ss: number;
  /** Virtual address of the lowest slot (the error code, or RIP). */
  readonly address: number;
}

/**
 * Reads the frame at `address` through the page tables under `cr3`, with no side effects (no TLB, no A/D bits).
 * Undefined when a slot is not mapped.
 */
export function readExceptionFrame(
  memory: PhysicalMemory,
  cr3: number,
  vector: number,
  address: number,
  errorCodePushed: boolean,
): ExceptionFrame | undefined {
  const slots: number[] = [];
  for (let i = 0; i < (errorCodePushed ? 6 : 5); i++) {
    const t = lookupTables(memory, cr3, address + 8 * i);
    if (!t.present) return undefined;
    slots.push(t.pa);
  }
  const value = (i: number): number => memory.read64(slots[i]!);
  // RIP and RSP are addresses, stored in canonical 64-bit form: read back into model form.
  const addressAt = (i: number): number => fromCanonicalHalves(memory.read32(slots[i]!), memory.read32(slots[i]! + 4));
  const k = errorCodePushed ? 1 : 0;
  return {
    vector,
    ...(errorCodePushed ? { errorCode: value(0) } : {}),
    rip: addressAt(k),
    cs: value(k + 1),
    rflags: value(k + 2),
    rsp: addressAt(k + 3),
    ss: value(k + 4),
    address,
  };
}

/**
 * The frame the handler at control-stack `level` of `cpu` received (default: the innermost handler), read from
 * memory as it is now, through the CPU's current page tables without touching TLB or A/D bits. Undefined when no
 * handler is running at that level, or when a slot is unmapped.
 */
export function handlerFrame(cpu: CpuCore, level?: number): ExceptionFrame | undefined {
  const activations = cpu.activations;
  let a: Activation | undefined;
  if (level === undefined) {
    for (let i = activations.length - 1; i >= 0 && !a; i--) {
      if (activations[i]!.kind === 'handler') a = activations[i];
    }
  } else {
    requireInteger(level, `CPU ${cpu.id} exceptionFrame level`, 0, Math.max(0, activations.length - 1));
    a = activations[level];
  }
  if (a?.kind !== 'handler') return undefined;
  return readExceptionFrame(cpu.memory, cpu.regs.cr3, a.vector, a.frameRsp, a.errorCodePushed);
}
