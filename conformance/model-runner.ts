// The model side of the differential conformance suite: runs one case of conformance/case.ts on x86slice and
// records its Observation, field for field what the QEMU oracle records for the same case.
//
// Each case runs on a bare machine (`boot: false`: no page tables, no IDT, no stacks) set up before its first step by
// writing physical memory and registers directly: the harness identity map and the test hierarchy of LAYOUT, the
// target qwords, the TSS stack pointers, the stack pages' harness PTEs and the IDT. What every case shares is built
// once into a MachineImage, and each case starts from a reset of one machine made from it (see freshMachine). Then
// one kernel program (and for CPL 3 a user program it irets into) executes the case's steps, and the runner steps
// the CPU one instruction at a time, observing the step that executes each access or trigger from outside:
//
// - the CPU's exception log of that step (delivery.ts appends one entry per event whose delivery began, with what
//   SDM Table 6-5 made of it) gives `attempts`;
// - a handler entered in that step is the first handler that ran: its frame (cpu.exceptionFrame()), CR2 and the
//   RIPs of the access and the instruction after it give `delivered`;
// - a CPU in the shutdown state gives `shutdown`.
//
// Nothing in a handler records anything, so handlers stay trivial: a #PF on a paging-case access (which carries an
// exception-table fixup) irets to the fixup so that the case's next steps run, as Linux's fixups do; any other
// handler stops the CPU. Delivery cases and CPL 3 cases stop stepping right after their one recorded step.
//
// Three things the model cannot execute as the oracle does, and how they are done here:
// - 8-byte values above 2^53 (LAYOUT.writeValue, entries with bit 63 or high reserved bits) cannot be stored by an
//   8-byte `store` (the model refuses rather than rounds), so a write access and a set-entry are a one-chunk
//   `rep movsq` (x.copy, 8 bytes) from a scratch qword the runner fills before the first step. The copy's read of
//   the scratch page is a harness access (P RW US A D already set) and changes no paging entry; its write is the
//   8-byte store, with the store's #PF (CR2, error code).
// - 8-byte loads return JS numbers, exact only below 2^53, so a read's value is taken as the 8 bytes at the
//   physical address the load used (the port's last translation, which is the stale one when the TLB is stale).
// - The model executes no code, so an instruction fetch (a jump to testVa, its return address pushed) is evaluated
//   with the page walker alone and its #PF frame is derived, not executed (see fetchResult). The walker ignores the
//   TLB: a fetch through a stale TLB entry is not modelled, and neither is what a fetch that succeeds executes (the
//   RET at the target, or whatever bytes a write put there).

import type { Assembler, Program } from '../src/cpu/assembler.ts';
import type { Cpu } from '../src/cpu/cpu.ts';
import type { Instruction } from '../src/cpu/instruction.ts';
import { CR0, CR4, EFER, type GateInit, type HandlerContext, SELECTOR } from '../src/cpu/registers.ts';
import { RIP_STRIDE } from '../src/cpu/status.ts';
import type { ExceptionEvent } from '../src/cpu/step-event.ts';
import { MachineImage } from '../src/machine/image.ts';
import { Machine } from '../src/machine/machine.ts';
import { toCanonicalBigInt, toVirtual } from '../src/mmu/address.ts';
import type { PhysicalMemory } from '../src/mmu/physical-memory.ts';
import { PTE_LO } from '../src/mmu/pte.ts';
import { ACCESS, VECTOR_PF } from '../src/mmu/walker.ts';
import {
  type Case,
  DEFAULT_DF_IST,
  DEFAULT_GATE,
  type Delivered,
  type DeliveryCase,
  entryAddresses,
  entryTargets,
  entryValue,
  type GateSpec,
  hex64,
  LAYOUT,
  type Observation,
  type PagingCase,
  type StackState,
  type StepResult,
  stackOf,
  targetPhysical,
} from './case.ts';

