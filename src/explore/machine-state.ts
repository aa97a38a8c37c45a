import type { Program } from '../cpu/assembler.ts';
import { type Cpu, STEP_KIND } from '../cpu/cpu.ts';
import { OP } from '../cpu/instruction.ts';
import { attachKernel } from '../machine/kernel-boot.ts';
import type { Machine } from '../machine/machine.ts';
import { type Checkpoint, PARTS_PER_CPU, REGISTERS, registersInto } from './checkpoint.ts';
import { HardwareCheckpoint, HardwareState } from './hardware-state.ts';
import { Hasher } from './hash.ts';
import { MemoryTracker } from './memory-tracker.ts';
import { ProgramStates } from './programs.ts';
import { type IpiSnapshot, type KernelSnapshot, Snapshots, type TlbSnapshot } from './snapshots.ts';

// A machine's state as the stateful search sees it (stateful.ts): its fingerprint, and checkpoints it can go back
// to. The fingerprint covers everything that decides what can happen next:
//  - memory, hashed as it is written (memory-tracker.ts);
//  - per CPU: registers, state, NMI blocking, STI shadow, the APIC's IRR, ISR and NMI latch, the watched range of a
//    spinning CPU, the TLB (every slot, global entries and replacement pointers included) with the frame
//    generation each 4 KiB slot was filled at (the use-after-free detector's state), the control stack: each
//    activation's identity and history (programs.ts), and its store buffer and paging-structure caches
//    (hardware-state.ts);
//  - the contexts tasks were switched out of, the IPIs in flight, the program code addresses assigned so far;
//  - the kernel's bookkeeping (zone arrays, vmap areas, tasks' names, the log, call functions, the page cache);
//  - the TLB events left, and the outcome once a CPU stopped.
// Counters (steps, TLB hits) and what only reports read (the last exception, the trace) are left out.
//
// A checkpoint holds the rest of the state that a step changes (memory is an undo log position): small parts, and
// the control stacks' fields, are copied into it (checkpoints are reused, one per depth); TLBs and the kernel are
// snapshots shared by checkpoints until they change.

/** Outcomes as codes, for the fingerprint of a state where a CPU stopped. */
const OUTCOME_CODES: Readonly<Record<string, number>> = {
  'double-fault': 1,
  'triple-fault': 2,
  oops: 3,
  'stack-corruption': 4,
  'lost-write': 5,
  'use-after-free': 6,
  deadlock: 7,
  assertion: 8,
};

export interface StateOptions {
  /** Drive the programs from the outcome cache (the search) rather than let the CPUs resume them (a re-run). */
  readonly drive: boolean;
  /** The memory hash of the machine as built, when known (the same build again). */
  readonly initialMemory?: readonly [number, number];
  /** Words a stack pop read are dead until written: left out of the fingerprint (memory-tracker.ts). */
  readonly deadWords?: boolean;
  /** With dead words: a frame copied away keeps its words live until it is freed (memory-tracker.ts). */
  readonly copiedLive?: boolean;
}

/** A machine's fingerprint, kept current as it steps, and (driving) its checkpoints. */
export class MachineState {
  private readonly drive: boolean;
  readonly memory: MemoryTracker;
  readonly programs: ProgramStates;
  private readonly hasher = new Hasher();
  /** What hashCpu hashes, one value a slot: registers, state, APIC, watch (at most 30). */
  private readonly cpuValues = new Float64Array(32);
  private readonly tlbs: TlbSnapshot[];
  /** Per CPU: the TLB generation its snapshot in `tlbs` was taken (or put back) at. */
  private readonly tlbGenerations: Float64Array;
  /** Per CPU: the control stack's hash lanes, and a version number, new at each of its steps (see CpuCheckpoint). */
  private readonly stackHashes: Int32Array;
  private readonly stackVersions: Float64Array;
  private nextStackVersion = 0;
  private ipi: IpiSnapshot;
  private kernel: KernelSnapshot | undefined;
  /** Code addresses in the order assigned, with the hash of each prefix (index k: the first k). */
  private readonly codePrograms: Program[] = [];
  private codeA: number[] = [0x12345678];
  private codeB: number[] = [0x9abcdef0];
  /** TLB, IPI and kernel snapshots (snapshots.ts). */
  private readonly snapshots: Snapshots;
  /** The fingerprint of the state now (after refresh()). */
  fpA = 0;
  fpB = 0;
  /** The parts of the last fingerprint, two lanes each (see partNames()). */
  readonly parts: Int32Array;
  private readonly cpuHasher = new Hasher();
  /** Per CPU: its hash lanes as last computed, and (six per CPU) what they were computed with (see cpuPart). */
  private readonly cpuHashes: Int32Array;
  private readonly cpuSeen: Float64Array;
  /** The CPU that took the last step (its registers may have changed), or -1. */
  private stepped = -1;
  /** Store buffers and paging-structure caches (hardware-state.ts). */
  private readonly hardware: HardwareState;

