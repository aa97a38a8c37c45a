import createDebug from 'debug';
import type { Assembler, Program } from '../cpu/assembler.ts';
import type { CpuBus } from '../cpu/core.ts';
import { Cpu } from '../cpu/cpu.ts';
import type { IpiDestination, IpiMode, Outcome } from '../cpu/instruction.ts';
import {
  type DeliverySelector,
  type InFlightIpi,
  IPI_DELIVERY_MODES,
  IpiBus,
  type IpiDelivery,
} from '../cpu/ipi-bus.ts';
import { stopOnMemoryViolation } from '../cpu/memory-violation.ts';
import { PageCache } from '../cpu/page-cache.ts';
import type { StepEvent } from '../cpu/step-event.ts';
import { exceptionGates } from '../faults/handlers.ts';
import type { Kernel } from '../mm/kernel.ts';
import { smpSymbols } from '../mm/smp.ts';
import { formatVirtual, isCanonical, LAYOUT, toVirtual } from '../mmu/address.ts';
import { Footprint } from '../mmu/footprint.ts';
import { describeHex, describeValue, InputError, requireOneOf } from '../mmu/input-error.ts';
import { PSC_LEVEL } from '../mmu/paging-structure-cache.ts';
import { type FrameStore, PhysicalMemory } from '../mmu/physical-memory.ts';
import { Tlb } from '../mmu/tlb.ts';
import { arenaBytes, TypedArena } from '../mmu/typed-arena.ts';
import { type BootInfo, bootMinimal } from './boot.ts';
import { entryAddress, mapBootPage, mappedAddress, requireBoot } from './boot-mappings.ts';
import { assignCodeAddress, CODE_BASE, USER_CODE_BASE } from './code-addresses.ts';
import { BOOT_RESERVE, bootKernel } from './kernel-boot.ts';
import { MAX_CPUS, type MachineConfig, type ResolvedConfig, resolveConfig } from './machine-config.ts';
import type { MapFlags } from './page-tables.ts';
import {
  bufferedCpu,
  type RunLoopMachine,
  runRandom,
  runRoundRobin,
  runRoundRobinWithBus,
  runSchedule,
  runTimed,
} from './run-loops.ts';
import { describeDeadlock, planRun, type RunOptions, type RunResult } from './run-options.ts';
import { PSC_ENTRY_KINDS, type PscEntryKind } from './schedule.ts';
import { type MachineSnapshot, snapshotMachine } from './snapshot.ts';
import { SteppedMachine, stepsObserved } from './step-recording.ts';

export { MAX_CPUS, MAX_MEMORY, type MachineConfig, MIN_BOOT_MEMORY } from './machine-config.ts';
export type { RunOptions, RunResult } from './run-options.ts';

const log = { apic: createDebug('x86slice:apic') };

/** A schedule token's paging-structure-cache entry kind, as the cache's level. */
const PSC_LEVEL_OF = { pml4e: PSC_LEVEL.PML4E, pdpte: PSC_LEVEL.PDPTE, pde: PSC_LEVEL.PDE } as const;

/** A caller's address that must be canonical (a TLB event names a page the TLB could hold). */
function canonicalAddress(va: number | bigint, where: string): number {
  const v = toVirtual(va, where);
  if (!isCanonical(v)) throw new InputError(`${where} ${formatVirtual(v)} is not canonical (bits 63:47 differ)`);
  return v;
}