/**
 * Where the runner keeps the qwords its 8-byte copies read: [0] LAYOUT.writeValue, [1 + i] the value of the
 * case's step i when it is a set-entry. A harness 4 KiB page no LAYOUT region uses, in another TLB set than testVa.
 */
export const SCRATCH = 0x8e000;

/** Vectors with a default gate (case.ts DEFAULT_GATE); #DF uses IST DEFAULT_DF_IST, returnVector DPL 3. */
const DEFAULT_VECTORS: readonly number[] = [
  ...Array.from({ length: 32 }, (_, v) => v),
  ...Array.from({ length: 16 }, (_, v) => 0x80 + v),
];

/** Exception-log outcomes whose delivery began: their gate was read (and maybe their frame pushed). */
const ATTEMPT_OUTCOMES: ReadonlySet<ExceptionEvent['outcome']> = new Set(['delivered', 'frame-fault', 'gate-fault']);

/** More steps than any case needs (a CPL 0 paging case: a few instructions per step, 3 per faulting access). */
const STEP_LIMIT = 1000;

/** The page each stack override names; `current` is the interrupted RSP's page (the user stack at CPL 3). */
function stackPage(name: 'current' | 'rsp0' | 'ist1' | 'ist2' | 'ist3', cpl: 0 | 3): number {
  if (name === 'current') return cpl === 3 ? LAYOUT.stacks.user : LAYOUT.stacks.current;
  return LAYOUT.stacks[name];
}

/** Writes a 64-bit value (exact, as two halves) at a physical address. */
function write64(memory: PhysicalMemory, pa: number, value: bigint): void {
  const v = BigInt.asUintN(64, value);
  memory.write32(pa, Number(v & 0xffff_ffffn));
  memory.write32(pa + 4, Number(v >> 32n));
}

function read64(memory: PhysicalMemory, pa: number): bigint {
  return (BigInt(memory.read32(pa + 4)) << 32n) | BigInt(memory.read32(pa));
}

/** The harness identity map of LAYOUT: PML4[0] -> PDPT -> PD; PD[0] -> PT (4 KiB pages), PD[1..31] 2 MiB pages. */
function buildHarness(memory: PhysicalMemory): void {
  const flags = LAYOUT.harnessFlags;
  memory.write32(LAYOUT.pml4, LAYOUT.harnessPdpt | flags);
  memory.write32(LAYOUT.harnessPdpt, LAYOUT.harnessPd | flags);
  memory.write32(LAYOUT.harnessPd, LAYOUT.harnessPt | flags);
  for (let i = 1; i < 32; i++) memory.write32(LAYOUT.harnessPd + 8 * i, (i * 0x200000) | flags | PTE_LO.PS);
  for (let i = 0; i < 512; i++) memory.write32(LAYOUT.harnessPt + 8 * i, (i * 0x1000) | flags);
  for (const leaf of [1, 2, 3] as const) write64(memory, targetPhysical(leaf), LAYOUT.initialValue);
}

/** The harness PTE of a stack page (all stack pages are below 2 MiB, in the harness PT). */
function harnessPte(page: number): number {
  return LAYOUT.harnessPt + 8 * Math.floor(page / 0x1000);
}

/**
 * Every handler: a #PF on an access with an exception-table fixup completes it with the fixup (so a paging case's
 * later steps run); anything else stops the CPU (the runner has recorded what it needs by then).
 */
const handler: Program<[HandlerContext]> = function* conformanceHandler(x, ctx) {
  if (ctx.vector === VECTOR_PF && ctx.hasFixup) yield x.iret({ fixup: true });
  else yield x.die('oops', `conformance handler for vector ${ctx.vector}: the case is over`);
};

/**
 * The gate of `vector`: its default (DEFAULT_GATE; #DF on IST DEFAULT_DF_IST; returnVector DPL 3), with the fields
 * a case's override gives replacing the default's. (An override of #DF that names no IST keeps IST1.)
 */