  constructor(
    readonly machine: Machine,
    options: StateOptions,
  ) {
    this.drive = options.drive;
    this.parts = new Int32Array(2 * (1 + PARTS_PER_CPU * machine.cpus.length + 4));
    this.hardware = new HardwareState(machine);
    this.cpuHashes = new Int32Array(2 * machine.cpus.length);
    this.cpuSeen = new Float64Array(6 * machine.cpus.length).fill(Number.NaN);
    this.memory = new MemoryTracker(machine.memory, {
      undo: options.drive,
      deadWords: options.deadWords === true,
      copiedLive: options.copiedLive === true,
      ...(options.initialMemory ? { initial: options.initialMemory } : {}),
    });
    this.programs = new ProgramStates(machine.cpus);
    this.snapshots = new Snapshots(machine.config.tlb, this.programs.values);
    this.tlbs = machine.cpus.map((cpu) => this.snapshots.tlb(cpu));
    this.tlbGenerations = Float64Array.from(machine.cpus, (cpu) => cpu.tlb.generation);
    this.stackHashes = new Int32Array(2 * machine.cpus.length);
    this.stackVersions = new Float64Array(machine.cpus.length);
    for (const cpu of machine.cpus) {
      this.programs.hashCpu(cpu, this.stackHashes, 2 * cpu.id);
      this.stackVersions[cpu.id] = this.nextStackVersion++;
    }
    this.ipi = this.snapshots.ipi(machine.ipiBus);
    this.kernel = machine.kernel ? this.snapshots.kernel(machine.kernel, undefined) : undefined;
    this.noteCodeAddresses();
  }

  /** CPU `id`'s TLB as of the last choice: a snapshot shared by every state with the same contents. */
  tlbSnapshot(id: number): TlbSnapshot {
    return this.tlbs[id]!;
  }

  /** Stops tracking memory writes (the machine can then be reset or dropped). */
  detach(): void {
    this.memory.detach();
  }

  // After each choice ---------------------------------------------------------------------------------------------

  /** Before CPU `id` steps (driving): its program's next instruction comes from the cache. */
  beforeStep(id: number): void {
    this.programs.prefetch(this.machine.cpus[id]!);
  }

  /**
   * After a choice: `stepped` is the CPU that took a step, or -1 for a delivery or TLB event. Brings the records,
   * snapshots and hashes up to date.
   */
  afterChoice(stepped: number): void {
    const m = this.machine;
    this.stepped = stepped;
    const cpus = m.cpus;
    for (let id = 0; id < cpus.length; id++) {
      const cpu = cpus[id]!;
      if (cpu.tlb.generation !== this.tlbGenerations[id]) {
        this.tlbs[id] = this.snapshots.tlb(cpu);
        this.tlbGenerations[id] = cpu.tlb.generation;
      }
    }
    if (stepped >= 0) {
      const cpu = cpus[stepped]!;
      this.programs.sync(cpu);
      this.programs.hashCpu(cpu, this.stackHashes, 2 * stepped);
      this.stackVersions[stepped] = this.nextStackVersion++;
      this.programs.contexts = this.programs.snapshotContexts(this.programs.contexts, cpu);
      // Bookkeeping changes only in atomic steps (the contract); a re-run looks after every step, to catch others.
      if (m.kernel) {
        const ins = cpu.lastKind === STEP_KIND.INSTRUCTION ? cpu.lastInstruction : undefined;
        if (ins?.op === OP.ATOMIC && this.drive) {
          // The same atomic instruction on the same bookkeeping makes the same bookkeeping (the contract).
          const before = this.kernel!;
          this.kernel = this.snapshots.kernelAfter(m.kernel, before, ins);
        } else if (!this.drive) this.kernel = this.snapshots.kernel(m.kernel, this.kernel);
      }
      if (m.programAddresses.size !== this.codePrograms.length) this.noteCodeAddresses();
    }
    const bus = m.ipiBus;
    if (bus.sentCount !== this.ipi.sent || bus.inFlight.length !== this.ipi.length) this.ipi = this.snapshots.ipi(bus);
    this.hardware.update();
  }