/** A multi-CPU x86-64 machine: CPUs sharing physical memory, stepped one instruction at a time. */
export class Machine extends SteppedMachine implements CpuBus, RunLoopMachine {
  readonly memory: PhysicalMemory;
  readonly cpus: readonly Cpu[];
  readonly config: ResolvedConfig;
  private pausedFootprint: Footprint | undefined;
  /** The interrupt bus: where IPIs in flight wait for delivery. */
  readonly ipiBus: IpiBus;
  boot: BootInfo | undefined;
  /** The booted kernel's state (zone, vmap areas, policies), when created with `kernel`. */
  kernel: Kernel | undefined;
  /** Each CPU's simulated clock in nanoseconds: advanced by `timed` runs (see cost-model.ts), read by RDTSC. */
  readonly clocks: Float64Array;
  /** Internal (run-loops.ts): when each IPI in flight was sent (its sender's clock), for a timed run's latency. */
  readonly ipiSentAt = new Map<InFlightIpi, number>();
  /** A timed run is in progress (see runTimed). */
  private timed = false;
  /** Names of addresses (lock words, csd flags) for reports: the kernel's at boot; a test may add its own. */
  readonly symbols = new Map<number, string>();
  /** An image's names, shared by its instances (looked up after `symbols`; not copied per instance). */
  private inheritedSymbols: ReadonlyMap<number, string> | undefined;

  /** Internal (MachineImage): names every instance shares. */
  inheritSymbols(names: ReadonlyMap<number, string>): void {
    this.inheritedSymbols = names;
  }

  /** The name of address `va`, if the machine knows one. */
  nameOf(va: number): string | undefined {
    return this.symbols.get(va) ?? this.inheritedSymbols?.get(va);
  }
  private readonly codeAddresses: Map<Program, number>;
  private readonly userCodeAddresses = new Map<Program, number>();

  protected constructor(config: ResolvedConfig, base?: FrameStore, codeAddresses?: Map<Program, number>) {
    super(config);
    this.config = config;
    this.memory = new PhysicalMemory(config.memory, base, MAX_CPUS);
    this.memory.setWatcher((owner) => this.cpus[owner]?.wake());
    // One buffer for every CPU's TLB and page cache (see TypedArena): creating an image instance stays cheap.
    const perCpu = [Tlb.storage(config.tlb), PageCache.storage];
    const arena = new TypedArena(arenaBytes(...Array.from({ length: config.cpus }, () => perCpu).flat()));
    this.cpus = Array.from(
      { length: config.cpus },
      (_, id) =>
        new Cpu(id, this.memory, this, {
          tlb: config.tlb,
          arena,
          storeBuffer: config.storeBuffer,
          pagingStructureCache: config.pagingStructureCaches,
        }),
    );
    this.ipiBus = new IpiBus(
      this.cpus.map((c) => c.apic),
      config.ipiDelivery,
    );
    this.clocks = new Float64Array(config.cpus);
    for (const cpu of this.cpus) cpu.port.footprint = this.footprint;
    this.codeAddresses = new Map(codeAddresses);
  }

  /** Creates a machine; by default booted with page tables, stacks and IDTs (see bootMinimal). */
  static create(config: MachineConfig = {}): Machine {
    const m = new Machine(resolveConfig(config));
    const kernel = m.config.kernel;
    if (m.config.boot) m.boot = bootMinimal(m.memory, m.cpus, kernel ? BOOT_RESERVE : m.memory.size);
    if (kernel) {
      m.kernel = bootKernel(m.memory, m.boot!, kernel);
      // The kernel's fault dispatcher replaces the minimal boot's #PF handler (src/faults).
      const gates = exceptionGates(m.boot!.taskStacks, m.kernel);
      for (const cpu of m.cpus) for (const [vector, gate] of gates) cpu.setGate(vector, gate);
      for (const [va, name] of smpSymbols(m.kernel)) m.symbols.set(va, name);
    }
    return m;
  }

  /**
   * Internal (MachineImage.reset): back to a machine just made on its frames, with `codeAddresses`, before the
   * image's state is copied in. Every field the constructor sets is reset here or by the image.
   */
  resetForImage(codeAddresses: ReadonlyMap<Program, number>): void {
    this.pauseFootprints(false);
    this.memory.reset();
    // The image copies registers, TSS, IDT, TLB and APIC in next (see MachineImage.load).
    for (const cpu of this.cpus) cpu.resetRunState();
    this.resetSteps();
    this.clocks.fill(0);
    this.ipiSentAt.clear();
    // A run only adds addresses (programs first used), so an unchanged size is an unchanged map.
    if (this.codeAddresses.size !== codeAddresses.size) {
      this.codeAddresses.clear();
      for (const [program, address] of codeAddresses) this.codeAddresses.set(program, address);
    }
    if (this.userCodeAddresses.size !== 0) this.userCodeAddresses.clear();
  }