function gateInit(vector: number, spec: GateSpec | undefined): GateInit {
  return {
    handler,
    present: spec?.present ?? DEFAULT_GATE.present,
    ist: spec?.ist ?? (vector === 8 ? DEFAULT_DF_IST : DEFAULT_GATE.ist),
    dpl: spec?.dpl ?? (vector === LAYOUT.returnVector ? 3 : DEFAULT_GATE.dpl),
    selector: spec?.selector ?? DEFAULT_GATE.selector,
    type: spec?.type ?? DEFAULT_GATE.type,
  };
}

/** One instruction a program yields, and whether it is the access or trigger a StepResult records. */
interface Action {
  readonly build: (x: Assembler) => Instruction;
  /** Index of the StepResult this instruction's step gives, or -1. */
  readonly record: number;
  /** A fetch: the placeholder instruction does nothing; the walker decides (see fetchResult). */
  readonly fetch?: boolean;
  /** A read: its StepResult carries the loaded value. */
  readonly read?: boolean;
  /** An IPI to itself: the event is taken at the next instruction boundary, so the next step is observed. */
  readonly interruptsNext?: boolean;
}

/** What the runner needs to know about the case while it steps. */
interface Run {
  readonly m: Machine;
  readonly cpu: Cpu;
  readonly cpl: 0 | 3;
  /** RSP at the access or trigger (model form): for a fetch's derived frame. */
  readonly interruptedRsp: number;
  /** Which StepResult index the instruction being executed records (set by the program as it yields). */
  marker: number;
}

/** The program that yields `actions`, setting the run's marker for each recorded one before yielding it. */
function program(run: Run, actions: readonly Action[]): Program {
  return function* conformanceProgram(x) {
    for (const a of actions) {
      run.marker = a.record;
      yield a.build(x);
    }
  };
}

const iretAction: Action = { build: (x) => x.iret(), record: -1 };

/** User code's way back to the harness, after its access or trigger (never reached: the runner stops before). */
const returnAction: Action = { build: (x) => x.int(LAYOUT.returnVector), record: -1 };

/** Kernel code that enters `user` at CPL 3 on `userRsp` (model form), IF clear: push SS, RSP, RFLAGS, CS, RIP; iret. */
function enterUserActions(userRsp: number, user: Program): Action[] {
  const slots: ((x: Assembler) => number)[] = [
    () => SELECTOR.USER_SS,
    // A model-form non-canonical RSP (bit 48 marks it) is pushed as its 64-bit image, which iret reads back.
    () => Number(toCanonicalBigInt(userRsp)),
    () => LAYOUT.rflags,
    () => SELECTOR.USER_CS,
    (x) => x.userEntry(user),
  ];
  return [...slots.map((slot) => ({ build: (x: Assembler) => x.push(slot(x)), record: -1 })), iretAction];
}

/** The access at LAYOUT.testVa: a load, a store of writeValue (one 8-byte copy), or a fetch (the walker's). */
function accessAction(kind: 'read' | 'write' | 'fetch', record: number, fixup: boolean): Action {
  const options = fixup ? { fixup: 0 } : undefined;
  if (kind === 'read') return { build: (x) => x.load(LAYOUT.testVa, 8, options), record, read: true };
  if (kind === 'write') return { build: (x) => x.copy(LAYOUT.testVa, SCRATCH, 8, options), record };
  return { build: (x) => x.pause(), record, fetch: true };
}

/** Canonical 64-bit hex of a model address. */
function hexAddress(va: number): string {
  return hex64(toCanonicalBigInt(va));
}

/**
 * What the access or trigger step just executed did: read from the CPU's exception log, the handler it entered
 * (the innermost activation) or its shutdown. `rip` is the RIP of that instruction; `read` asks for a load's value.
 */
