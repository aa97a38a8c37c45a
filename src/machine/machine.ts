import createDebug from 'debug';
import { Cpu, type CpuBus, STATUS } from '../cpu/cpu.ts';
import type { Assembler, IpiDestination, IpiMode, Outcome, Program } from '../cpu/instruction.ts';
import {
  type DeliverySelector,
  type InFlightIpi,
  IPI_DELIVERY_MODES,
  IpiBus,
  type IpiDelivery,
} from '../cpu/ipi-bus.ts';
import { PageCache } from '../cpu/page-cache.ts';
import type { StepEvent, StopEvent } from '../cpu/step-event.ts';
import { describeStep } from '../cpu/step-format.ts';
import { exceptionGates } from '../faults/handlers.ts';
import type { Kernel } from '../mm/kernel.ts';
import { smpSymbols } from '../mm/smp.ts';
import { formatVirtual, isCanonical, LAYOUT, PAGE_SIZE, toVirtual } from '../mmu/address.ts';
import { Footprint } from '../mmu/footprint.ts';
import {
  describeHex,
  describeValue,
  InputError,
  requireBoolean,
  requireInteger,
  requireOneOf,
  requireOptions,
} from '../mmu/input-error.ts';
import { type FrameStore, PhysicalMemory } from '../mmu/physical-memory.ts';
import { lookupTables } from '../mmu/table-lookup.ts';
import { Tlb } from '../mmu/tlb.ts';
import { arenaBytes, TypedArena } from '../mmu/typed-arena.ts';
import { type BootInfo, bootMinimal } from './boot.ts';
import { type CostModel, resolveCosts, stepCost } from './cost-model.ts';
import { BOOT_RESERVE, bootKernel } from './kernel-boot.ts';
import { MAX_CPUS, type MachineConfig, type ResolvedConfig, resolveConfig } from './machine-config.ts';
import type { MapFlags } from './page-tables.ts';
import {
  checkScheduleArray,
  checkScheduledCpus,
  formatEvent,
  isStepRun,
  Prng,
  parseScheduleRuns,
  type SchedulePolicy,
  type ScheduleRun,
} from './schedule.ts';
import { type MachineSnapshot, snapshotMachine } from './snapshot.ts';
import { TraceLog } from './trace-log.ts';

export { MAX_CPUS, MAX_MEMORY, type MachineConfig, MIN_BOOT_MEMORY } from './machine-config.ts';

const log = {
  cpu: createDebug('x86slice:cpu'),
  mmu: createDebug('x86slice:mmu'),
  apic: createDebug('x86slice:apic'),
};

const STATUS_RUNNING = STATUS.RUNNING;
/** What a run's steps record (Machine.recording): nothing, the trace only, or everything through stepCpu. */
const RECORD_NOTHING = 0;
const RECORD_TRACE = 1;
const RECORD_ALL = 2;
/** Programs get code addresses in kernel text, 64 KiB apart, in order of first use (deterministic). */
const CODE_BASE = LAYOUT.kernelText + 0x100_0000;
const CODE_STRIDE = 0x1_0000;
/** User programs (entered by iret at a userEntry) get code addresses in the low half, from the ELF default base. */
const USER_CODE_BASE = 0x40_0000;

/** A program's code address in `assigned`, given in order of first use from `base` (deterministic). */
function assignCodeAddress(assigned: Map<Program, number>, program: Program, base: number): number {
  let address = assigned.get(program);
  if (address === undefined) {
    address = base + assigned.size * CODE_STRIDE;
    assigned.set(program, address);
  }
  return address;
}

export interface RunOptions {
  /** Default 'round-robin'. An array or string is an explicit schedule (see parseSchedule). */
  readonly schedule?: SchedulePolicy;
  /** Seed for the 'random' policy. Default 1. */
  readonly seed?: number;
  /** Upper bound on steps in this run. Default 100000. */
  readonly maxSteps?: number;
  /** IPI delivery for this run only (see MachineConfig.ipiDelivery); the machine's setting is restored after. */
  readonly ipiDelivery?: IpiDelivery;
  /** Schedule 'timed' only: costs that differ from the defaults (see cost-model.ts), in nanoseconds. */
  readonly costs?: Partial<CostModel>;
}

