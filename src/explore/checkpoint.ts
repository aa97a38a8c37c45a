import type { Cpu } from '../cpu/cpu.ts';
import type { Machine } from '../machine/machine.ts';
import type { HardwareCheckpoint } from './hardware-state.ts';
import { type ContextsSnapshot, StackStore } from './programs.ts';
import type { IpiSnapshot, KernelSnapshot, TlbSnapshot } from './snapshots.ts';

// A checkpoint of the stateful search (machine-state.ts): the part of a machine state a step changes, besides
// memory (an undo-log position), copied or shared with other checkpoints (snapshots.ts). One per depth, reused.

/** Registers in a fixed order: rsp, rflags, cpl, ss, cr0, cr2, cr3, cr4, efer. */
export const REGISTERS = 9;

/** `cpu`'s registers into `into[0..REGISTERS)`, in that order (a checkpoint's copy; what hashCpu hashes first). */
export function registersInto(cpu: Cpu, into: Float64Array): void {
  const r = cpu.regs;
  into[0] = r.rsp;
  into[1] = r.rflags;
  into[2] = r.cpl;
  into[3] = r.ss;
  into[4] = r.cr0;
  into[5] = r.cr2;
  into[6] = r.cr3;
  into[7] = r.cr4;
  into[8] = r.efer;
}

/** Per CPU, what a checkpoint holds: copies, the shared TLB snapshot, and the control stack's copy. */
class CpuCheckpoint {
  readonly regs = new Float64Array(REGISTERS);
  status = 0;
  nmiBlocked = false;
  interruptShadow = false;
  stopEvent: Cpu['stopEvent'];
  lastException: Cpu['lastException'];
  readonly irr = new Uint32Array(8);
  readonly isr = new Uint32Array(8);
  nmiPending = false;
  pendingCount = 0;
  serviceCount = 0;
  coalesced = 0;
  readonly watch = new Float64Array(2);
  tlb!: TlbSnapshot;
  /** The control stack: its version (see MachineState.stackVersions), hash lanes, and a copy. */
  stackVersion = -1;
  stackA = 0;
  stackB = 0;
  readonly stack = new StackStore();
}

/** A state the search can go back to. */
export class Checkpoint {
  readonly cpus: CpuCheckpoint[];
  memory = 0;
  ipi!: IpiSnapshot;
  kernel: KernelSnapshot | undefined;
  contexts!: ContextsSnapshot;
  codeCount = 0;
  firstStop: Machine['firstStop'];
  stepCount = 0;
  /** The fingerprint, and its parts (see MachineState.partNames). */
  fpA = 0;
  fpB = 0;
  readonly parts: Int32Array;
  readonly cpuSeen: Float64Array;
  /** Store buffers and paging-structure caches (with machines that have them). */
  hardware: HardwareCheckpoint | undefined;

  constructor(cpus: number) {
    this.cpus = Array.from({ length: cpus }, () => new CpuCheckpoint());
    this.parts = new Int32Array(2 * (1 + PARTS_PER_CPU * cpus + 4));
    this.cpuSeen = new Float64Array(6 * cpus);
  }
}

/** Fingerprint parts per CPU: registers and state, TLB, programs, store buffer and paging-structure caches. */
export const PARTS_PER_CPU = 4;