function observeStep(run: Run, rip: number, read: boolean): StepResult {
  const cpu = run.cpu;
  const log = cpu.exceptionLog;
  if (log.length === 0) {
    if (!read) return { event: false };
    // The load's 8 bytes, exactly, where the load found them (through the TLB, stale or not).
    const value = read64(cpu.memory, cpu.port.lastPa);
    if (Number(value) !== cpu.lastResult) {
      throw new Error(`model runner: the load returned ${cpu.lastResult}, memory at the load's address holds ${value}`);
    }
    return { event: false, value: hex64(value) };
  }
  const attempts = log.filter((e) => ATTEMPT_OUTCOMES.has(e.outcome)).map((e) => e.vector);
  if (cpu.state === 'shutdown') return { event: true, attempts, shutdown: true };
  const frame = cpu.exceptionFrame();
  if (frame === undefined) {
    throw new Error(
      `model runner: the step raised ${log.map((e) => `${e.name} (${e.outcome})`).join(', ')} but no handler ` +
        `runs and the CPU is ${cpu.state}${cpu.stopEvent ? ` (${cpu.stopEvent.message})` : ''}`,
    );
  }
  const { stack, offset } = stackOf(frame.address);
  const delivered: Delivered = {
    vector: frame.vector,
    errorCode: frame.errorCode ?? null,
    cr2: hexAddress(cpu.regs.cr2),
    stack,
    frameOffset: offset,
    rip: frame.rip === rip ? 'fault' : frame.rip === rip + RIP_STRIDE ? 'next' : hexAddress(frame.rip),
    cs: frame.cs,
    rflags: hex64(frame.rflags),
    rsp: hexAddress(frame.rsp),
    ss: frame.ss,
  };
  return { event: true, attempts, delivered };
}

/**
 * An instruction fetch at testVa, translated through CPU 0's memory port as an access of kind ACCESS.FETCH: the TLB
 * first (a cached entry's XD and U/S are checked, SDM §4.10.2.2), else a walk that sets A bits and fills the TLB;
 * a #PF invalidates the address's entries (§4.10.4.1). The model has no instruction that fetches, so this runs
 * between steps, as the one place the runner changes emulated state after the first step.
 *
 * DERIVED, NOT EXECUTED: the #PF frame is what the architecture pushes for it, computed here. The oracle pushes the
 * return address and then jumps to testVa (conformance/oracle/kernel.ts), so RSP at the fetch is the case's RSP; the
 * fetch of the target faults, so the saved RIP is the target. With the default #PF gate (paging cases never
 * override gates) the frame goes on the current stack at CPL 0 (CS __KERNEL_CS, SS __KERNEL_DS) and on RSP0 at
 * CPL 3 (CS __USER_CS, SS __USER_DS), at the stack aligned down to 16, six slots with the error code; RFLAGS is
 * LAYOUT.rflags and CR2 the target.
 */
function fetchResult(run: Run): StepResult {
  const { cpu, cpl } = run;
  const port = cpu.port;
  if (port.translate(LAYOUT.testVa, ACCESS.FETCH | (cpl === 3 ? ACCESS.USER : 0)) >= 0) return { event: false };
  const walk = port.fault;
  if (walk.vector !== VECTOR_PF) throw new Error(`model runner: a fetch at testVa raised vector ${walk.vector}`);
  const rsp = run.interruptedRsp;
  const top = cpl === 3 ? LAYOUT.stacks.rsp0 + 0x1000 : rsp;
  const frameAddress = top - (top % 16) - 48;
  const { stack, offset } = stackOf(frameAddress);
  return {
    event: true,
    attempts: [VECTOR_PF],
    delivered: {
      vector: VECTOR_PF,
      errorCode: walk.errorCode,
      cr2: hexAddress(walk.cr2),
      stack,
      frameOffset: offset,
      rip: 'target',
      cs: cpl === 3 ? SELECTOR.USER_CS : SELECTOR.KERNEL_CS,
      rflags: hex64(LAYOUT.rflags),
      rsp: hexAddress(rsp),
      ss: cpl === 3 ? SELECTOR.USER_SS : SELECTOR.KERNEL_SS,
    },
  };
}

const DEFAULT_TSS = {
  rsp0: LAYOUT.stacks.rsp0 + 0x1000,
  ist1: LAYOUT.stacks.ist1 + 0x1000,
  ist2: LAYOUT.stacks.ist2 + 0x1000,
  ist3: LAYOUT.stacks.ist3 + 0x1000,
} as const;