export interface RunResult {
  readonly outcome: Outcome;
  /** Steps taken by this run. */
  readonly steps: number;
  /** The run hit maxSteps with CPUs still able to move. */
  readonly limitReached: boolean;
  /** The first CPU that stopped with an event, and why. */
  readonly stop?: StopEvent & { readonly cpu: number; readonly step: number };
  /** With outcome `deadlock`: who waits on what (see Machine.deadlockReport). */
  readonly deadlock?: string;
  readonly cpus: readonly { readonly id: number; readonly state: Cpu['state'] }[];
}

const RUN_KEYS = ['schedule', 'seed', 'maxSteps', 'ipiDelivery', 'costs'] as const;
const NO_OPTIONS: RunOptions = Object.freeze({});

/** A caller's address that must be canonical (a TLB event names a page the TLB could hold). */
function canonicalAddress(va: number | bigint, where: string): number {
  const v = toVirtual(va, where);
  if (!isCanonical(v)) throw new InputError(`${where} ${formatVirtual(v)} is not canonical (bits 63:47 differ)`);
  return v;
}

/** A multi-CPU x86-64 machine: CPUs sharing physical memory, stepped one instruction at a time. */
export class Machine implements CpuBus {
  readonly memory: PhysicalMemory;
  readonly cpus: readonly Cpu[];
  readonly config: ResolvedConfig;
  /** The recorded steps, when tracing is on (see `trace`). */
  readonly traceLog: TraceLog;
  /** One-step log for debug output when tracing is off. */
  private readonly logScratch = new TraceLog();
  /** Footprint of the last step, when footprints are on (config `footprint`, or recordFootprints()). */
  footprint: Footprint | undefined;
  private pausedFootprint: Footprint | undefined;
  /** The random scheduler's list of CPUs that can move, reused every step. */
  private readonly runnableScratch: Cpu[] = [];
  /** The interrupt bus: where IPIs in flight wait for delivery. */
  readonly ipiBus: IpiBus;
  boot: BootInfo | undefined;
  /** The booted kernel's state (zone, vmap areas, policies), when created with `kernel`. */
  kernel: Kernel | undefined;
  /** Steps taken since creation. */
  stepCount = 0;
  /** Each CPU's simulated clock in nanoseconds: advanced by `timed` runs (see cost-model.ts), read by RDTSC. */
  readonly clocks: Float64Array;
  /** When each IPI in flight was sent (its sender's clock), for a timed run's delivery latency. */
  private readonly ipiSentAt = new Map<InFlightIpi, number>();
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
  /** The first CPU that stopped with an event. */
  firstStop: RunResult['stop'];
  private readonly codeAddresses: Map<Program, number>;
  private readonly userCodeAddresses = new Map<Program, number>();

