import { LocalApic } from '../cpu/apic.ts';
import type { Program } from '../cpu/assembler.ts';
import { IpiBus } from '../cpu/ipi-bus.ts';
import { copyRegisters, type Gate, type Registers } from '../cpu/registers.ts';
import type { Kernel } from '../mm/kernel.ts';
import { InputError } from '../mmu/address.ts';
import type { FrameStore } from '../mmu/physical-memory.ts';
import { Tlb } from '../mmu/tlb.ts';
import type { BootInfo } from './boot.ts';
import { attachKernel } from './kernel-boot.ts';
import { Machine, type MachineConfig } from './machine.ts';
import { BootFrameAllocator, PageTableEditor } from './page-tables.ts';

// A machine image: a booted machine with programs loaded but not started, frozen so that any number of machines
// can be made from it cheaply (DESIGN.md "Performance"): frames are shared copy-on-write, CPU state and TLBs are
// typed arrays copied per clone, and each clone restarts the loaded programs from their beginning.

interface CpuImage {
  readonly regs: Registers;
  readonly rsp0: number;
  readonly ist: Float64Array;
  readonly idt: readonly (Gate | undefined)[];
  readonly tlb: Tlb;
  readonly apic: LocalApic;
  readonly task: { readonly program: Program; readonly args: readonly unknown[] } | undefined;
}

export class MachineImage {
  private constructor(
    private readonly config: MachineConfig,
    private readonly frames: FrameStore,
    private readonly cpus: readonly CpuImage[],
    private readonly codeAddresses: Map<Program, number>,
    private readonly boot: (BootInfo & { readonly framesPosition: number }) | undefined,
    /** The interrupt bus: its delivery mode and any IPIs in flight. */
    private readonly ipiBus: IpiBus,
    /** The kernel's bookkeeping, copied into each instance. */
    private readonly kernel: Kernel | undefined,
    /** The machine's named addresses (Machine.symbols). */
    private readonly symbols: ReadonlyMap<number, string>,
    /** The captured machine's kernel object, which every instance shares (restored from `kernel` each time). */
    private readonly liveKernel: Kernel | undefined,
  ) {}

  /**
   * Freezes `machine` (which must not have stepped yet) into an image; the machine itself stays usable. With a
   * kernel, its kernel object is shared by the machine and every instance (programs close over it), restored from
   * the image's copy at each instantiate or reset: run one of them at a time.
   */
  static capture(machine: Machine): MachineImage {
    if (machine.stepCount !== 0) {
      throw new InputError(
        `cannot image a machine that has run ${machine.stepCount} steps: take the image before the first step`,
      );
    }
    const frames = machine.memory.freeze();
    const cpus = machine.cpus.map((cpu): CpuImage => {
      const tlb = new Tlb(machine.config.tlb);
      tlb.copyFrom(cpu.tlb);
      const apic = new LocalApic();
      apic.copyFrom(cpu.apic);
      return {
        regs: { ...cpu.regs },
        rsp0: cpu.tss.rsp0,
        ist: Float64Array.from(cpu.tss.ist),
        idt: [...cpu.idt],
        tlb,
        apic,
        task: cpu.task,
      };
    });
    const boot = machine.boot ? { ...machine.boot, framesPosition: machine.boot.frames.position } : undefined;
    const ipiBus = new IpiBus([], machine.ipiBus.mode);
    ipiBus.copyFrom(machine.ipiBus);
    const { kernel: _kernelOptions, ...rest } = machine.config;
    const config: MachineConfig = { ...rest, boot: false };
    const kernel = machine.kernel?.clone();
    const symbols = new Map(machine.symbols);
    const addresses = new Map(machine.programAddresses);
    return new MachineImage(config, frames, cpus, addresses, boot, ipiBus, kernel, symbols, machine.kernel);
  }

  /** Per instance: the IDT and TLB generations of each CPU (pairs) when this image last loaded it. */
  private readonly loaded = new WeakMap<Machine, Float64Array>();
  /** Machines this image made, which reset() accepts. */
  private readonly instances = new WeakSet<Machine>();

  /** A new machine in the image's state, its programs loaded afresh. Options override tracing/footprints. */
  instantiate(options: { readonly trace?: boolean; readonly footprint?: boolean } = {}): Machine {
    const m = Machine.fromFrames({ ...this.config, ...options }, this.frames, this.codeAddresses);
    this.instances.add(m);
    m.inheritSymbols(this.symbols);
    return this.load(m);
  }

  /**
   * Puts `machine` (made by this image's instantiate) back in the image's state, its programs restarted: the
   * checker's next execution without building a machine (its typed arrays, TLBs and trace are reused). Tracing and
   * footprints stay as the machine was made.
   */
  reset(machine: Machine): Machine {
    if (!this.instances.has(machine)) {
      throw new InputError('reset(machine): the machine was not made by this image (use image.instantiate())');
    }
    machine.resetForImage(this.codeAddresses);
    return this.load(machine);
  }

  /** Copies the image's state into a machine made on its frames. */
  private load(m: Machine): Machine {
    if (this.boot && m.boot) {
      m.boot.frames.rewind(this.boot.framesPosition); // a reset: the boot record is the one load() made
    } else if (this.boot) {
      const frames = new BootFrameAllocator(this.boot.framesPosition, m.memory.size);
      m.boot = { ...this.boot, frames, pageTables: new PageTableEditor(m.memory, this.boot.pml4, frames) };
    }
    let left = this.loaded.get(m);
    if (left === undefined) {
      left = new Float64Array(2 * this.cpus.length).fill(-1);
      this.loaded.set(m, left);
    }
    for (let id = 0; id < this.cpus.length; id++) {
      const image = this.cpus[id]!;
      const cpu = m.cpus[id]!;
      copyRegisters(cpu.regs, image.regs);
      cpu.tss.rsp0 = image.rsp0;
      cpu.tss.ist.set(image.ist);
      // An IDT or TLB whose generation is the one this image left is unchanged: no copy (most resets).
      if (left[2 * id] !== cpu.idtGeneration) cpu.loadIdt(image.idt);
      if (left[2 * id + 1] !== cpu.tlb.generation) cpu.tlb.copyFrom(image.tlb);
      left[2 * id] = cpu.idtGeneration;
      left[2 * id + 1] = cpu.tlb.generation;
      cpu.apic.copyFrom(image.apic);
      if (image.task) cpu.start(image.task.program, ...image.task.args);
    }
    m.ipiBus.copyFrom(this.ipiBus);
    // The captured machine's kernel object, restored: programs and handlers close over that object.
    if (this.kernel && this.liveKernel) {
      this.liveKernel.restore(this.kernel);
      m.kernel = this.liveKernel;
      attachKernel(m.memory, m.kernel);
    }
    return m;
  }
}