/**
 * The state every case starts from, built once and frozen into an image: the harness map and target qwords in
 * memory, CR3, CR4 (PAE, PGE), CR0.WP and EFER.NXE set, CR2 = 0, RFLAGS = LAYOUT.rflags, CPL 0 with __KERNEL_DS,
 * RSP = kernelRsp, the TSS stack pointers at the tops of their pages, and the default gates. Each case resets one
 * machine made from it (its frames are shared copy-on-write; a reset drops what the last case wrote) and changes
 * what the case says before its first step.
 */
let base: { readonly image: MachineImage; readonly machine: Machine } | undefined;

function freshMachine(): Machine {
  if (base !== undefined) return base.image.reset(base.machine);
  const m = Machine.create({ cpus: 1, memory: LAYOUT.memory, boot: false, trace: false });
  buildHarness(m.memory);
  const cpu = m.cpu(0);
  const regs = cpu.regs;
  regs.cr3 = LAYOUT.pml4;
  regs.cr0 = (regs.cr0 | CR0.WP) >>> 0;
  regs.efer = (regs.efer | EFER.NXE) >>> 0;
  regs.cr4 = (CR4.PAE | CR4.PGE) >>> 0;
  regs.cr2 = 0;
  regs.rflags = LAYOUT.rflags;
  regs.rsp = LAYOUT.kernelRsp;
  regs.cpl = 0;
  regs.ss = SELECTOR.KERNEL_SS;
  cpu.tss.rsp0 = DEFAULT_TSS.rsp0;
  cpu.tss.ist[1] = DEFAULT_TSS.ist1;
  cpu.tss.ist[2] = DEFAULT_TSS.ist2;
  cpu.tss.ist[3] = DEFAULT_TSS.ist3;
  for (const v of [...DEFAULT_VECTORS, LAYOUT.returnVector]) cpu.setGate(v, gateInit(v, undefined));
  const image = MachineImage.capture(m);
  base = { image, machine: image.instantiate({ trace: false }) };
  return base.machine;
}

/** The machine for a case: the base state with the case's CR0.WP, EFER.NXE and kernel RSP. */
function buildMachine(wp: boolean, nxe: boolean, kernelRsp: number): { m: Machine; cpu: Cpu } {
  const m = freshMachine();
  const cpu = m.cpu(0);
  const regs = cpu.regs;
  if (!wp) regs.cr0 = (regs.cr0 & ~CR0.WP) >>> 0;
  if (!nxe) regs.efer = (regs.efer & ~EFER.NXE) >>> 0;
  regs.rsp = kernelRsp;
  return { m, cpu };
}

/**
 * Steps CPU 0 until its programs are done or it stops, observing the step of each recorded action (`recorded`: the
 * actions whose `record` is a StepResult index); with `stopAfter`, stepping ends once that many are recorded (what
 * a CPL 3 or delivery case would run after its one recorded step is harness).
 */
function execute(run: Run, recorded: readonly Action[], stopAfter: number): StepResult[] {
  const results: StepResult[] = [];
  const cpu = run.cpu;
  let count = 0;
  for (let n = 0; cpu.state === 'running' && count < stopAfter; n++) {
    if (n >= STEP_LIMIT) throw new Error(`model runner: the case took more than ${STEP_LIMIT} steps`);
    run.marker = -1;
    const rip = cpu.rip;
    run.m.step(0);
    const index = run.marker;
    if (index < 0) continue;
    const action = recorded.find((a) => a.record === index)!;
    if (action.interruptsNext && cpu.state === 'running') run.m.step(0);
    results[index] = action.fetch ? fetchResult(run) : observeStep(run, rip, action.read === true);
    count++;
  }
  return results;
}