  /** Internal: a machine sharing `base` frames copy-on-write (see MachineImage). */
  static fromFrames(config: MachineConfig, base: FrameStore, codeAddresses: Map<Program, number>): Machine {
    return new Machine(resolveConfig(config), base, codeAddresses);
  }

  /**
   * Turns on footprints for a machine made without them (the checker's dependency analysis needs them): only
   * before the first step, so that no page was cached unrecorded.
   */
  recordFootprints(): Footprint {
    if (this.footprint) return this.footprint;
    if (this.stepCount !== 0) {
      throw new InputError(`recordFootprints(): the machine has run ${this.stepCount} steps; call it before the first`);
    }
    const footprint = new Footprint();
    this.footprint = footprint;
    for (const cpu of this.cpus) cpu.port.footprint = footprint;
    return footprint;
  }

  /**
   * Internal (the checker): stops recording footprints (`paused`), for steps whose footprints are known already
   * (a replayed prefix), or starts again. Pages cached meanwhile are dropped, so every access reaches the footprint.
   */
  pauseFootprints(paused: boolean): void {
    if (paused) {
      if (this.footprint === undefined) return;
      this.pausedFootprint = this.footprint;
      this.footprint = undefined;
      for (const cpu of this.cpus) cpu.port.footprint = undefined;
      return;
    }
    const footprint = this.pausedFootprint;
    if (footprint === undefined) return;
    this.pausedFootprint = undefined;
    this.footprint = footprint;
    for (const cpu of this.cpus) {
      cpu.port.footprint = footprint;
      cpu.port.dropPages();
    }
  }

  cpu(id: number): Cpu {
    const cpu = typeof id === 'number' && Number.isInteger(id) ? this.cpus[id] : undefined;
    if (!cpu) {
      throw new InputError(`CPU ${describeValue(id)} does not exist: this machine has CPUs 0..${this.cpus.length - 1}`);
    }
    return cpu;
  }

  /** Starts `program` as the task on CPU `id`. */
  load<A extends readonly unknown[]>(id: number, program: Program<A>, ...args: A): this {
    this.cpu(id).start(program, ...args);
    return this;
  }

  // CpuBus --------------------------------------------------------------------------------------------------

  codeAddress(program: Program): number {
    const known = this.codeAddresses.size;
    const address = assignCodeAddress(this.codeAddresses, program, CODE_BASE);
    // The order of first uses decides every program's address: a step that takes one names it in its footprint.
    if (this.codeAddresses.size !== known) this.footprint?.resources.push('code addresses');
    return address;
  }

  assembler(id: number): Assembler | undefined {
    return this.cpus[id]?.asm;
  }

  clock(id: number): number {
    return this.clocks[id] ?? 0;
  }

  userCodeAddress(program: Program): number {
    const known = this.userCodeAddresses.size;
    const address = assignCodeAddress(this.userCodeAddresses, program, USER_CODE_BASE);
    if (this.userCodeAddresses.size !== known) this.footprint?.resources.push('user code addresses');
    return address;
  }

  /** Code addresses assigned so far (for images). */
  get programAddresses(): ReadonlyMap<Program, number> {
    return this.codeAddresses;
  }

  sendIpi(from: number, to: IpiDestination, vector: number, mode: IpiMode): readonly number[] {
    let targets: number[];
    if (to === 'self') targets = [from];
    else if (to === 'all') targets = this.cpus.map((c) => c.id);
    else if (to === 'all-but-self') targets = this.cpus.map((c) => c.id).filter((id) => id !== from);
    else targets = typeof to === 'number' ? [to] : [...to];
    for (const id of targets) this.cpu(id); // all validated before any IRR changes
    const before = this.ipiBus.inFlight.length;
    this.ipiBus.send(from, targets, vector, mode === 'nmi');
    // A timed run needs each IPI's send time for its delivery latency; other runs keep nothing.
    if (this.timed) {
      const inFlight = this.ipiBus.inFlight;
      for (let i = before; i < inFlight.length; i++) this.ipiSentAt.set(inFlight[i]!, this.clocks[from]!);
    }
    if (log.apic.enabled) {
      const how = this.ipiBus.mode === 'immediate' ? 'delivered' : 'in flight';
      log.apic('cpu%d sends %s vector 0x%s to [%s] (%s)', from, mode, vector.toString(16), targets.join(','), how);
    }
    return targets;
  }