  /** The fingerprint of the state now, with `tlbLeft` TLB events left, into fpA/fpB (its parts into `parts`). */
  fingerprint(tlbLeft: number): void {
    const m = this.machine;
    const parts = this.parts;
    parts[0] = this.memory.sumA;
    parts[1] = this.memory.sumB;
    let p = 2;
    for (let id = 0; id < m.cpus.length; id++) {
      this.cpuPart(id, id === this.stepped, p);
      p += 2;
      parts[p++] = this.tlbs[id]!.hashA;
      parts[p++] = this.tlbs[id]!.hashB;
      parts[p++] = this.stackHashes[2 * id]!;
      parts[p++] = this.stackHashes[2 * id + 1]!;
      parts[p++] = this.hardware.lanes[2 * id]!;
      parts[p++] = this.hardware.lanes[2 * id + 1]!;
    }
    const contexts = this.programs.contexts;
    parts[p++] = contexts.hashA;
    parts[p++] = contexts.hashB;
    parts[p++] = this.ipi.hashA;
    parts[p++] = this.ipi.hashB;
    parts[p++] = this.kernel?.hashA ?? 0;
    parts[p++] = this.kernel?.hashB ?? 0;
    const n = this.codePrograms.length;
    parts[p++] = this.codeA[n]!;
    parts[p++] = this.codeB[n]!;
    // The parts hashed once; the TLB events left go in last, so that combine() is a step of the hash, not a rehash
    // of every part (the search asks for the same state with more events left at every state it reaches).
    const h = this.hasher.reset(0x428a2f98, 0x71374491);
    h.addLanes(parts);
    const stop = m.firstStop;
    h.add(stop ? (OUTCOME_CODES[stop.outcome] ?? 9) : 0);
    this.partsA = h.a;
    this.partsB = h.b;
    this.combine(tlbLeft);
    this.fpA = this.combinedA;
    this.fpB = this.combinedB;
  }

  /** The running hash of the last fingerprint's parts and outcome, before the TLB events left (see combine). */
  private partsA = 0;
  private partsB = 0;
  /** The lanes of the last combine(). */
  combinedA = 0;
  combinedB = 0;

  /**
   * The fingerprint of the state of the last fingerprint() as if it had `tlbLeft` TLB events left, into
   * combinedA/combinedB (the search looks for the same state with more events left: stateful.ts).
   */
  combine(tlbLeft: number): void {
    const h = this.hasher.reset(this.partsA, this.partsB);
    h.add(tlbLeft);
    this.combinedA = h.finalA;
    this.combinedB = h.finalB;
  }

  /** What the parts of the last fingerprint are, in words (for the contract check's report). */
  partNames(): string[] {
    const names = ['memory'];
    for (let id = 0; id < this.machine.cpus.length; id++) {
      names.push(
        `CPU ${id}'s registers, state or APIC`,
        `CPU ${id}'s TLB`,
        `CPU ${id}'s programs (their histories)`,
        `CPU ${id}'s store buffer or paging-structure caches`,
      );
    }
    names.push(
      'the saved task contexts',
      'the IPIs in flight',
      "the kernel's bookkeeping",
      'the code addresses assigned',
    );
    return names;
  }

  /** The parts of the last fingerprint that differ from `expected` (parts a fingerprint had elsewhere), named. */
  describeDifference(expected: Int32Array): string {
    const names = this.partNames();
    const differ = names.filter(
      (_, i) => this.parts[2 * i] !== expected[2 * i] || this.parts[2 * i + 1] !== expected[2 * i + 1],
    );
    return differ.length ? `what differs: ${differ.join(', ')}` : 'what differs: the TLB events left or the outcome';
  }

  private hashCpu(cpu: Cpu, h: Hasher): void {
    const v = this.cpuValues;
    registersInto(cpu, v);
    v[REGISTERS] = cpu.status | (cpu.nmiBlocked ? 8 : 0) | (cpu.interruptShadow ? 16 : 0);
    const apic = cpu.apic;
    // IRR and ISR are mostly zero: a mask of the words that are not, then those words (hashing 16 words every
    // step was a fifth of the search's hashing).
    let mask = 0;
    if ((apic.pendingCount | apic.serviceCount) !== 0) {
      for (let w = 0; w < 8; w++) if ((apic.irr[w]! | apic.isr[w]!) !== 0) mask |= 1 << w;
    }
    v[REGISTERS + 1] = mask;
    let n = REGISTERS + 2;
    for (let w = 0; mask !== 0 && w < 8; w++) {
      if ((mask & (1 << w)) === 0) continue;
      v[n++] = apic.irr[w]!;
      v[n++] = apic.isr[w]!;
    }
    v[n++] = apic.nmiPending ? 1 : 0;
    this.machine.memory.watchedRange(cpu.id, WATCH, 0);
    v[n++] = WATCH[0]!;
    v[n++] = WATCH[1]!;
    // One value at a time as Hasher.add would, in locals (hashCpu runs at every step).
    h.reset(0xb5c0fbcf, cpu.id).addValues(v, n);
  }