function runPaging(c: PagingCase): Observation {
  if (c.entries.length !== 5 - c.leaf) {
    throw new Error(`case ${c.id}: a level-${c.leaf} leaf needs ${5 - c.leaf} entries, not ${c.entries.length}`);
  }
  const accesses = c.steps.filter((s) => s.op === 'access').length;
  if (c.cpl === 3 && (c.steps.length !== 1 || c.steps[0]!.op !== 'access')) {
    throw new Error(`case ${c.id}: a CPL 3 paging case has exactly one step, an access`);
  }
  const { m, cpu } = buildMachine(c.controls.wp, c.controls.nxe, LAYOUT.kernelRsp);
  const addresses = entryAddresses(c.leaf);
  const targets = entryTargets(c.leaf);
  c.entries.forEach((bits, i) => {
    write64(m.memory, addresses[i]!, entryValue(targets[i]!, bits));
  });
  write64(m.memory, SCRATCH, LAYOUT.writeValue);
  const run: Run = {
    m,
    cpu,
    cpl: c.cpl,
    interruptedRsp: c.cpl === 3 ? LAYOUT.userRsp : LAYOUT.kernelRsp,
    marker: -1,
  };

  const actions: Action[] = [];
  let record = 0;
  c.steps.forEach((step, i) => {
    switch (step.op) {
      case 'access': {
        actions.push(accessAction(step.kind, record++, c.cpl === 0));
        return;
      }
      case 'set-entry': {
        const k = 4 - step.level;
        if (k >= addresses.length) throw new Error(`case ${c.id}: step ${i} sets a level-${step.level} entry`);
        const scratch = SCRATCH + 8 * (1 + i);
        write64(m.memory, scratch, entryValue(targets[k]!, step.bits));
        // The identity map makes the entry's virtual address its physical one.
        actions.push({ build: (x) => x.copy(addresses[k]!, scratch, 8), record: -1 });
        return;
      }
      case 'invlpg':
        actions.push({ build: (x) => x.invlpg(LAYOUT.testVa), record: -1 });
        return;
      case 'reload-cr3':
        actions.push({ build: (x) => x.movToCr3(LAYOUT.pml4), record: -1 });
        return;
      case 'toggle-pge':
        actions.push({ build: (x) => x.movToCr4(CR4.PAE), record: -1 });
        actions.push({ build: (x) => x.movToCr4((CR4.PAE | CR4.PGE) >>> 0), record: -1 });
        return;
    }
  });

  if (c.cpl === 0) m.load(0, program(run, actions));
  else m.load(0, program(run, enterUserActions(LAYOUT.userRsp, program(run, [...actions, returnAction]))));
  const results = execute(run, actions, c.cpl === 0 ? Number.POSITIVE_INFINITY : 1);
  if (results.length !== accesses || results.some((r) => r === undefined)) {
    throw new Error(`case ${c.id}: ${accesses} accesses, but the model recorded ${results.length}`);
  }
  return {
    steps: results,
    entries: addresses.map((pa) => hex64(read64(m.memory, pa))),
    memory: hex64(read64(m.memory, targetPhysical(c.leaf))),
  };
}