  protected constructor(config: ResolvedConfig, base?: FrameStore, codeAddresses?: Map<Program, number>) {
    this.config = config;
    this.traceLog = new TraceLog(config.traceLimit);
    this.memory = new PhysicalMemory(config.memory, base, MAX_CPUS);
    this.memory.setWatcher((owner) => this.cpus[owner]?.wake());
    // One buffer for every CPU's TLB and page cache (see TypedArena): creating an image instance stays cheap.
    const perCpu = [Tlb.storage(config.tlb), PageCache.storage];
    const arena = new TypedArena(arenaBytes(...Array.from({ length: config.cpus }, () => perCpu).flat()));
    this.cpus = Array.from(
      { length: config.cpus },
      (_, id) => new Cpu(id, this.memory, this, { tlb: config.tlb, arena }),
    );
    this.ipiBus = new IpiBus(
      this.cpus.map((c) => c.apic),
      config.ipiDelivery,
    );
    this.footprint = config.footprint ? new Footprint() : undefined;
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
    if (this.traceLog.length !== 0) this.traceLog.clear();
    if (this.logScratch.length !== 0) this.logScratch.clear();
    this.footprint?.clear();
    this.stepCount = 0;
    this.firstStop = undefined;
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

  /** Delivers the in-flight IPI at `index` (to `cpu`) and records the event. */
  private deliverInFlight(cpu: Cpu, index: number): InFlightIpi {
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
    return this.stepCpu(cpu, this.config.trace || log.cpu.enabled || log.mmu.enabled, true);
  }

  /** The step itself, after validation; `observe` builds the event (tracing or debug logging). */
  private stepCpu(cpu: Cpu, observe: boolean, wanted = false): StepEvent | undefined {
    if (!observe && this.footprint === undefined) return this.stepUnrecorded(cpu);
    const rip = observe ? cpu.rip : 0;
    const rsp = observe ? cpu.regs.rsp : 0;
    if (this.footprint) this.footprint.clear();
    try {
      cpu.step();
    } catch (error) {
      // Program code threw (a failed expect): the CPU stopped, and the run's outcome must say so.
      this.countStep(cpu);
      throw error;
    }
    const step = this.countStep(cpu);
    if (!observe) return undefined;
    const logging = log.cpu.enabled || log.mmu.enabled;
    const event = this.describe(cpu, step, rip, rsp, wanted || logging);
    if (event && log.cpu.enabled) log.cpu('#%d cpu%d %s %s', step, cpu.id, formatVirtual(rip), describeStep(event));
    if (event && log.mmu.enabled && event.tlb === 'miss') {
      log.mmu('cpu%d TLB miss %s -> walk', cpu.id, describeStep(event));
    }
    return event;
  }

  /** One step of a run loop, recording what `mode` (from recording()) says. */
  private stepRecording(cpu: Cpu, mode: number, observe: boolean): void {
    if (mode === RECORD_NOTHING) this.stepUnrecorded(cpu);
    else if (mode === RECORD_TRACE) this.stepTraced(cpu);
    else this.stepCpu(cpu, observe);
  }

  /** A traced step with no footprint or debug log to feed: the run loops' second fast case. */
  private stepTraced(cpu: Cpu): void {
    const rip = cpu.rip;
    const rsp = cpu.regs.rsp;
    try {
      cpu.step();
    } catch (error) {
      this.countStep(cpu);
      throw error;
    }
    this.traceLog.appendStep(cpu, this.countStep(cpu), rip, rsp);
  }

  /** A step with nothing to record: small, so the run loops inline it. */
  private stepUnrecorded(cpu: Cpu): undefined {
    // A program that threw (a failed expect) stopped its CPU; the step still counts, so the outcome says so.
    try {
      cpu.step();
    } catch (error) {
      this.countStep(cpu);
      throw error;
    }
    this.countStep(cpu);
    return undefined;
  }

  /** What the steps of a run record, decided once per run (debug's `enabled` is a getter worth not calling). */
  private recording(observe: boolean): number {
    if (this.footprint !== undefined || log.cpu.enabled || log.mmu.enabled) return RECORD_ALL;
    return observe ? RECORD_TRACE : RECORD_NOTHING;
  }

  /** Numbers the step just taken and records the first CPU to stop. */
  private countStep(cpu: Cpu): number {
    const step = this.stepCount++;
    if (cpu.stopEvent !== undefined) this.noteStop(cpu, step);
    return step;
  }

  private noteStop(cpu: Cpu, step: number): void {
    if (this.firstStop === undefined && cpu.isStopped) this.firstStop = { ...cpu.stopEvent!, cpu: cpu.id, step };
  }

  /** Records the step in the trace (or, for debug logs only, a scratch log) and returns its event if `wanted`. */
  private describe(cpu: Cpu, step: number, rip: number, rsp: number, wanted: boolean): StepEvent | undefined {
    const log = this.config.trace ? this.traceLog : this.logScratch;
    if (!this.config.trace) log.clear();
    const index = log.appendStep(cpu, step, rip, rsp);
    // Only a caller that wants the event (step(), debug logs) pays for building it.
    return wanted ? log.at(index) : undefined;
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
    // No options: nothing to check (the checker runs a reset machine this way once per execution).
    const o = options === undefined ? NO_OPTIONS : requireOptions<RunOptions>(options, 'run options', RUN_KEYS);
    const maxSteps = o.maxSteps === undefined ? 100_000 : o.maxSteps;
    if (typeof maxSteps !== 'number' || !Number.isSafeInteger(maxSteps) || maxSteps < 0) {
      throw new InputError(`maxSteps ${describeValue(maxSteps)} must be an integer >= 0`);
    }
    const policy = o.schedule === undefined ? 'round-robin' : o.schedule;
    const prng = policy === 'random' ? new Prng(o.seed === undefined ? 1 : o.seed) : undefined;
    const timed = policy === 'timed';
    if (!timed && o.costs !== undefined) {
      throw new InputError(`costs are used by schedule 'timed', not ${describeValue(policy)}`);
    }
    const costs = timed ? resolveCosts(o.costs) : undefined;
    if (policy !== 'random' && o.seed !== undefined) {
      throw new InputError(
        `seed ${describeValue(o.seed)} is only used by schedule 'random', not ${describeValue(policy)}`,
      );
    }
    const delivery =
      o.ipiDelivery === undefined ? this.ipiBus.mode : requireOneOf(o.ipiDelivery, 'ipiDelivery', IPI_DELIVERY_MODES);
    let runs: ScheduleRun[] = [];
    if (policy !== 'round-robin' && !prng && !timed) {
      runs = typeof policy === 'string' ? parseScheduleRuns(policy) : checkScheduleArray(policy, this.cpus.length);
      checkScheduledCpus(
        runs,
        this.cpus.map((c) => c.started),
      );
    }
    // Everything is checked: from here on the run changes the machine.
    const start = this.stepCount;
    const machineDelivery = this.ipiBus.mode;
    this.ipiBus.mode = delivery;
    try {
      const observe = this.config.trace || log.cpu.enabled || log.mmu.enabled;
      let limitReached: boolean;
      if (prng) limitReached = this.runRandom(prng, maxSteps, observe) < 0;
      else if (costs) {
        this.timed = true;
        try {
          limitReached = this.runTimed(costs, maxSteps, observe) < 0;
        } finally {
          this.timed = false;
        }
      } else if (policy !== 'round-robin') limitReached = this.runSchedule(runs, maxSteps, observe);
      else if (delivery === 'immediate' && this.ipiBus.inFlight.length === 0) {
        limitReached = this.runRoundRobin(maxSteps, observe) < 0;
      } else limitReached = this.runRoundRobinWithBus(maxSteps, observe) < 0;
      return this.result(this.stepCount - start, limitReached);
    } finally {
      this.ipiBus.mode = machineDelivery;
    }
  }

  /** Follows checked schedule runs; returns whether maxSteps stopped it. */
  private runSchedule(runs: readonly ScheduleRun[], maxSteps: number, observe: boolean): boolean {
    const start = this.stepCount;
    const mode = this.recording(observe);
    let index = 0;
    for (const run of runs) {
      if (!isStepRun(run)) {
        if (this.firstStop) return false;
        if ('tlb' in run) {
          if (run.tlb === 'evict') this.evictTlb(run.cpu, run.va);
          else this.fillTlb(run.cpu, run.va);
        } else {
          const found = this.ipiBus.find(run.cpu, run.deliver);
          if (found < 0) {
            throw new InputError(
              `schedule entry ${index} (${formatEvent(run)}) delivers to CPU ${run.cpu}, but no such IPI is in flight`,
            );
          }
          this.deliverInFlight(this.cpus[run.cpu]!, found);
        }
        index++;
        continue;
      }
      const cpu = this.cpus[run.cpu]!;
      for (let k = 0; k < run.times; k++, index++) {
        if (this.firstStop) return false;
        if (this.stepCount - start >= maxSteps) return true;
        if (cpu.isStopped) throw new InputError(`schedule entry ${index} names CPU ${run.cpu}, which is ${cpu.state}`);
        // The CPUs were checked with the schedule (they exist and have programs): step as the run loops do.
        this.stepRecording(cpu, mode, observe);
      }
    }
    return false;
  }

  /**
   * Steps the next runnable CPU after the last one until none can move, one stops, or `maxSteps`. Returns the
   * steps taken, or -1 when the limit stopped it with CPUs still able to move. Kept small: it is the hot loop.
   */
  private runRoundRobin(maxSteps: number, observe: boolean): number {
    const cpus = this.cpus;
    const n = cpus.length;
    let last = n - 1;
    let steps = 0;
    const mode = this.recording(observe);
    while (this.firstStop === undefined) {
      let next: Cpu | undefined;
      for (let k = 1; k <= n; k++) {
        const c = last + k < n ? last + k : last + k - n;
        const cpu = cpus[c]!;
        if (cpu.status === STATUS_RUNNING || cpu.runnable) {
          next = cpu;
          last = c;
          break;
        }
      }
      if (next === undefined) return steps;
      if (steps >= maxSteps) return -1;
      this.stepRecording(next, mode, observe);
      steps++;
    }
    return steps;
  }

  /**
   * Round-robin with the interrupt bus as one more participant: CPU 0, 1, ..., n-1, then the bus, which delivers
   * the oldest IPI in flight (a delivery is an event, not a step). So an IPI waits at most one round, deterministically.
   */
  private runRoundRobinWithBus(maxSteps: number, observe: boolean): number {
    const cpus = this.cpus;
    const n = cpus.length;
    let last = n; // the bus went last: CPU 0 moves first
    let steps = 0;
    const mode = this.recording(observe);
    while (this.firstStop === undefined) {
      let picked = -1;
      for (let k = 1; k <= n + 1 && picked < 0; k++) {
        const t = (last + k) % (n + 1);
        if (t === n ? this.ipiBus.inFlight.length > 0 : cpus[t]!.runnable) picked = t;
      }
      if (picked < 0) return steps;
      // The limit ends the run before anything else happens, deliveries included.
      if (steps >= maxSteps) return -1;
      last = picked;
      if (picked === n) {
        const oldest = this.ipiBus.inFlight[0]!;
        this.deliverInFlight(cpus[oldest.to]!, 0);
        continue;
      }
      this.stepRecording(cpus[picked]!, mode, observe);
      steps++;
    }
    return steps;
  }

  /**
   * As runRoundRobin, picking uniformly with the seeded PRNG among the runnable CPUs and the IPIs in flight (a
   * picked IPI is delivered, an event that takes no step).
   */
  private runRandom(prng: Prng, maxSteps: number, observe: boolean): number {
    const cpus = this.cpus;
    const runnable = this.runnableScratch;
    let steps = 0;
    const mode = this.recording(observe);
    while (!this.firstStop) {
      // One scan collects the CPUs that can move; the pick indexes it.
      let count = 0;
      for (const c of cpus) if (c.runnable) runnable[count++] = c;
      const inFlight = this.ipiBus.inFlight.length;
      if (count + inFlight === 0) return steps;
      if (steps >= maxSteps) return -1;
      const pick = prng.below(count + inFlight);
      if (pick >= count) {
        this.deliverInFlight(cpus[this.ipiBus.inFlight[pick - count]!.to]!, pick - count);
        continue;
      }
      this.stepRecording(runnable[pick]!, mode, observe);
      steps++;
    }
    return steps;
  }

  /**
   * The timed schedule: the CPU whose clock is lowest (the lowest id among equals) takes the next step, and its
   * clock advances by what the step cost (cost-model.ts). An IPI in flight is delivered once its sender's clock at
   * the send plus the delivery latency is reached. A CPU that could not move and can now (its spin condition
   * written, an interrupt delivered) has waited until then: its clock moves up to the time that woke it.
   */
  private runTimed(costs: CostModel, maxSteps: number, observe: boolean): number {
    const cpus = this.cpus;
    const clocks = this.clocks;
    const mode = this.recording(observe);
    let steps = 0;
    // Which CPUs could move before the last event (a CPU that can move now and could not then was woken by it).
    const couldMove = new Uint8Array(cpus.length);
    for (const c of cpus) couldMove[c.id] = c.runnable ? 1 : 0;
    const catchUp = (time: number) => {
      for (const c of cpus) {
        const can = c.runnable ? 1 : 0;
        if (can && !couldMove[c.id] && clocks[c.id]! < time) clocks[c.id] = time;
        couldMove[c.id] = can;
      }
    };
    while (this.firstStop === undefined) {
      let next: Cpu | undefined;
      for (const c of cpus) if (c.runnable && (next === undefined || clocks[c.id]! < clocks[next.id]!)) next = c;
      const now = next === undefined ? Number.POSITIVE_INFINITY : clocks[next.id]!;
      // The IPI in flight due first, if it is due before the next step (or nothing else can happen).
      let due = -1;
      let dueAt = Number.POSITIVE_INFINITY;
      const inFlight = this.ipiBus.inFlight;
      for (let i = 0; i < inFlight.length; i++) {
        const at = (this.ipiSentAt.get(inFlight[i]!) ?? 0) + costs.ipiDelivery;
        if (at < dueAt) {
          dueAt = at;
          due = i;
        }
      }
      if (due >= 0 && dueAt <= now) {
        this.deliverInFlight(cpus[inFlight[due]!.to]!, due);
        catchUp(dueAt);
        continue;
      }
      if (next === undefined) return steps;
      if (steps >= maxSteps) return -1;
      this.stepRecording(next, mode, observe);
      clocks[next.id] = now + stepCost(next, costs);
      steps++;
      catchUp(clocks[next.id]!);
    }
    return steps;
  }

  /**
   * The outcome so far: the first stop event, a deadlock (a CPU spins, no CPU can move and no IPI is in flight to
   * wake one), or ok.
   */
  get outcome(): Outcome {
    if (this.firstStop) return this.firstStop.outcome;
    if (this.ipiBus.inFlight.length > 0) return 'ok';
    if (this.cpus.some((c) => c.state === 'blocked') && !this.cpus.some((c) => c.runnable)) return 'deadlock';
    return 'ok';
  }

  /**
   * Who waits on what, when the outcome is a deadlock: each spinning CPU, the word it spins on (named when the
   * machine knows it: a lock word, a csd), whether its interrupts are on, and the IPIs it has not accepted.
   */
  deadlockReport(): string | undefined {
    if (this.outcome !== 'deadlock') return undefined;
    const lines = ['deadlock: no CPU can move'];
    for (const cpu of this.cpus) {
      const va = cpu.spinningOn;
      if (va === undefined) continue;
      const name = this.nameOf(va);
      const what = name ? `${name} (${formatVirtual(va)})` : formatVirtual(va);
      const irqs = cpu.interruptsEnabled ? 'interrupts on' : 'interrupts off';
      const pending = cpu.apic.requested().map((v) => `0x${v.toString(16)}`);
      const waiting = pending.length ? `, IPI ${pending.join(', ')} pending` : '';
      lines.push(`  CPU${cpu.id} spins on ${what} with ${irqs}${waiting}`);
    }
    return lines.join('\n');
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

  // Memory helpers for tests and scenarios (boot-time edits, off the step path) --------------------------------

  private requireBoot(what: string): BootInfo {
    if (!this.boot) throw new InputError(`${what} needs a booted machine (Machine.create({ boot: true }))`);
    return this.boot;
  }

  /**
   * Allocates a zeroed frame and maps it at `va` (4 KiB, supervisor, global, NX by default). Returns `va`. An
   * address that is already mapped is refused (map() never replaces a frame; change a live mapping with stores to
   * its PTE, as kernel code does).
   */
  map(va: number | bigint, flags: MapFlags = {}): number {
    const boot = this.requireBoot('map()');
    const v = toVirtual(va, 'map() address');
    const where = `map(${formatVirtual(v)})`;
    if (!isCanonical(v) || v % PAGE_SIZE !== 0) {
      throw new InputError(`${where}: the address must be canonical and 4 KiB aligned`);
    }
    const f = requireOptions<MapFlags>(flags, `${where} flags`, [
      'writable',
      'user',
      'global',
      'noExecute',
      'accessed',
      'dirty',
    ]);
    const user = requireBoolean(f.user, `${where} flag user`, false);
    const checked: MapFlags = {
      writable: requireBoolean(f.writable, `${where} flag writable`, true),
      user,
      global: requireBoolean(f.global, `${where} flag global`, true),
      noExecute: requireBoolean(f.noExecute, `${where} flag noExecute`, true),
      // As Linux's PAGE_KERNEL: a kernel page is mapped accessed and dirty (see MapFlags).
      accessed: requireBoolean(f.accessed, `${where} flag accessed`, !user),
      dirty: requireBoolean(f.dirty, `${where} flag dirty`, !user),
    };
    const existing = lookupTables(this.memory, boot.pml4, v);
    if (existing.present) {
      const by = existing.pageSize > PAGE_SIZE ? ` by a ${existing.pageSize / 2 ** 20} MiB page` : '';
      throw new InputError(
        `${where}: the address is already mapped (to physical ${describeHex(existing.pa)}${by}); ` +
          'map() never replaces a mapping',
      );
    }
    // The leaf frame and every missing table below the first non-present entry: all or nothing.
    const needed = existing.level;
    if (boot.frames.remaining < needed) {
      throw new InputError(
        `${where}: out of boot memory: it needs ${needed} frames and ${boot.frames.remaining} are left; give the machine more`,
      );
    }
    boot.pageTables.map4k(v, boot.frames.alloc(), checked);
    return v;
  }

  /** Physical address of the leaf page-table entry for `va` (the PTE, or the PDE/PDPTE of a large page). */
  pteAddress(va: number | bigint): number {
    return this.requireBoot('pteAddress()').pageTables.leafEntry(toVirtual(va, 'pteAddress() address'));
  }

  /**
   * Physical address of the paging entry for `va` at `level` (4 = PML4E, 3 = PDPTE, 2 = PDE, 1 = PTE) in the
   * tables under `root` (default: the boot page tables). Refused when the walk cannot reach that level (an entry
   * above it is not present, or is a large-page leaf).
   */
  entryAddress(va: number | bigint, level: 1 | 2 | 3 | 4, root?: number): number {
    const v = toVirtual(va, 'entryAddress() address');
    requireInteger(level, 'entryAddress() level', 1, 4);
    const r =
      root === undefined
        ? this.requireBoot('entryAddress()').pml4
        : requireInteger(root, 'entryAddress() root', 0, this.memory.size - 1);
    if (!isCanonical(v)) throw new InputError(`entryAddress(${formatVirtual(v)}): the address is not canonical`);
    const t = lookupTables(this.memory, r, v);
    const entry = t.entries[level]!;
    if (entry < 0) {
      const stop = t.present ? `a ${t.pageSize / 2 ** 20} MiB page` : 'a non-present entry';
      throw new InputError(
        `entryAddress(${formatVirtual(v)}, ${level}): the walk stops at level ${t.level} (${stop}), above level ${level}`,
      );
    }
    return entry;
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
    const v = toVirtual(va, 'physicalAddress() address');
    const m = this.requireBoot('physicalAddress()').pageTables.lookup(v);
    if (!m?.pte.present) return undefined;
    return m.pte.address - (m.pte.address % m.pageSize) + (v % m.pageSize);
  }
}