  /**
   * CPU `id`'s hash lanes into `parts` at `p`: recomputed when it stepped (`stepped`), else only when what another
   * CPU's step or an event can change on it (its state, a pending interrupt, its watch) differs from when it was.
   */
  private cpuPart(id: number, stepped: boolean, p: number): void {
    const cpu = this.machine.cpus[id]!;
    const seen = this.cpuSeen;
    const base = 6 * id;
    this.machine.memory.watchedRange(id, WATCH, 0);
    const apic = cpu.apic;
    if (
      stepped ||
      seen[base] !== cpu.status ||
      seen[base + 1] !== apic.pendingCount ||
      seen[base + 2] !== (apic.nmiPending ? 1 : 0) ||
      seen[base + 3] !== WATCH[0] ||
      seen[base + 4] !== WATCH[1] ||
      seen[base + 5] !== apic.coalesced
    ) {
      seen[base] = cpu.status;
      seen[base + 1] = apic.pendingCount;
      seen[base + 2] = apic.nmiPending ? 1 : 0;
      seen[base + 3] = WATCH[0]!;
      seen[base + 4] = WATCH[1]!;
      seen[base + 5] = apic.coalesced;
      this.hashCpu(cpu, this.cpuHasher);
      this.cpuHashes[2 * id] = this.cpuHasher.a;
      this.cpuHashes[2 * id + 1] = this.cpuHasher.b;
    }
    this.parts[p] = this.cpuHashes[2 * id]!;
    this.parts[p + 1] = this.cpuHashes[2 * id + 1]!;
  }

  /** Forgets the CPUs' cached hashes (after a change made outside a step: tests). */
  invalidate(): void {
    this.cpuSeen.fill(Number.NaN);
  }

  // Snapshots -------------------------------------------------------------------------------------------------------

  private noteCodeAddresses(): void {
    const map = this.machine.programAddresses;
    let k = 0;
    const h = this.hasher;
    for (const program of map.keys()) {
      if (k >= this.codePrograms.length) {
        this.codePrograms.push(program);
        h.reset(this.codeA[k]!, this.codeB[k]!).add(this.programs.values.functionHash(program));
        this.codeA[k + 1] = h.a;
        this.codeB[k + 1] = h.b;
      }
      k++;
    }
  }

  // Checkpoints (driving) -----------------------------------------------------------------------------------------

  /** Saves the state now into `c` (its fingerprint from the last fingerprint()). */
  save(c: Checkpoint): void {
    const m = this.machine;
    for (let id = 0; id < m.cpus.length; id++) {
      const cpu = m.cpus[id]!;
      const s = c.cpus[id]!;
      registersInto(cpu, s.regs);
      s.status = cpu.status;
      s.nmiBlocked = cpu.nmiBlocked;
      s.interruptShadow = cpu.interruptShadow;
      s.stopEvent = cpu.stopEvent;
      s.lastException = cpu.lastException;
      const apic = cpu.apic;
      // Mostly empty: the words are copied only where a bit is set (checkpoints are reused, so both sides count).
      if ((apic.pendingCount | apic.serviceCount | s.pendingCount | s.serviceCount) !== 0) {
        for (let w = 0; w < 8; w++) {
          s.irr[w] = apic.irr[w]!;
          s.isr[w] = apic.isr[w]!;
        }
      }
      s.nmiPending = apic.nmiPending;
      s.pendingCount = apic.pendingCount;
      s.serviceCount = apic.serviceCount;
      s.coalesced = apic.coalesced;
      m.memory.watchedRange(id, s.watch, 0);
      s.tlb = this.tlbs[id]!;
      const version = this.stackVersions[id]!;
      if (s.stackVersion !== version) {
        this.programs.saveCpu(cpu, s.stack);
        s.stackVersion = version;
        s.stackA = this.stackHashes[2 * id]!;
        s.stackB = this.stackHashes[2 * id + 1]!;
      }
    }
    c.memory = this.memory.length;
    c.ipi = this.ipi;
    c.kernel = this.kernel;
    c.contexts = this.programs.contexts;
    c.codeCount = this.codePrograms.length;
    c.firstStop = m.firstStop;
    c.stepCount = m.stepCount;
    c.fpA = this.fpA;
    c.fpB = this.fpB;
    c.parts.set(this.parts);
    c.cpuSeen.set(this.cpuSeen);
    if (this.hardware.present) {
      c.hardware ??= new HardwareCheckpoint(m);
      this.hardware.save(c.hardware);
    }
  }