function runDelivery(c: DeliveryCase): Observation {
  const nonCanonical = toVirtual(LAYOUT.nonCanonical);
  const tss: Record<'rsp0' | 'ist1' | 'ist2' | 'ist3', number> = { ...DEFAULT_TSS };
  let kernelRsp = LAYOUT.kernelRsp - c.rspOffset;
  let userRsp = LAYOUT.userRsp - c.rspOffset;
  const pteChanges: [number, number][] = [];
  for (const [name, state] of Object.entries(c.stacks) as [keyof DeliveryCase['stacks'], StackState | undefined][]) {
    if (state === undefined) continue;
    if (state === 'non-canonical') {
      if (name !== 'current') tss[name] = nonCanonical;
      else if (c.cpl === 3) userRsp = nonCanonical;
      else kernelRsp = nonCanonical;
      continue;
    }
    const bit = state === 'not-present' ? PTE_LO.P : state === 'read-only' ? PTE_LO.RW : 0;
    if (bit === 0) throw new Error(`case ${c.id}: unknown stack state ${String(state)}`);
    pteChanges.push([harnessPte(stackPage(name, c.cpl)), bit]);
  }
  // Delivery cases run with CR0.WP = 1 (a read-only stack page faults a supervisor push) and EFER.NXE = 1.
  const { m, cpu } = buildMachine(true, true, kernelRsp);
  cpu.tss.rsp0 = tss.rsp0;
  cpu.tss.ist[1] = tss.ist1;
  cpu.tss.ist[2] = tss.ist2;
  cpu.tss.ist[3] = tss.ist3;
  for (const [pte, bit] of pteChanges) m.memory.write32(pte, (m.memory.read32(pte) & ~bit) >>> 0);
  for (const [key, spec] of Object.entries(c.gates)) {
    const vector = Number(key);
    if (spec.missing) cpu.clearGate(vector);
    else cpu.setGate(vector, gateInit(vector, spec));
  }
  const run: Run = { m, cpu, cpl: c.cpl, interruptedRsp: c.cpl === 3 ? userRsp : kernelRsp, marker: -1 };

  const trigger: Action[] = [];
  switch (c.trigger.kind) {
    case 'page-fault':
      // PML4[1] is 0 in a delivery case: a read of testVa is a not-present #PF.
      trigger.push({ build: (x) => x.load(LAYOUT.testVa, 8), record: 0 });
      break;
    case 'general-protection':
      trigger.push({ build: (x) => x.load(LAYOUT.nonCanonical, 8), record: 0 });
      break;
    case 'push': {
      // RSP loaded, then the push (the trigger), which writes at rsp - 8 in 64-bit arithmetic.
      const rsp = BigInt(`0x${c.trigger.rsp}`);
      trigger.push({ build: (x) => x.movToRsp(rsp), record: -1 });
      trigger.push({ build: (x) => x.push(0), record: 0 });
      break;
    }
    case 'int': {
      const vector = c.trigger.vector;
      trigger.push({ build: (x) => x.int(vector), record: 0 });
      break;
    }
    case 'iret': {
      // The frame IRETQ pops: SS, RSP, RFLAGS, CS, RIP (user code that returns with INT returnVector, or a
      // non-canonical address), pushed by kernel code as the oracle's does.
      const { cs, ss, rip } = c.trigger;
      const user = program(run, [returnAction]);
      const ripSlot = (x: Assembler) => (rip === 'user' ? x.userEntry(user) : Number(LAYOUT.nonCanonical));
      const slots: ((x: Assembler) => number)[] = [
        () => ss,
        () => LAYOUT.userRsp,
        () => LAYOUT.rflags,
        () => cs,
        ripSlot,
      ];
      for (const slot of slots) trigger.push({ build: (x) => x.push(slot(x)), record: -1 });
      trigger.push({ build: (x) => x.iret(), record: 0 });
      break;
    }
    case 'self-ipi': {
      const { vector, nmi } = c.trigger;
      // IF set, so the IPI is accepted at the boundary after the send (the saved RIP is the next instruction).
      cpu.regs.rflags = LAYOUT.ipiRflags;
      const send = (x: Assembler) => (nmi ? x.sendIpi(0, vector, 'nmi') : x.sendIpi('self', vector));
      trigger.push({ build: send, record: 0, interruptsNext: true });
      trigger.push({ build: (x) => x.pause(), record: -1 });
      break;
    }
  }
  if (c.cpl === 0) m.load(0, program(run, trigger));
  else m.load(0, program(run, enterUserActions(userRsp, program(run, [...trigger, returnAction]))));
  const results = execute(run, trigger, 1);
  if (results.length !== 1 || results[0] === undefined) throw new Error(`case ${c.id}: the trigger never ran`);
  return { steps: results };
}

/** Runs one case on a fresh x86slice machine and returns what it observed (conformance/case.ts Observation). */
export function runOnModel(c: Case): Observation {
  return c.family === 'delivery' ? runDelivery(c) : runPaging(c);
}