  /** IPIs sent and not yet in their target's IRR, oldest first (only in `scheduled` delivery; see IpiBus). */
  get inFlightIpis(): readonly InFlightIpi[] {
    return [...this.ipiBus.inFlight];
  }

  /** How sent IPIs reach their targets from now on: `immediate` or at delivery events (`scheduled`). */
  get ipiDelivery(): IpiDelivery {
    return this.ipiBus.mode;
  }

  set ipiDelivery(mode: IpiDelivery) {
    this.ipiBus.mode = requireOneOf(mode, 'ipiDelivery', IPI_DELIVERY_MODES);
  }

  /**
   * A delivery event: the oldest IPI in flight to CPU `id` that `which` selects ('oldest', 'nmi' or a vector) reaches
   * its IRR (or NMI latch), as hardware may let it at any time. The trace records it as a `deliver` event on the
   * target. Refused when no such IPI is in flight.
   */
  deliverIpi(id: number, which: DeliverySelector = 'oldest'): InFlightIpi {
    const cpu = this.cpu(id);
    if (which !== 'oldest' && which !== 'nmi' && !(typeof which === 'number' && Number.isInteger(which))) {
      throw new InputError(`deliverIpi(${id}, ${describeValue(which)}): which must be 'oldest', 'nmi' or a vector`);
    }
    const index = this.ipiBus.find(id, which);
    if (index < 0) {
      const what = which === 'oldest' ? 'IPI' : which === 'nmi' ? 'NMI' : `IPI of vector 0x${which.toString(16)}`;
      throw new InputError(`no ${what} is in flight to CPU ${id} (${this.ipiBus.inFlight.length} in flight in all)`);
    }
    return this.deliverInFlight(cpu, index);
  }

  /** Internal (run-loops.ts): delivers the in-flight IPI at `index` (to `cpu`) and records the event. */
  deliverInFlight(cpu: Cpu, index: number): InFlightIpi {
    const ipi = this.ipiBus.deliverAt(index);
    this.ipiSentAt.delete(ipi);
    if (this.config.trace) this.traceLog.appendDelivery(cpu, this.stepCount, ipi);
    if (log.apic.enabled) {
      log.apic('vector 0x%s from cpu%d delivered to cpu%d', ipi.vector.toString(16), ipi.from, ipi.to);
    }
    return ipi;
  }

  // Stepping ------------------------------------------------------------------------------------------------

  /** Whether CPU `id` can move: running, or halted/blocked with an interrupt it can accept. */
  runnable(id: number): boolean {
    return this.cpu(id).runnable;
  }

  /**
   * Executes exactly one instruction or one interrupt acceptance on CPU `id`. A blocked CPU re-checks its spin
   * condition; a halted CPU with nothing to accept takes an idle step. Returns the step's event when tracing.
   */
  step(id: number): StepEvent | undefined {
    const cpu = this.cpu(id);
    if (!cpu.started && !cpu.runnable) {
      throw new InputError(`CPU ${id} has no program: load one with machine.load(${id}, program)`);
    }
    if (cpu.isStopped) {
      throw new InputError(
        `CPU ${id} cannot step: it is ${cpu.state} (${cpu.stopEvent?.outcome}: ${cpu.stopEvent?.message.split('\n')[0]})`,
      );
    }
    return this.stepObserved(cpu, stepsObserved(this.config.trace), true);
  }

  /** The recorded steps (tracing on; the last `traceLimit` of them with a limit), oldest first, built when read. */
  get trace(): readonly StepEvent[] {
    return this.traceLog.events();
  }