  /** Puts the machine back in the state `c` saved (a state on the current path: memory rolls back). */
  restore(c: Checkpoint): void {
    const m = this.machine;
    this.memory.rollback(c.memory);
    for (let id = 0; id < m.cpus.length; id++) {
      const cpu = m.cpus[id]!;
      const s = c.cpus[id]!;
      const r = cpu.regs;
      const regs = s.regs;
      r.rsp = regs[0]!;
      r.rflags = regs[1]!;
      r.cpl = regs[2] as 0 | 3;
      r.ss = regs[3]!;
      r.cr0 = regs[4]!;
      r.cr2 = regs[5]!;
      r.cr3 = regs[6]!;
      r.cr4 = regs[7]!;
      r.efer = regs[8]!;
      cpu.status = s.status;
      cpu.nmiBlocked = s.nmiBlocked;
      cpu.interruptShadow = s.interruptShadow;
      cpu.stopEvent = s.stopEvent;
      cpu.lastException = s.lastException;
      const apic = cpu.apic;
      // Both empty (the counts say so) is the common case: nothing to copy.
      if ((apic.pendingCount | apic.serviceCount | s.pendingCount | s.serviceCount) !== 0) {
        for (let w = 0; w < 8; w++) {
          apic.irr[w] = s.irr[w]!;
          apic.isr[w] = s.isr[w]!;
        }
      }
      apic.nmiPending = s.nmiPending;
      apic.pendingCount = s.pendingCount;
      apic.serviceCount = s.serviceCount;
      apic.coalesced = s.coalesced;
      const start = s.watch[0]!;
      m.memory.watchedRange(id, WATCH, 0);
      if (WATCH[0] !== start || WATCH[1] !== s.watch[1]) {
        m.memory.unwatch(id);
        if (start >= 0) m.memory.watch(id, start, s.watch[1]! - start);
      }
      if (this.tlbs[id] !== s.tlb || cpu.tlb.generation !== this.tlbGenerations[id]) {
        cpu.tlb.copyFrom(s.tlb.tlb);
        cpu.port.setSlotGenerations(s.tlb.generations);
        this.tlbs[id] = s.tlb;
        this.tlbGenerations[id] = cpu.tlb.generation;
      }
      if (this.stackVersions[id] !== s.stackVersion) {
        this.programs.restoreCpuFrom(cpu, s.stack);
        this.stackVersions[id] = s.stackVersion;
        this.stackHashes[2 * id] = s.stackA;
        this.stackHashes[2 * id + 1] = s.stackB;
      }
    }
    if (this.programs.contexts !== c.contexts) this.programs.restoreContexts(c.contexts);
    if (this.ipi !== c.ipi) {
      m.ipiBus.copyFrom(c.ipi.bus);
      this.ipi = c.ipi;
    }
    if (this.kernel !== c.kernel && c.kernel && m.kernel) {
      // Copied into the live kernel's own arrays (which a change then need not copy first), so the zone no longer
      // shares the snapshot's: the next snapshot hashes it whole (see snapshotKernel).
      m.kernel.copyFrom(c.kernel.kernel);
      attachKernel(m.memory, m.kernel);
      m.memory.guardChanged();
      this.kernel = c.kernel;
    }
    if (this.codePrograms.length !== c.codeCount) {
      const map = m.programAddresses as Map<Program, number>;
      for (let k = c.codeCount; k < this.codePrograms.length; k++) map.delete(this.codePrograms[k]!);
      this.codePrograms.length = c.codeCount;
    }
    m.firstStop = c.firstStop;
    m.stepCount = c.stepCount;
    if (c.hardware !== undefined) this.hardware.restore(c.hardware);
    // The CPUs' hashes as the checkpoint had them (parts 2 + 8 id), with what they were computed from.
    for (let id = 0; id < m.cpus.length; id++) {
      this.cpuHashes[2 * id] = c.parts[2 + 2 * PARTS_PER_CPU * id]!;
      this.cpuHashes[2 * id + 1] = c.parts[3 + 2 * PARTS_PER_CPU * id]!;
    }
    this.cpuSeen.set(c.cpuSeen);
    this.stepped = -1;
    this.fpA = c.fpA;
    this.fpB = c.fpB;
    this.parts.set(c.parts);
  }
}

const WATCH = new Float64Array(2);
