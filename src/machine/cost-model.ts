import { type Cpu, STEP_KIND } from '../cpu/cpu.ts';
import { OP } from '../cpu/instruction.ts';
import { describeValue, InputError, requireOptions } from '../mmu/input-error.ts';

// The cost model (issue "answer the 2018 question with numbers"): what each step costs in simulated nanoseconds,
// from published measurements (shared/reference/cost-figures.md, 3 GHz; sources per figure below). A `timed` run
// keeps a clock per CPU, adds each step's cost to the CPU that took it, and always steps the CPU whose clock is
// lowest, so a timed run is as deterministic as any other.

export interface CostModel {
  /** A load, store, push, pop or other simple instruction, TLB hit (L1D load, 4 cycles [IOM]). */
  readonly instruction: number;
  /** A TLB miss, per paging entry the walk reads (a 4 KiB page: 4; [DH14]: 13-17 ns for a whole walk). */
  readonly pageWalkLevel: number;
  /** A locked read-modify-write: xchg, cmpxchg (19 cycles [UOP]). */
  readonly atomicRmw: number;
  /** A spin step (a spin-until that found its condition false; the PAUSE in the loop, ~140 cycles [IOM]). */
  readonly pause: number;
  /** INVLPG (216 cycles, cache hot [MM15]). */
  readonly invlpg: number;
  /** A CR3 load (124 cycles [MM15]). */
  readonly cr3Flush: number;
  /** A global flush, CR4.PGE toggled (960 cycles [MM15]; half on each of the two writes). */
  readonly globalFlush: number;
  /** The sender's ICR write, per target (437 cycles at 2 GHz [SKY]). */
  readonly ipiSendPerTarget: number;
  /** From the ICR write until the target can accept the IPI ([UNCONFIRMED], fits [NA19]'s round trips). */
  readonly ipiDelivery: number;
  /** Accepting an interrupt or exception: the frame push and the gate (~440 cycles user->kernel [XP]). */
  readonly exceptionEntry: number;
  /** IRET (~270 cycles [XP]). */
  readonly iret: number;
  /** Bytes per nanosecond a copy or fill moves (12.8 GB/s: the 2018 thread's figure [MW18]). */
  readonly copyBytesPerNs: number;
  /** A step of the kernel's bookkeeping (an allocation or free under its lock: 30 ns [KW17]). */
  readonly atomicStep: number;
}

export const DEFAULT_COSTS: CostModel = {
  instruction: 1.3,
  pageWalkLevel: 3.75,
  atomicRmw: 7,
  pause: 47,
  invlpg: 72,
  cr3Flush: 41,
  globalFlush: 160,
  ipiSendPerTarget: 150,
  ipiDelivery: 400,
  exceptionEntry: 150,
  iret: 90,
  copyBytesPerNs: 12.8,
  atomicStep: 30,
};

const COST_KEYS = Object.keys(DEFAULT_COSTS) as (keyof CostModel)[];

/** The model with `overrides` applied: each a non-negative number (copyBytesPerNs positive). */
export function resolveCosts(overrides: Partial<CostModel> = {}): CostModel {
  const o = requireOptions<Partial<CostModel>>(overrides, 'costs', COST_KEYS);
  const out: Record<string, number> = { ...DEFAULT_COSTS };
  for (const key of COST_KEYS) {
    const v = o[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (key === 'copyBytesPerNs' && v === 0)) {
      throw new InputError(`cost ${key} ${describeValue(v)} must be a finite number >= 0 (nanoseconds)`);
    }
    out[key] = v;
  }
  return out as unknown as CostModel;
}

const {
  LOAD,
  STORE,
  PUSH,
  POP,
  CMPXCHG,
  XCHG,
  SPIN_UNTIL,
  PAUSE,
  INVLPG,
  MOV_TO_CR3,
  MOV_TO_CR4,
  SEND_IPI,
  IRET,
  COPY,
  FILL,
  ATOMIC,
} = OP;

/** What the step `cpu` just took cost, in nanoseconds (read from what the step left: its kind, op, TLB, events). */
export function stepCost(cpu: Cpu, c: CostModel): number {
  let ns = 0;
  // Exceptions raised and events delivered in this step each cost an entry.
  ns += cpu.exceptionLog.length * c.exceptionEntry;
  if (cpu.lastKind === STEP_KIND.INTERRUPT) return ns + c.exceptionEntry;
  if (cpu.lastKind !== STEP_KIND.INSTRUCTION) return ns + c.instruction;
  const ins = cpu.lastInstruction!;
  if (!cpu.port.lastHit && cpu.port.lastPa >= 0) ns += c.pageWalkLevel * cpu.port.lastWalkLevels;
  switch (ins.op) {
    case LOAD:
    case STORE:
    case PUSH:
    case POP:
      return ns + c.instruction;
    case CMPXCHG:
    case XCHG:
      return ns + c.atomicRmw;
    case SPIN_UNTIL:
      // A check that failed is a turn of the spin loop; one that succeeded, a load.
      return ns + (cpu.state === 'blocked' ? c.pause : c.instruction);
    case PAUSE:
      return ns + c.pause;
    case INVLPG:
      return ns + c.invlpg;
    case MOV_TO_CR3:
      return ns + c.cr3Flush;
    case MOV_TO_CR4:
      return ns + c.globalFlush;
    case SEND_IPI:
      return ns + c.ipiSendPerTarget * (cpu.lastIpiTargets?.length ?? 1);
    case IRET:
      return ns + c.iret;
    case COPY:
    case FILL:
      return ns + ins.size / c.copyBytesPerNs;
    case ATOMIC:
      return ns + c.atomicStep;
    default:
      return ns + c.instruction;
  }
}