  /** Forgets the recorded steps: long runs keep memory flat by clearing between chunks. */
  clearTrace(): void {
    this.traceLog.clear();
  }

  /** Hardware drops the TLB entry for `va` on CPU `id` (legal at any time; the checker's choice). */
  evictTlb(id: number, va: number | bigint): void {
    const cpu = this.cpu(id);
    const v = canonicalAddress(va, 'evictTlb address');
    if (cpu.tlb.invalidatePage(v) !== 0) cpu.wake();
  }

  /**
   * The oldest store in CPU `id`'s store buffer reaches memory (the hardware's choice; a schedule's `drain:id`).
   * Returns whether there was one. A store the kernel's frame guard refuses (into a freed frame, or one a
   * migration copied) stops the CPU with that violation.
   */
  drainStoreBuffer(id: number): boolean {
    const cpu = this.cpu(id);
    const sb = cpu.port.storeBuffer;
    if (sb === undefined || sb.length === 0) return false;
    if (!cpu.port.drainOldest()) {
      stopOnMemoryViolation(cpu);
      this.noteStop(cpu, this.stepCount);
    }
    return true;
  }

  /**
   * Hardware drops CPU `id`'s paging-structure-cache entry of `kind` ('pml4e', 'pdpte', 'pde') that covers `va`
   * (legal at any time; the checker's choice). Returns whether it held one.
   */
  evictPagingStructureEntry(id: number, kind: PscEntryKind, va: number | bigint): boolean {
    const cpu = this.cpu(id);
    const level = requireOneOf(kind, 'paging-structure-cache entry kind', PSC_ENTRY_KINDS);
    const v = canonicalAddress(va, 'evictPagingStructureEntry address');
    const psc = cpu.port.psc;
    if (psc === undefined || !psc.drop(PSC_LEVEL_OF[level], v)) return false;
    cpu.wake();
    return true;
  }

  /**
   * Hardware walks the upper levels for `va` on CPU `id` speculatively and caches the paging-structure entries down
   * to `kind` ('pml4e', 'pdpte', 'pde'), those above included (legal at any time, SDM §4.10.3.1; the checker's
   * choice). Returns whether the `kind` entry was cached: false with no such cache, when it is cached already, or
   * when no present non-leaf entry is there.
   */
  fillPagingStructureEntry(id: number, kind: PscEntryKind, va: number | bigint): boolean {
    const cpu = this.cpu(id);
    const level = requireOneOf(kind, 'paging-structure-cache entry kind', PSC_ENTRY_KINDS);
    const v = canonicalAddress(va, 'fillPagingStructureEntry address');
    return cpu.port.fillPagingStructures(v, PSC_LEVEL_OF[level]);
  }

  /** Hardware fills the TLB of CPU `id` for `va` speculatively: a read walk that caches the translation if present. */
  fillTlb(id: number, va: number | bigint): boolean {
    const cpu = this.cpu(id);
    return cpu.port.fillSpeculatively(canonicalAddress(va, 'fillTlb address'));
  }

  /**
   * Runs until no CPU can move, a CPU stops with an event, the schedule ends, or maxSteps. Options and the whole
   * schedule are checked before the first step; a schedule string is consumed lazily (its repeats never expand).
   */
  run(options?: RunOptions): RunResult {
    const plan = planRun(options, this.cpus);
    // Everything is checked: from here on the run changes the machine.
    const start = this.stepCount;
    const maxSteps = plan.maxSteps;
    const machineDelivery = this.ipiBus.mode;
    const delivery = plan.ipiDelivery ?? machineDelivery;
    this.ipiBus.mode = delivery;
    try {
      const observe = stepsObserved(this.config.trace);
      let limitReached: boolean;
      if (plan.prng) limitReached = runRandom(this, plan.prng, maxSteps, observe) < 0;
      else if (plan.costs) {
        this.timed = true;
        try {
          limitReached = runTimed(this, plan.costs, maxSteps, observe) < 0;
        } finally {
          this.timed = false;
        }
      } else if (plan.runs) limitReached = runSchedule(this, plan.runs, maxSteps, observe);
      else if (delivery === 'immediate' && this.ipiBus.inFlight.length === 0 && this.config.storeBuffer === 0) {
        limitReached = runRoundRobin(this, maxSteps, observe) < 0;
      } else limitReached = runRoundRobinWithBus(this, maxSteps, observe) < 0;
      return this.result(this.stepCount - start, limitReached);
    } finally {
      this.ipiBus.mode = machineDelivery;
    }
  }

