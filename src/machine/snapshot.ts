import { freeze } from 'immer';
import type { Cpu } from '../cpu/cpu.ts';
import type { IpiMode } from '../cpu/instruction.ts';
import type { InFlightIpi } from '../cpu/ipi-bus.ts';
import type { CpuState, StopEvent } from '../cpu/step-event.ts';
import type { TlbEntry } from '../mmu/tlb.ts';

// Immutable views of architectural state, for comparing two points of a run. Built off the step path (immer's
// deep freeze), never per instruction.

export interface CpuSnapshot {
  readonly id: number;
  readonly state: CpuState;
  readonly stop?: StopEvent;
  readonly registers: {
    readonly rip: number;
    readonly rsp: number;
    readonly rflags: number;
    readonly cpl: number;
    readonly ss: number;
    readonly cr0: number;
    readonly cr2: number;
    readonly cr3: number;
    readonly cr4: number;
    readonly efer: number;
  };
  readonly tss: { readonly rsp0: number; readonly ist: readonly number[] };
  readonly tlb: readonly TlbEntry[];
  readonly tlbStats: { readonly hits: number; readonly misses: number };
  readonly apic: {
    readonly pending: readonly number[];
    readonly inService: readonly number[];
    readonly nmiPending: boolean;
    readonly coalesced: number;
  };
  readonly interruptsEnabled: boolean;
  readonly nmiBlocked: boolean;
  readonly controlStack: readonly {
    readonly kind: string;
    readonly rip: number;
    readonly vector: number;
    readonly pending: string | undefined;
  }[];
  readonly lastException?: { readonly vector: number; readonly errorCode: number; readonly cr2: number };
}

export interface MachineSnapshot {
  readonly step: number;
  readonly cpus: readonly CpuSnapshot[];
  /** IPIs sent and not yet delivered, oldest first (`scheduled` delivery). */
  readonly inFlightIpis: readonly {
    readonly from: number;
    readonly to: number;
    readonly vector: number;
    readonly mode: IpiMode;
  }[];
  readonly memory: { readonly size: number; readonly ownFrames: number };
}

export function snapshotCpu(cpu: Cpu): CpuSnapshot {
  const r = cpu.regs;
  return {
    id: cpu.id,
    state: cpu.state,
    ...(cpu.stopEvent ? { stop: { ...cpu.stopEvent } } : {}),
    registers: {
      rip: cpu.rip,
      rsp: r.rsp,
      rflags: r.rflags,
      cpl: r.cpl,
      ss: r.ss,
      cr0: r.cr0,
      cr2: r.cr2,
      cr3: r.cr3,
      cr4: r.cr4,
      efer: r.efer,
    },
    tss: { rsp0: cpu.tss.rsp0, ist: Array.from(cpu.tss.ist) },
    tlb: cpu.tlb.entries(),
    tlbStats: { hits: cpu.tlb.hits, misses: cpu.tlb.misses },
    apic: {
      pending: cpu.apic.pendingVectors(),
      inService: cpu.apic.inServiceVectors(),
      nmiPending: cpu.apic.nmiPending,
      coalesced: cpu.apic.coalesced,
    },
    interruptsEnabled: cpu.interruptsEnabled,
    nmiBlocked: cpu.nmiBlocked,
    controlStack: cpu.controlStack(),
    ...(cpu.lastException ? { lastException: { ...cpu.lastException } } : {}),
  };
}

export function snapshotMachine(
  step: number,
  cpus: readonly Cpu[],
  memory: { size: number; ownFrameCount: number },
  inFlight: readonly InFlightIpi[],
) {
  const snapshot: MachineSnapshot = {
    step,
    cpus: cpus.map(snapshotCpu),
    inFlightIpis: inFlight.map((i) => ({ from: i.from, to: i.to, vector: i.vector, mode: i.nmi ? 'nmi' : 'fixed' })),
    memory: { size: memory.size, ownFrames: memory.ownFrameCount },
  };
  return freeze(snapshot, true);
}