  /**
   * The outcome so far: the first stop event, a deadlock (a CPU spins, no CPU can move, and no IPI in flight or
   * buffered store can wake one), or ok.
   */
  get outcome(): Outcome {
    if (this.firstStop) return this.firstStop.outcome;
    // An IPI in flight, or a store waiting in a buffer, can still wake a spinning CPU.
    if (this.ipiBus.inFlight.length > 0 || bufferedCpu(this.cpus) >= 0) return 'ok';
    if (this.cpus.some((c) => c.state === 'blocked') && !this.cpus.some((c) => c.runnable)) return 'deadlock';
    return 'ok';
  }

  /**
   * Who waits on what, when the outcome is a deadlock: each spinning CPU, the word it spins on (named when the
   * machine knows it: a lock word, a csd), whether its interrupts are on, and the IPIs it has not accepted.
   */
  deadlockReport(): string | undefined {
    return this.outcome === 'deadlock' ? describeDeadlock(this.cpus, (va) => this.nameOf(va)) : undefined;
  }

  private result(steps: number, limitReached: boolean): RunResult {
    const deadlock = this.deadlockReport();
    return {
      outcome: this.outcome,
      steps,
      limitReached,
      ...(this.firstStop ? { stop: this.firstStop } : {}),
      ...(deadlock ? { deadlock } : {}),
      cpus: this.cpus.map((c) => ({ id: c.id, state: c.state })),
    };
  }

  /** An immutable view of architectural state (registers, TLBs, APICs) at this point of the run. */
  snapshot(): MachineSnapshot {
    return snapshotMachine(this.stepCount, this.cpus, this.memory, this.ipiBus.inFlight);
  }

  // Memory helpers for tests and scenarios (boot-time edits, off the step path; see boot-mappings.ts) ----------

  /**
   * Allocates a zeroed frame and maps it at `va` (4 KiB, supervisor, global, NX by default). Returns `va`. An
   * address that is already mapped is refused (map() never replaces a frame; change a live mapping with stores to
   * its PTE, as kernel code does).
   */
  map(va: number | bigint, flags: MapFlags = {}): number {
    return mapBootPage(this.memory, this.boot, va, flags);
  }

  /** Physical address of the leaf page-table entry for `va` (the PTE, or the PDE/PDPTE of a large page). */
  pteAddress(va: number | bigint): number {
    return requireBoot(this.boot, 'pteAddress()').pageTables.leafEntry(toVirtual(va, 'pteAddress() address'));
  }

  /**
   * Physical address of the paging entry for `va` at `level` (4 = PML4E, 3 = PDPTE, 2 = PDE, 1 = PTE) in the
   * tables under `root` (default: the boot page tables). Refused when the walk cannot reach that level (an entry
   * above it is not present, or is a large-page leaf).
   */
  entryAddress(va: number | bigint, level: 1 | 2 | 3 | 4, root?: number): number {
    return entryAddress(this.memory, this.boot, va, level, root);
  }

  /** The direct-map virtual address of a physical address: how kernel code reaches page tables. */
  directMap(pa: number): number {
    if (typeof pa !== 'number' || !Number.isInteger(pa) || pa < 0 || pa >= this.memory.size) {
      throw new InputError(
        `physical address ${describeHex(pa)} is outside memory (0..0x${this.memory.size.toString(16)})`,
      );
    }
    return LAYOUT.directMap + pa;
  }

  /** Where `va` maps in the page tables now (no TLB, no A/D updates), or undefined. */
  physicalAddress(va: number | bigint): number | undefined {
    return mappedAddress(this.boot, va);
  }
}
