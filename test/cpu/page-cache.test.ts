// Behaviour tests for the CPU's page shortcut (MemoryPort's PageCache of pages recently reached through TLB hits):
// a load, store, push or pop that goes through it must behave exactly as the TLB hit it stands for (SDM Vol. 3
// §4.10): the same bytes of the same frame, the same stale translation until this CPU invalidates it, the same
// permission faults, the same A/D updates, the same TLB counters, trace and footprint. Each test warms the shortcut
// (two or more accesses to a page) before the event that could make a stale copy of it differ from the TLB, and
// the last describe block runs random programs with and without the shortcut and compares everything.
import { describe, expect, it } from 'vitest';
import type { Assembler, Program } from '../../src/cpu/assembler.ts';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import type { Instruction } from '../../src/cpu/instruction.ts';
import { CR0, CR4, type HandlerContext } from '../../src/cpu/registers.ts';
import type { StepEvent } from '../../src/cpu/step-event.ts';
import { MachineImage } from '../../src/machine/image.ts';
import { Machine } from '../../src/machine/machine.ts';
import { Prng, type ScheduleEntry } from '../../src/machine/schedule.ts';
import { formatVirtual, fromCanonicalHalves, PAGE_SIZE, toVirtual } from '../../src/mmu/address.ts';
import type { FootprintRecord } from '../../src/mmu/footprint.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';
import { PF_ERROR } from '../../src/mmu/walker.ts';

type Body = Generator<Instruction, void, number>;

// Kernel data pages in vmalloc space, away from the boot's stacks (which sit at the start of vmalloc space).
const DATA = toVirtual(0xffff_c900_0100_0000n);
const OTHER = toVirtual(0xffff_c900_0100_8000n);
const FLAGS = toVirtual(0xffff_c900_0101_0000n);
const ALIAS = toVirtual(0xffff_c900_0140_0000n);
const SPLIT = toVirtual(0xffff_c900_0180_0000n); // two adjacent pages: SPLIT and SPLIT + 4 KiB
const USER_PAGE = toVirtual(0xffff_c900_01c0_0000n);
const EXTRA_STACK = toVirtual(0xffff_c900_0300_0000n);
// A user stack page in the low half; its page-cache slot (bits 12..16 of the address: 30) is nobody else's.
const USER_STACK = toVirtual(0x0000_7fff_ffff_e000n);
const FAULTED = 0xfa17;
/** __USER_DS, __USER_CS and RFLAGS with IF set: the SS, CS and RFLAGS slots of an iret frame to user mode. */
const USER_DS = 0x2b;
const USER_CS = 0x33;
const USER_RFLAGS = 0x202;
/** The vector user code traps to the kernel through (Linux's int 0x80 entry). */
const SYSCALL = 0x80;

/** Physical address `va` translates to in the page tables now (no TLB, no A/D update). */
function phys(m: Machine, va: number): number {
  const pa = m.physicalAddress(va);
  if (pa === undefined) throw new Error(`${formatVirtual(va)} is not mapped`);
  return pa;
}

/** The PTE of `va` as kernel code reaches it: through the direct map (2 MiB pages, never the 4 KiB shortcut). */
function pteVa(m: Machine, va: number): number {
  return m.directMap(m.pteAddress(va));
}

/** Program fragment: rewrites the low half of the PTE of `va` with a load and a 4-byte store (no INVLPG). */
function* editPte(x: Assembler, m: Machine, va: number, edit: (low: number) => number): Body {
  const pte = pteVa(m, va);
  const low = yield x.load(pte, 4);
  yield x.store(pte, 4, edit(low) >>> 0);
}

const pointAt = (pa: number) => (low: number) => (low & ~PTE_LO.ADDR) | pa;
const clearBits = (bits: number) => (low: number) => low & ~bits;
const setBits = (bits: number) => (low: number) => low | bits;

/** The low half of the PTE of `va`, read physically. */
function pteLow(m: Machine, va: number): number {
  return m.memory.read32(m.pteAddress(va));
}

/** Maps `alias` to the frame `target` maps to (4 KiB, global, like m.map). */
function mapAlias(m: Machine, alias: number, target: number, writable = true): void {
  m.boot!.pageTables.map4k(alias, phys(m, target), { writable, global: true });
}

/** A fresh zeroed frame from the boot allocator, mapped nowhere. */
function freshFrame(m: Machine): number {
  return m.boot!.frames.alloc();
}

function events(m: Machine, cpu: number, op: string): StepEvent[] {
  return m.trace.filter((e) => e.cpu === cpu && e.op === op);
}

/** The exceptions raised on `cpu`, one per step; INT 0x80 (how user code returns to the kernel) is no fault. */
function faults(m: Machine, cpu: number) {
  return m.trace
    .filter((e) => e.cpu === cpu && e.exceptions !== undefined && e.op !== 'int')
    .map((e) => ({ op: e.op, ...e.exceptions![0]! }));
}

function counters(m: Machine, cpu: number) {
  return { hits: m.cpu(cpu).tlb.hits, misses: m.cpu(cpu).tlb.misses };
}

function cachedEntry(m: Machine, cpu: number, va: number) {
  return m.snapshot().cpus[cpu]!.tlb.find((e) => e.va === va);
}

/** The 8 bytes at `va` read as a canonical address (a saved RSP), through the page tables. */
function savedAddress(m: Machine, va: number): number {
  const pa = phys(m, va);
  return fromCanonicalHalves(m.memory.read32(pa), m.memory.read32(pa + 4));
}

/** Runs `schedule`, then round-robin to the end (the last instruction's result reaches the program there). */
function runThen(m: Machine, schedule: string) {
  m.run({ schedule });
  return m.run();
}

/** Maps one page at `va` and makes it the IST stack `index` of CPU `cpu`. */
function useIstStack(m: Machine, cpu: number, index: number, va = EXTRA_STACK): void {
  m.map(va, { writable: true });
  m.cpu(cpu).tss.ist[index] = va + PAGE_SIZE;
}

/** A #PF gate on IST3 that records the context and the saved RSP, then sets P again in the faulting page's PTE. */
function mapBackOnFault(m: Machine, seen: { ctx: HandlerContext; savedRsp: number }[], body?: Program): void {
  useIstStack(m, 0, 3);
  m.cpu(0).setGate(VECTOR.PF, {
    handler: function* (x, ctx: HandlerContext) {
      // Frame: error code, RIP, CS, RFLAGS, RSP, SS: the saved RSP is at frameRsp + 32.
      const savedRsp = savedAddress(m, ctx.frameRsp + 32);
      seen.push({ ctx, savedRsp });
      if (body) yield* body(x) as Body;
      yield* editPte(x, m, ctx.cr2 - (ctx.cr2 % PAGE_SIZE), setBits(PTE_LO.P));
    },
    ist: 3,
    type: 'interrupt',
  });
}

/** Set-up: maps the user stack page (user, writable) and returns its top, the RSP user code starts with. */
function mapUserStack(m: Machine): number {
  m.map(USER_STACK, { writable: true, user: true });
  return USER_STACK + PAGE_SIZE;
}

/**
 * Kernel code, first part of entering user mode: pushes the frame `iret` pops to run `user` at CPL 3 with RSP
 * `userRsp` (SS, RSP, RFLAGS, CS, RIP). Tests push it before warming their pages and iret after: the first write to
 * the kernel stack's never-written frame materialises it, which empties the page cache, so pushing first keeps
 * the warm pages warm up to the CPL change (and the exception and INT frames later written on TSS.RSP0, the same
 * page, find it materialised). Nothing in between flushes the TLB: an iret flushes nothing.
 */
function* pushUserFrame(x: Assembler, user: Program<[]>, userRsp: number): Body {
  for (const slot of [USER_DS, userRsp, USER_RFLAGS, USER_CS, x.userEntry(user)]) yield x.push(slot);
}

/**
 * A DPL 3 trap gate at SYSCALL on CPU 0 whose handler runs `kernel` at CPL 0: user code's `x.int(SYSCALL)` goes
 * back to kernel mode (frame on TSS.RSP0), and the handler's iret resumes the user code after the INT, at CPL 3.
 */
function syscallGate(m: Machine, kernel: (x: Assembler) => Body): void {
  m.cpu(0).setGate(SYSCALL, { ist: 0, type: 'trap', dpl: 3, handler: kernel });
}

describe('a load through a warm page sees every store to its frame', () => {
  it.each([
    ['the same address', 'same'],
    ['an alias at another virtual address', 'alias'],
    ['the direct map (a 2 MiB page)', 'direct'],
  ] as const)('a load repeated on CPU1 sees the store CPU0 made in between through %s', (_, how) => {
    const m = Machine.create({ cpus: 2 });
    m.map(DATA, { writable: true });
    mapAlias(m, ALIAS, DATA);
    m.memory.write64(phys(m, DATA) + 0x10, 5);
    const target = how === 'same' ? DATA : how === 'alias' ? ALIAS : m.directMap(phys(m, DATA));
    const seen: number[] = [];
    m.load(0, function* (x) {
      for (let v = 6; v <= 8; v++) yield x.store(target + 0x10, 8, v);
    });
    m.load(1, function* (x) {
      for (let i = 0; i < 6; i++) seen.push(yield x.load(DATA + 0x10, 8));
    });
    expect(runThen(m, '1,1,0,1,0,0,1,1,1').outcome).toBe('ok');
    expect(seen).toEqual([5, 5, 6, 8, 8, 8]);
    const loads = events(m, 1, 'load');
    expect(loads.map((e) => e.tlb)).toEqual(['miss', 'hit', 'hit', 'hit', 'hit', 'hit']);
    expect(new Set(loads.map((e) => e.pa))).toEqual(new Set([phys(m, DATA) + 0x10]));
  });

  it('a load on the same CPU sees stores made through an alias and through the direct map, and vice versa', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    mapAlias(m, ALIAS, DATA);
    const direct = m.directMap(phys(m, DATA));
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(DATA + 8, 8)); // the frame was never written: zeros
      seen.push(yield x.load(DATA + 8, 8));
      yield x.store(ALIAS + 8, 8, 0x11);
      seen.push(yield x.load(DATA + 8, 8));
      yield x.store(ALIAS + 8, 8, 0x22);
      seen.push(yield x.load(DATA + 8, 8));
      yield x.store(ALIAS + 8, 8, 0x33); // through the alias's warm write page
      seen.push(yield x.load(DATA + 8, 8));
      yield x.store(direct + 8, 8, 0x44);
      seen.push(yield x.load(DATA + 8, 8));
      yield x.store(DATA + 8, 8, 0x55);
      yield x.store(DATA + 8, 8, 0x66); // through DATA's warm write page
      seen.push(yield x.load(ALIAS + 8, 8));
      seen.push(yield x.load(direct + 8, 8));
      seen.push(yield x.load(ALIAS + 8, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([0, 0, 0x11, 0x22, 0x33, 0x44, 0x66, 0x66, 0x66]);
  });

  it('a warm load sees a value CPU0 wrote with cmpxchg and xchg (locked writes, the third through the write page)', () => {
    const m = Machine.create({ cpus: 2 });
    m.map(DATA, { writable: true });
    const seen: number[] = [];
    const old: number[] = [];
    m.load(0, function* (x) {
      old.push(yield x.cmpxchg(DATA, 8, 0, 7));
      old.push(yield x.cmpxchg(DATA, 8, 0, 9)); // fails: the value is 7
      old.push(yield x.xchg(DATA, 4, 0x1234));
    });
    m.load(1, function* (x) {
      for (let i = 0; i < 6; i++) seen.push(yield x.load(DATA, 8));
    });
    expect(runThen(m, '1,1,0,1,0,1,0,1,1').outcome).toBe('ok');
    expect(old).toEqual([0, 7, 7]);
    expect(seen).toEqual([0, 0, 7, 7, 0x1234, 0x1234]);
  });

  it('a load sees a store the test made to physical memory between two steps', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const seen: number[] = [];
    m.load(0, function* (x) {
      for (let i = 0; i < 4; i++) seen.push(yield x.load(DATA, 8));
    });
    m.run({ schedule: '0,0' });
    m.memory.write64(phys(m, DATA), 0xabc); // the first write materialises the frame
    m.run({ schedule: '0' });
    m.memory.write64(phys(m, DATA), 0xdef); // the frame now exists: written in place
    expect(runThen(m, '0').outcome).toBe('ok');
    expect(seen).toEqual([0, 0, 0xabc, 0xdef]);
  });

  it('a store to a never-written frame is read back on the same CPU and on another that had read its zeros; other zero frames stay zero', () => {
    const m = Machine.create({ cpus: 2 });
    m.map(DATA, { writable: true });
    m.map(OTHER, { writable: true });
    const cpu0: number[] = [];
    const cpu1: number[] = [];
    m.load(0, function* (x) {
      yield x.store(DATA + 8, 8, 0x1234);
      cpu0.push(yield x.load(DATA + 8, 8));
      yield x.store(DATA + 8, 2, 0xbeef);
      yield x.store(DATA + 8, 2, 0xcafe); // through the warm write page
      cpu0.push(yield x.load(DATA + 8, 8));
      cpu0.push(yield x.load(DATA + 0x100, 8));
    });
    m.load(1, function* (x) {
      cpu1.push(yield x.load(DATA + 8, 8)); // zeros of a frame that does not exist yet
      cpu1.push(yield x.load(OTHER + 8, 8));
      cpu1.push(yield x.load(DATA + 8, 8));
      cpu1.push(yield x.load(DATA + 8, 8));
      cpu1.push(yield x.load(OTHER + 8, 8));
      cpu1.push(yield x.load(OTHER + 8, 8));
      cpu1.push(yield x.load(DATA + 8, 8));
    });
    expect(runThen(m, '1,1,1,0,0,1,0,0,0,0,1,1,1').outcome).toBe('ok');
    expect(cpu0).toEqual([0x1234, 0xcafe, 0]);
    expect(cpu1).toEqual([0, 0, 0, 0x1234, 0, 0, 0xcafe]);
    expect(m.memory.read64(phys(m, OTHER) + 8)).toBe(0);
    expect(m.memory.read64(phys(m, DATA) + 8)).toBe(0xcafe);
  });
});

describe('a first store through a TLB entry that already has D=1 (the PTE was dirty before it was cached)', () => {
  /** Sets A and D in the PTE of `va` at set-up, as for a page the kernel had already written. */
  function markDirty(m: Machine, va: number): void {
    m.memory.write32(m.pteAddress(va), (pteLow(m, va) | PTE_LO.A | PTE_LO.D) >>> 0);
  }

  it('writes a never-written frame of its own: other never-written pages still read zero', () => {
    const m = Machine.create({ cpus: 2 });
    m.map(DATA, { writable: true });
    m.map(OTHER, { writable: true });
    markDirty(m, DATA);
    const cpu0: number[] = [];
    const cpu1: number[] = [];
    m.load(0, function* (x) {
      cpu0.push(yield x.load(DATA, 8)); // caches DATA with D=1: the next store needs no walk
      yield x.store(DATA, 8, 5);
      yield x.store(DATA + 8, 8, 6);
      cpu0.push(yield x.load(DATA, 8));
      cpu0.push(yield x.load(OTHER, 8));
    });
    m.load(1, function* (x) {
      cpu1.push(yield x.load(OTHER, 8));
      cpu1.push(yield x.load(DATA, 8));
      cpu1.push(yield x.load(OTHER + 8, 8));
    });
    expect(runThen(m, '1,0,0,0,0,0,1,1').outcome).toBe('ok');
    expect(cpu0).toEqual([0, 5, 0]);
    expect(cpu1).toEqual([0, 5, 0]);
    expect(m.memory.read64(phys(m, OTHER))).toBe(0);
    expect(m.memory.read64(freshFrame(m))).toBe(0);
    expect(events(m, 0, 'store').map((e) => e.tlb)).toEqual(['hit', 'hit']);
  });

  it('in a clone, writes a copy of the image’s frame: the image and a sibling clone keep the old bytes', () => {
    const base = Machine.create({ cpus: 1 });
    base.map(DATA, { writable: true });
    base.map(FLAGS, { writable: true });
    base.memory.write64(phys(base, DATA), 1);
    markDirty(base, DATA);
    const seen = new Map<Assembler, number[]>();
    base.load(0, function* (x) {
      const log: number[] = [];
      seen.set(x, log);
      const mine = yield x.load(FLAGS, 8);
      log.push(yield x.load(DATA, 8));
      yield x.store(DATA, 8, mine);
      yield x.store(DATA + 8, 8, mine);
      log.push(yield x.load(DATA, 8));
    });
    const image = MachineImage.capture(base);
    const flags = phys(base, FLAGS);
    const a = image.instantiate();
    a.memory.write64(flags, 20);
    expect(a.run().outcome).toBe('ok');
    const b = image.instantiate();
    b.memory.write64(flags, 30);
    base.memory.write64(flags, 10);
    expect(base.run().outcome).toBe('ok');
    expect(b.run().outcome).toBe('ok');
    expect(seen.get(a.cpu(0).asm)).toEqual([1, 20]);
    expect(seen.get(base.cpu(0).asm)).toEqual([1, 10]);
    expect(seen.get(b.cpu(0).asm)).toEqual([1, 30]);
    const untouched = image.instantiate();
    expect([
      untouched.memory.read64(phys(untouched, DATA)),
      untouched.memory.read64(phys(untouched, DATA) + 8),
    ]).toEqual([1, 0]);
  });
});

describe('stale translations: the warm page lasts exactly as long as the TLB entry', () => {
  function retargetMachine(cpus = 1, global = true) {
    const m = Machine.create({ cpus });
    m.map(DATA, { writable: true, global });
    m.map(OTHER, { writable: true });
    const oldFrame = phys(m, DATA);
    const newFrame = freshFrame(m);
    m.memory.write64(oldFrame, 1);
    m.memory.write64(newFrame, 2);
    return { m, oldFrame, newFrame };
  }

  it('after its PTE is pointed at another frame, the CPU reads and writes the old frame until INVLPG, then the new one', () => {
    const { m, oldFrame, newFrame } = retargetMachine();
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.store(DATA + 8, 8, 10); // D=1 cached, so later stores need no walk
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      yield* editPte(x, m, DATA, pointAt(newFrame));
      seen.push(yield x.load(DATA, 8)); // stale: the old frame
      yield x.store(DATA + 8, 8, 11);
      yield x.store(DATA + 8, 8, 12); // stale stores, through the warm write page
      seen.push(yield x.load(DATA + 8, 8));
      yield x.invlpg(DATA);
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA + 8, 8));
      yield x.store(DATA + 8, 8, 13);
      seen.push(yield x.load(DATA + 8, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([1, 1, 1, 12, 2, 0, 13]);
    expect([m.memory.read64(oldFrame), m.memory.read64(oldFrame + 8)]).toEqual([1, 12]);
    expect([m.memory.read64(newFrame), m.memory.read64(newFrame + 8)]).toEqual([2, 13]);
    const dataLoads = events(m, 0, 'load').filter((e) => e.va === DATA || e.va === DATA + 8);
    expect(dataLoads.map((e) => [e.tlb, e.pa])).toEqual([
      ['hit', oldFrame],
      ['hit', oldFrame],
      ['hit', oldFrame],
      ['hit', oldFrame + 8],
      ['miss', newFrame],
      ['hit', newFrame + 8],
      ['hit', newFrame + 8],
    ]);
  });

  it('CPU1 keeps reading the old frame through its warm page after CPU0 retargets the PTE and flushes its own TLB', () => {
    const { m, newFrame } = retargetMachine(2);
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield* editPte(x, m, DATA, pointAt(newFrame));
      yield x.invlpg(DATA);
      yield x.store(DATA, 8, 3); // CPU0 walks: the new frame
    });
    m.load(1, function* (x) {
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      yield x.invlpg(DATA);
      seen.push(yield x.load(DATA, 8));
    });
    expect(runThen(m, '1,1,0,0,0,0,1,1,1,1').outcome).toBe('ok');
    expect(seen).toEqual([1, 1, 1, 1, 3]);
  });

  it.each([
    [false, [1, 1, 1, 2]],
    [true, [1, 1, 1, 1]],
  ])('MOV to CR3 with global=%s: a non-global page is walked again, a global one stays stale', (global, expected) => {
    const { m, newFrame } = retargetMachine(1, global);
    const cr3 = m.cpu(0).regs.cr3;
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      yield* editPte(x, m, DATA, pointAt(newFrame));
      seen.push(yield x.load(DATA, 8));
      yield x.movToCr3(cr3);
      seen.push(yield x.load(DATA, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual(expected);
    expect(events(m, 0, 'load').at(-1)!.tlb).toBe(global ? 'hit' : 'miss');
  });

  it('toggling CR4.PGE drops a warm global page: the next load walks and sees the new frame', () => {
    const { m, newFrame } = retargetMachine();
    const cr4 = m.cpu(0).regs.cr4;
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      yield* editPte(x, m, DATA, pointAt(newFrame));
      yield x.movToCr4(cr4); // PGE unchanged: no flush
      seen.push(yield x.load(DATA, 8));
      yield x.movToCr4(cr4 & ~CR4.PGE);
      seen.push(yield x.load(DATA, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([1, 1, 1, 2]);
  });

  it('m.evictTlb between two loads makes the next load a TLB miss that sees the new PTE', () => {
    const { m, newFrame } = retargetMachine();
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      yield* editPte(x, m, DATA, pointAt(newFrame));
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
    });
    m.run({ schedule: '0*5' });
    const before = counters(m, 0);
    m.evictTlb(0, DATA);
    m.run({ schedule: '0*2' });
    expect(counters(m, 0)).toEqual({ hits: before.hits + 1, misses: before.misses + 1 });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([1, 1, 1, 2, 2]);
    const loads = events(m, 0, 'load').filter((e) => e.va === DATA);
    expect(loads.map((e) => e.tlb)).toEqual(['miss', 'hit', 'hit', 'miss', 'hit']);
  });

  it.each([
    ['an evict: event in the schedule string between two loads makes the next load miss', 'evict', 'miss'],
    ['a speculative fill: event after the PTE change makes the next load a hit', 'fill', 'hit'],
  ] as const)('%s and see the new PTE', (_name, event, outcome) => {
    const { m, newFrame } = retargetMachine();
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      yield* editPte(x, m, DATA, pointAt(newFrame));
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
    });
    expect(runThen(m, `0*5,${event}:0:${formatVirtual(DATA)},0`).outcome).toBe('ok');
    expect(seen).toEqual([1, 1, 1, 2]);
    expect(events(m, 0, 'load').at(-1)).toMatchObject({ tlb: outcome, pa: newFrame, value: 2 });
  });

  it('a warm page whose TLB entry another page evicted (a one-entry TLB) is walked again', () => {
    const m = Machine.create({ cpus: 1, tlb: { entries: 1, ways: 1 } });
    m.map(DATA, { writable: true });
    m.map(OTHER, { writable: true });
    const newFrame = freshFrame(m);
    m.memory.write64(phys(m, DATA), 1);
    m.memory.write64(newFrame, 2);
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      yield* editPte(x, m, DATA, pointAt(newFrame)); // through a 2 MiB entry: the 4 KiB entry stays
      seen.push(yield x.load(DATA, 8));
      yield x.load(OTHER, 8); // replaces DATA's entry
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([1, 1, 1, 2, 2]);
    expect(
      events(m, 0, 'load')
        .filter((e) => e.va === DATA)
        .map((e) => e.tlb),
    ).toEqual(['miss', 'hit', 'hit', 'miss', 'hit']);
  });

  it('a warm store page whose TLB entry another page evicted is walked again for the next store', () => {
    const m = Machine.create({ cpus: 1, tlb: { entries: 1, ways: 1 } });
    m.map(DATA, { writable: true });
    m.map(OTHER, { writable: true });
    const oldFrame = phys(m, DATA);
    const newFrame = freshFrame(m);
    m.load(0, function* (x) {
      yield x.store(DATA, 8, 1);
      yield x.store(DATA, 8, 2);
      yield* editPte(x, m, DATA, pointAt(newFrame));
      yield x.store(DATA, 8, 3); // stale: old frame
      yield x.store(OTHER, 8, 9); // replaces DATA's entry
      yield x.store(DATA, 8, 4); // walks: new frame
      yield x.store(DATA, 8, 5);
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.memory.read64(oldFrame)).toBe(3);
    expect(m.memory.read64(newFrame)).toBe(5);
  });
});

describe('permissions are checked against the cached entry', () => {
  it('after R/W is cleared in the PTE, the stale writable entry keeps allowing stores until INVLPG; then #PF with P|W', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const results: number[] = [];
    m.load(0, function* (x) {
      yield x.store(DATA, 8, 1);
      yield x.store(DATA, 8, 2); // warm write page
      yield* editPte(x, m, DATA, clearBits(PTE_LO.RW));
      yield x.store(DATA, 8, 3);
      yield x.store(DATA + 8, 8, 4);
      yield x.invlpg(DATA);
      results.push(yield x.store(DATA, 8, 5, { fixup: FAULTED }));
      results.push(yield x.load(DATA, 8)); // reads are still allowed
      results.push(yield x.store(DATA + 8, 8, 6, { fixup: FAULTED }));
    });
    expect(m.run().outcome).toBe('ok');
    expect(results).toEqual([FAULTED, 3, FAULTED]);
    expect(faults(m, 0)).toMatchObject([
      { op: 'store', vector: VECTOR.PF, errorCode: PF_ERROR.P | PF_ERROR.W, cr2: DATA },
      { op: 'store', vector: VECTOR.PF, errorCode: PF_ERROR.P | PF_ERROR.W, cr2: DATA + 8 },
    ]);
    expect([m.memory.read64(phys(m, DATA)), m.memory.read64(phys(m, DATA) + 8)]).toEqual([3, 4]);
  });

  it('a store to a read-only page faults even when its loads are warm; the #PF drops the entry, so no INVLPG is needed', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: false });
    const errorCodes: number[] = [];
    useIstStack(m, 0, 3);
    m.cpu(0).setGate(VECTOR.PF, {
      handler: function* (x, ctx: HandlerContext) {
        errorCodes.push(ctx.errorCode);
        yield* editPte(x, m, DATA, setBits(PTE_LO.RW));
      },
      ist: 3,
      type: 'interrupt',
    });
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      yield x.store(DATA, 8, 7); // #PF; re-executed after the handler made the page writable
      seen.push(yield x.load(DATA, 8));
      yield x.store(DATA, 8, 8);
      seen.push(yield x.load(DATA, 8));
    });
    expect(m.run({ maxSteps: 50 }).outcome).toBe('ok');
    expect(errorCodes).toEqual([PF_ERROR.P | PF_ERROR.W]);
    expect(seen).toEqual([0, 0, 7, 8]);
  });

  it.each([
    ['load', [PF_ERROR.P | PF_ERROR.U, PF_ERROR.P | PF_ERROR.W | PF_ERROR.U]],
    ['store', [PF_ERROR.P | PF_ERROR.W | PF_ERROR.U, PF_ERROR.P | PF_ERROR.U]],
  ] as const)(
    'a user-mode (CPL 3) %s of a supervisor page right after supervisor loads and stores of it faults with U set',
    (first, errorCodes) => {
      const m = Machine.create({ cpus: 1 });
      const userRsp = mapUserStack(m);
      m.map(DATA, { writable: true });
      const seen: number[] = [];
      const cpls: number[] = [];
      const userLoad = (x: Assembler) => x.load(DATA, 8, { fixup: FAULTED });
      const userStore = (x: Assembler) => x.store(DATA, 8, 9, { fixup: FAULTED });
      const user = function* (x: Assembler): Body {
        seen.push(yield first === 'load' ? userLoad(x) : userStore(x));
        cpls.push(m.cpu(0).regs.cpl); // the boot handler's fixup iret returned to CPL 3
        seen.push(yield first === 'load' ? userStore(x) : userLoad(x));
        yield x.int(SYSCALL);
      };
      syscallGate(m, function* (x) {
        seen.push(yield x.load(DATA, 8)); // back at CPL 0
        seen.push(yield x.load(DATA, 8));
      });
      m.load(0, function* (x) {
        yield* pushUserFrame(x, user, userRsp);
        seen.push(yield x.load(DATA, 8));
        yield x.store(DATA, 8, 7);
        yield x.store(DATA, 8, 7); // warm for writes
        seen.push(yield x.load(DATA, 8)); // and for reads
        yield x.iret(); // to CPL 3, which flushes nothing
      });
      expect(m.run().outcome).toBe('ok');
      expect(seen).toEqual([0, 7, FAULTED, FAULTED, 7, 7]);
      expect(cpls).toEqual([3]);
      expect(faults(m, 0)).toMatchObject(
        errorCodes.map((errorCode) => ({ vector: VECTOR.PF, errorCode, cr2: DATA, stack: 'rsp0' })),
      );
      expect(m.memory.read64(phys(m, DATA))).toBe(7);
    },
  );

  it('a user-mode store to a supervisor page held warm by stores through another supervisor page in between', () => {
    const m = Machine.create({ cpus: 1 });
    const userRsp = mapUserStack(m);
    m.map(DATA, { writable: true });
    m.map(OTHER, { writable: true });
    const seen: number[] = [];
    const user = function* (x: Assembler): Body {
      seen.push(yield x.store(DATA, 8, 3, { fixup: FAULTED }));
      seen.push(yield x.store(OTHER, 8, 3, { fixup: FAULTED }));
    };
    m.load(0, function* (x) {
      yield* pushUserFrame(x, user, userRsp);
      yield x.store(DATA, 8, 1);
      yield x.store(OTHER, 8, 1);
      yield x.store(DATA, 8, 2);
      yield x.store(OTHER, 8, 2);
      yield x.iret();
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([FAULTED, FAULTED]);
    expect([m.memory.read64(phys(m, DATA)), m.memory.read64(phys(m, OTHER))]).toEqual([2, 2]);
  });

  it('a read-only user page: CPL 3 loads are warm, a CPL 3 store faults P|W|U and a CPL 0 store (WP=1) faults P|W', () => {
    const m = Machine.create({ cpus: 1 });
    const userRsp = mapUserStack(m);
    m.map(USER_PAGE, { writable: false, user: true });
    m.memory.write64(phys(m, USER_PAGE), 0x42);
    const seen: number[] = [];
    const user = function* (x: Assembler): Body {
      seen.push(yield x.load(USER_PAGE, 8));
      seen.push(yield x.load(USER_PAGE, 8));
      seen.push(yield x.store(USER_PAGE, 8, 1, { fixup: FAULTED }));
      seen.push(yield x.load(USER_PAGE, 8));
      yield x.int(SYSCALL);
    };
    syscallGate(m, function* (x) {
      seen.push(yield x.load(USER_PAGE, 8)); // CPL 0
      seen.push(yield x.store(USER_PAGE, 8, 2, { fixup: FAULTED }));
    });
    m.load(0, function* (x) {
      yield* pushUserFrame(x, user, userRsp);
      yield x.iret();
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([0x42, 0x42, FAULTED, 0x42, 0x42, FAULTED]);
    expect(faults(m, 0).map((f) => f.errorCode)).toEqual([
      PF_ERROR.P | PF_ERROR.W | PF_ERROR.U,
      PF_ERROR.P | PF_ERROR.W,
    ]);
  });

  it('a writable user page written at CPL 0 is read and written at CPL 3 without faults', () => {
    const m = Machine.create({ cpus: 1 });
    const userRsp = mapUserStack(m);
    m.map(USER_PAGE, { writable: true, user: true });
    const seen: number[] = [];
    const user = function* (x: Assembler): Body {
      seen.push(yield x.load(USER_PAGE, 8));
      yield x.store(USER_PAGE, 8, 3);
      yield x.store(USER_PAGE, 8, 4);
      seen.push(yield x.load(USER_PAGE, 8));
    };
    m.load(0, function* (x) {
      yield* pushUserFrame(x, user, userRsp);
      yield x.store(USER_PAGE, 8, 1);
      yield x.store(USER_PAGE, 8, 2);
      yield x.iret();
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([2, 4]);
    expect(faults(m, 0)).toEqual([]);
  });

  it('with CR0.WP=0 a supervisor store to a read-only page succeeds; with WP=1 again the cached read-only entry faults', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: false });
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(DATA, 8));
      seen.push(yield x.load(DATA, 8));
      // The boot leaves regs.cr0 as a signed int32 (PG is bit 31): >>> 0 gives the register's unsigned value.
      const cr0 = m.cpu(0).regs.cr0 >>> 0;
      yield x.movToCr0((cr0 & ~CR0.WP) >>> 0); // changes WP only: flushes nothing
      yield x.store(DATA, 8, 5);
      yield x.store(DATA, 8, 6);
      seen.push(yield x.load(DATA, 8));
      yield x.movToCr0(cr0);
      seen.push(yield x.store(DATA, 8, 7, { fixup: FAULTED }));
      seen.push(yield x.load(DATA, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([0, 0, 6, FAULTED, 6]);
    expect(faults(m, 0).map((f) => f.errorCode)).toEqual([PF_ERROR.P | PF_ERROR.W]);
  });

  it('a store through a read-only alias faults while the writable mapping of the same frame is warm', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    mapAlias(m, ALIAS, DATA, false);
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.store(DATA, 8, 1);
      yield x.store(DATA, 8, 2);
      seen.push(yield x.load(ALIAS, 8));
      seen.push(yield x.store(ALIAS, 8, 3, { fixup: FAULTED }));
      yield x.store(DATA, 8, 4);
      seen.push(yield x.load(ALIAS, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([2, FAULTED, 4]);
    expect(faults(m, 0)).toMatchObject([{ errorCode: PF_ERROR.P | PF_ERROR.W, cr2: ALIAS }]);
  });
});

describe('accessed and dirty bits', () => {
  it('a store to a page so far only read (cached with D=0) walks again and sets D in the PTE in memory', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true, accessed: false, dirty: false });
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.load(DATA + 8, 8);
      yield x.store(DATA, 8, 1);
      yield x.store(DATA, 8, 2);
    });
    const ad = () => pteLow(m, DATA) & (PTE_LO.A | PTE_LO.D);
    const steps: [StepEvent, number, boolean | undefined][] = [];
    for (let i = 0; i < 4; i++) {
      const event = m.step(0)!;
      steps.push([event, ad(), cachedEntry(m, 0, DATA)?.dirty]);
    }
    expect(steps.map(([e, bits, dirty]) => [e.op, e.tlb, bits, dirty])).toEqual([
      ['load', 'miss', PTE_LO.A, false],
      ['load', 'hit', PTE_LO.A, false],
      ['store', 'hit', PTE_LO.A | PTE_LO.D, true], // the cached entry had D=0: a walk set D
      ['store', 'hit', PTE_LO.A | PTE_LO.D, true],
    ]);
    expect(m.memory.read64(phys(m, DATA))).toBe(2);
  });

  it('the D-setting walk shows in the footprint of the store after warm loads, and only there', () => {
    const m = Machine.create({ cpus: 1, footprint: true });
    m.map(DATA, { writable: true, accessed: false, dirty: false });
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.load(DATA, 8);
      yield x.store(DATA, 8, 1);
      yield x.store(DATA, 8, 2);
    });
    const pteWrites: number[][] = [];
    for (let i = 0; i < 4; i++) {
      m.step(0);
      pteWrites.push([...m.footprint!.pteWrites]);
    }
    const pte = m.pteAddress(DATA);
    expect(pteWrites[0]).toContain(pte); // A
    expect(pteWrites.slice(1)).toEqual([[], [pte], []]);
  });

  it('once D is cached, clearing D in the PTE is not undone by further stores until INVLPG; A likewise for loads', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    m.map(OTHER, { writable: true });
    const observed: Record<string, number> = {};
    const d = (va: number) => pteLow(m, va) & PTE_LO.D;
    const a = (va: number) => pteLow(m, va) & PTE_LO.A;
    m.load(0, function* (x) {
      yield x.store(DATA, 8, 1);
      yield x.store(DATA, 8, 2);
      yield* editPte(x, m, DATA, clearBits(PTE_LO.D));
      yield x.store(DATA, 8, 3);
      yield x.store(DATA, 8, 4);
      observed.dirtyWhileCached = d(DATA);
      yield x.invlpg(DATA);
      yield x.store(DATA, 8, 5);
      observed.dirtyAfterInvlpg = d(DATA);

      yield x.load(OTHER, 8);
      yield x.load(OTHER, 8);
      yield* editPte(x, m, OTHER, clearBits(PTE_LO.A));
      yield x.load(OTHER, 8);
      yield x.load(OTHER, 8);
      observed.accessedWhileCached = a(OTHER);
      yield x.invlpg(OTHER);
      yield x.load(OTHER, 8);
      observed.accessedAfterInvlpg = a(OTHER);
    });
    expect(m.run().outcome).toBe('ok');
    expect(observed).toEqual({
      dirtyWhileCached: 0,
      dirtyAfterInvlpg: PTE_LO.D,
      accessedWhileCached: 0,
      accessedAfterInvlpg: PTE_LO.A,
    });
  });
});

describe('access sizes and offsets near the end of a page', () => {
  /** Two adjacent virtual pages on frames that are not adjacent (a split access must use each page's frame). */
  function splitMachine(cpus = 2) {
    const m = Machine.create({ cpus });
    m.map(SPLIT, { writable: true });
    m.map(OTHER, { writable: true }); // a frame in between
    m.map(SPLIT + PAGE_SIZE, { writable: true });
    const lo = phys(m, SPLIT);
    const hi = phys(m, SPLIT + PAGE_SIZE);
    expect(hi).not.toBe(lo + PAGE_SIZE);
    return { m, lo, hi };
  }

  const OFFSETS = [0xff0, 0xff8, 0xff9, 0xffa, 0xffc, 0xffd, 0xffe, 0xfff];
  const SIZES = [1, 2, 4, 8] as const;
  const WINDOW = 0xfe0; // the shadow covers page offsets [WINDOW, 0x1020): the end of SPLIT and the next page

  /**
   * The little-endian value of `size` shadow bytes at page offset `offset`, or undefined when it is 2^53 or more
   * (loads are exact only below 2^53; such a range is checked as two 4-byte halves instead).
   */
  function readShadow(shadow: Uint8Array, offset: number, size: number): number | undefined {
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = v * 256n + BigInt(shadow[offset - WINDOW + i]!);
    return v < 2n ** 53n ? Number(v) : undefined;
  }

  /** Program fragment: loads [offset, offset + size) of SPLIT and reports any difference from the shadow. */
  function* check(x: Assembler, shadow: Uint8Array, offset: number, size: number, out: string[], who: string): Body {
    const expected = readShadow(shadow, offset, size);
    if (expected === undefined) {
      yield* check(x, shadow, offset, 4, out, who);
      yield* check(x, shadow, offset + 4, 4, out, who);
      return;
    }
    const v = yield x.load(SPLIT + offset, size);
    if (v !== expected) out.push(`${who}: ${size} bytes at +0x${offset.toString(16)} read ${v}, expected ${expected}`);
  }

  it('stores of 1, 2, 4 and 8 bytes at offsets up to 0xfff, split ones included, read back exactly on both CPUs', () => {
    const { m, lo, hi } = splitMachine();
    const shadow = new Uint8Array(0x40);
    const cases: { offset: number; size: number; value: number }[] = [];
    let byte = 1;
    for (const offset of OFFSETS) {
      for (const size of SIZES) {
        // Distinct non-zero bytes; an 8-byte value keeps below 2^53 (byte 7 zero, byte 6 below 0x20).
        let value = 0;
        for (let i = size - 1; i >= 0; i--) value = value * 256 + (size === 8 && i === 7 ? 0 : ((byte + i) % 0x1f) + 1);
        byte += size;
        cases.push({ offset, size, value });
      }
    }
    const mismatches: string[] = [];
    m.load(0, function* (x) {
      for (const { offset, size, value } of cases) {
        yield x.store(SPLIT + offset, size, value);
        for (let i = 0; i < size; i++) shadow[offset - WINDOW + i] = Math.floor(value / 256 ** i) % 256;
        const back = yield x.load(SPLIT + offset, size);
        if (back !== value)
          mismatches.push(`cpu0: ${size} bytes at +0x${offset.toString(16)} read ${back}, stored ${value}`);
        // Warm loads of the last quadword of the first page and the first of the second see every store so far.
        yield* check(x, shadow, 0xff8, 8, mismatches, 'cpu0');
        yield* check(x, shadow, 0x1000, 8, mismatches, 'cpu0');
      }
    });
    m.load(1, function* (x) {
      for (let offset = WINDOW + 0x10; offset < 0x1010; offset++) {
        for (const size of SIZES) yield* check(x, shadow, offset, size, mismatches, 'cpu1');
      }
    });
    // CPU0 first, to the end; then CPU1.
    m.run({ schedule: '0*2000' });
    expect(m.cpu(0).state).toBe('halted');
    expect(m.run().outcome).toBe('ok');
    expect(mismatches).toEqual([]);
    // The bytes are where the page tables say: the end of the first frame, the start of the second.
    const physical = [
      ...m.memory.frameBytes(lo / PAGE_SIZE).subarray(WINDOW, PAGE_SIZE),
      ...m.memory.frameBytes(hi / PAGE_SIZE).subarray(0, 0x20),
    ];
    expect(physical).toEqual([...shadow]);
  });

  it('split loads and stores use each page’s own frame, with the first page warm', () => {
    const { m, lo, hi } = splitMachine(1);
    m.memory.write32(lo + 0xff8, 0x04030201);
    m.memory.write32(lo + 0xffc, 0x08070605);
    m.memory.write32(hi, 0x001e0a09);
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(SPLIT + 0xff8, 4));
      seen.push(yield x.load(SPLIT + 0xffc, 4)); // warm, within the page
      seen.push(yield x.load(SPLIT + 0xffe, 4)); // split
      seen.push(yield x.load(SPLIT + 0xffc, 8)); // split
      yield x.store(SPLIT + 0xfff, 2, 0x1b1c); // split
      seen.push(yield x.load(SPLIT + 0xffc, 4));
      seen.push(yield x.load(SPLIT + PAGE_SIZE, 4));
      seen.push(yield x.load(SPLIT + 0xffc, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen.map((v) => v.toString(16))).toEqual([
      '4030201',
      '8070605',
      'a090807',
      '1e0a0908070605',
      '1c070605',
      '1e0a1b',
      '1e0a1b1c070605',
    ]);
    expect([m.memory.read8(lo + 0xfff), m.memory.read8(hi)]).toEqual([0x1c, 0x1b]);
  });

  it('a split store whose second page is not present faults with CR2 there and writes nothing, the first page warm', () => {
    const { m, lo } = splitMachine(1);
    m.boot!.pageTables.clearPresent(SPLIT + PAGE_SIZE);
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.store(SPLIT + 0xff8, 8, 0x01020304050607);
      yield x.store(SPLIT + 0xff8, 8, 0x11121314151617); // warm write page
      seen.push(yield x.store(SPLIT + 0xffc, 8, 0x0a0b0c0d0e0f10, { fixup: FAULTED }));
      seen.push(yield x.load(SPLIT + 0xff8, 8));
      seen.push(yield x.load(SPLIT + 0xfff, 2, { fixup: FAULTED }));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([FAULTED, 0x11121314151617, FAULTED]);
    expect(faults(m, 0)).toMatchObject([
      { op: 'store', errorCode: PF_ERROR.W, cr2: SPLIT + PAGE_SIZE },
      { op: 'load', errorCode: 0, cr2: SPLIT + PAGE_SIZE },
    ]);
    expect(m.memory.read64(lo + 0xff8)).toBe(0x11121314151617);
  });
});

describe('push and pop through the warm stack page', () => {
  it('pushes and pops across a stack page boundary give the values back in LIFO order', () => {
    const m = Machine.create({ cpus: 1 });
    const top = m.boot!.taskStacks[0]!.top;
    const popped: number[] = [];
    const boundary = top - PAGE_SIZE;
    m.load(0, function* (x) {
      for (let i = 1; i <= 512; i++) yield x.push(i); // exactly fills the top page
      yield x.push(1000); // first slot of the next page down
      popped.push(yield x.pop());
      popped.push(yield x.pop()); // back in the top page
      yield x.push(2000);
      yield x.push(3000);
      yield x.push(4000);
      for (let i = 0; i < 514; i++) popped.push(yield x.pop());
    });
    expect(m.run().outcome).toBe('ok');
    const expected = [1000, 512, 4000, 3000, 2000];
    for (let i = 511; i >= 1; i--) expected.push(i);
    expect(popped).toEqual(expected);
    expect(m.cpu(0).regs.rsp).toBe(top);
    expect(m.memory.read64(phys(m, top - 8))).toBe(1);
    expect(m.memory.read64(phys(m, boundary - 8))).toBe(3000);
    expect(m.memory.read64(phys(m, boundary - 16))).toBe(4000);
    const pushes = events(m, 0, 'push');
    expect(pushes.map((e) => e.va)).toContain(boundary - 8);
    expect(pushes.find((e) => e.va === boundary - 8)!.pa).toBe(phys(m, boundary - 8));
  });

  it('a push faulting into the next stack page after the top page was warm leaves RSP unchanged and re-executes once', () => {
    const m = Machine.create({ cpus: 1 });
    const top = m.boot!.taskStacks[0]!.top;
    const boundary = top - PAGE_SIZE;
    m.boot!.pageTables.clearPresent(boundary - PAGE_SIZE);
    const seen: { ctx: HandlerContext; savedRsp: number }[] = [];
    mapBackOnFault(m, seen);
    const rsps: number[] = [];
    const popped: number[] = [];
    m.load(0, function* (x) {
      for (let i = 1; i <= 512; i++) yield x.push(i);
      rsps.push(m.cpu(0).regs.rsp);
      yield x.push(0xabc);
      rsps.push(m.cpu(0).regs.rsp);
      popped.push(yield x.pop());
      popped.push(yield x.pop());
    });
    expect(m.run({ maxSteps: 2000 }).outcome).toBe('ok');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.ctx).toMatchObject({ vector: VECTOR.PF, errorCode: PF_ERROR.W, cr2: boundary - 8 });
    expect(seen[0]!.savedRsp).toBe(boundary);
    expect(rsps).toEqual([boundary, boundary - 8]);
    expect(popped).toEqual([0xabc, 512]);
    const pushes = events(m, 0, 'push').filter((e) => e.va === boundary - 8);
    expect(pushes.map((e) => e.exceptions?.[0]?.vector)).toEqual([VECTOR.PF, undefined]);
  });

  it('a push into the warm top page faults once its PTE went read-only and this CPU flushed it; RSP stays', () => {
    const m = Machine.create({ cpus: 1 });
    const top = m.boot!.taskStacks[0]!.top;
    const errorCodes: number[] = [];
    const rsps: number[] = [];
    useIstStack(m, 0, 3);
    m.cpu(0).setGate(VECTOR.PF, {
      handler: function* (x, ctx: HandlerContext) {
        errorCodes.push(ctx.errorCode);
        rsps.push(savedAddress(m, ctx.frameRsp + 32));
        yield* editPte(x, m, top - PAGE_SIZE, setBits(PTE_LO.RW));
      },
      ist: 3,
      type: 'interrupt',
    });
    const popped: number[] = [];
    m.load(0, function* (x) {
      yield x.push(1);
      yield x.push(2);
      yield* editPte(x, m, top - PAGE_SIZE, clearBits(PTE_LO.RW));
      yield x.push(3); // stale writable entry: allowed
      yield x.invlpg(top - PAGE_SIZE);
      yield x.push(4); // #PF, then re-executed
      for (let i = 0; i < 4; i++) popped.push(yield x.pop());
    });
    expect(m.run({ maxSteps: 100 }).outcome).toBe('ok');
    expect(errorCodes).toEqual([PF_ERROR.P | PF_ERROR.W]);
    expect(rsps).toEqual([top - 24]);
    expect(popped).toEqual([4, 3, 2, 1]);
    expect(m.cpu(0).regs.rsp).toBe(top);
  });

  it('a pop faulting after its page was flushed keeps its place while the handler pushes and pops on its own stack', () => {
    const m = Machine.create({ cpus: 1 });
    const top = m.boot!.taskStacks[0]!.top;
    const seen: { ctx: HandlerContext; savedRsp: number }[] = [];
    const inHandler: number[] = [];
    mapBackOnFault(m, seen, function* (x) {
      yield x.push(0x5151);
      yield x.push(0x5252);
      inHandler.push(yield x.pop());
      inHandler.push(yield x.pop());
    });
    const popped: number[] = [];
    m.load(0, function* (x) {
      yield x.push(0x77);
      yield x.push(0x88);
      popped.push(yield x.pop()); // warm read page
      yield* editPte(x, m, top - PAGE_SIZE, clearBits(PTE_LO.P));
      yield x.push(0x99); // stale entry: still writes the page
      popped.push(yield x.pop());
      yield x.invlpg(top - PAGE_SIZE);
      popped.push(yield x.pop()); // #PF (read, not present), then re-executed
    });
    expect(m.run({ maxSteps: 100 }).outcome).toBe('ok');
    expect(popped).toEqual([0x88, 0x99, 0x77]);
    expect(inHandler).toEqual([0x5252, 0x5151]);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.ctx).toMatchObject({ errorCode: 0, cr2: top - 8 });
    expect(seen[0]!.savedRsp).toBe(top - 8);
    expect(m.cpu(0).regs.rsp).toBe(top);
  });
});

describe('spinning CPUs are woken by stores through a warm write page', () => {
  function spinMachine(flagStore: (x: Assembler) => Instruction) {
    const m = Machine.create({ cpus: 2 });
    m.map(FLAGS, { writable: true });
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.store(FLAGS, 8, 1);
      yield x.store(FLAGS, 8, 2);
      yield x.store(FLAGS, 8, 3); // CPU0's write page is warm before CPU1 spins
      yield x.pause();
      yield flagStore(x);
    });
    m.load(1, function* (x) {
      seen.push(yield x.spinUntil(FLAGS + 8, 8, (v) => v !== 0));
      seen.push(yield x.load(FLAGS, 8));
    });
    return { m, seen };
  }

  it.each([
    ['an 8-byte store', (x: Assembler) => x.store(FLAGS + 8, 8, 1), 1],
    ['a 1-byte store to the last byte of the watched range', (x: Assembler) => x.store(FLAGS + 15, 1, 1), 2 ** 56],
    ['xchg', (x: Assembler) => x.xchg(FLAGS + 8, 8, 5), 5],
  ])('%s by CPU0 wakes CPU1 (explicit order)', (_, flagStore, value) => {
    const { m, seen } = spinMachine(flagStore);
    m.run({ schedule: '0,0,0,1' });
    expect(m.cpu(1).state).toBe('blocked');
    m.run({ schedule: '0,0' });
    expect(m.cpu(1).state).toBe('running');
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([value, 3]);
  });

  it('round-robin: the run ends ok, not in deadlock', () => {
    const { m, seen } = spinMachine((x) => x.store(FLAGS + 8, 8, 1));
    const result = m.run();
    expect(result.outcome).toBe('ok');
    expect(seen).toEqual([1, 3]);
  });

  it('a spin on a page CPU1 itself has warm sees the store once woken', () => {
    const m = Machine.create({ cpus: 2 });
    m.map(FLAGS, { writable: true });
    const seen: number[] = [];
    m.load(0, function* (x) {
      for (let i = 0; i < 4; i++) yield x.store(FLAGS + 16, 8, i);
      yield x.store(FLAGS + 8, 8, 7);
    });
    m.load(1, function* (x) {
      yield x.load(FLAGS + 8, 8);
      yield x.load(FLAGS + 8, 8);
      seen.push(yield x.spinUntil(FLAGS + 8, 8, (v) => v === 7));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([7]);
  });
});

describe('footprints record every physical access', () => {
  function footprintProgram(m: Machine) {
    m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.store(DATA, 8, 1);
      yield x.store(DATA + 8, 4, 2);
      yield x.store(DATA + 8, 4, 3);
      yield x.load(DATA, 8);
      yield x.load(DATA, 8);
      yield x.load(DATA + 8, 2);
      yield x.push(5);
      yield x.push(6);
      yield x.pop();
      yield x.pop();
    });
  }

  function recordSteps(m: Machine, n: number): { event: StepEvent; fp: FootprintRecord }[] {
    const out: { event: StepEvent; fp: FootprintRecord }[] = [];
    for (let i = 0; i < n; i++) {
      const event = m.step(0)!;
      out.push({ event, fp: m.footprint!.copy() });
    }
    return out;
  }

  function expectEveryAccess(m: Machine, steps: { event: StepEvent; fp: FootprintRecord }[]) {
    const top = m.boot!.taskStacks[0]!.top;
    const data = phys(m, DATA);
    expect(steps.map(({ fp }) => ({ reads: fp.reads, writes: fp.writes }))).toEqual([
      { reads: [], writes: [data, 8] },
      { reads: [], writes: [data + 8, 4] },
      { reads: [], writes: [data + 8, 4] },
      { reads: [data, 8], writes: [] },
      { reads: [data, 8], writes: [] },
      { reads: [data + 8, 2], writes: [] },
      { reads: [], writes: [phys(m, top - 8), 8] },
      { reads: [], writes: [phys(m, top - 16), 8] },
      { reads: [phys(m, top - 16), 8], writes: [] },
      { reads: [phys(m, top - 8), 8], writes: [] },
    ]);
    expect(steps.map(({ event }) => event.tlb)).toEqual([
      'miss',
      'hit',
      'hit',
      'hit',
      'hit',
      'hit',
      'miss',
      'hit',
      'hit',
      'hit',
    ]);
  }

  it('with footprint: true, repeated accesses to one page each record their read or write', () => {
    const m = Machine.create({ cpus: 1, footprint: true });
    footprintProgram(m);
    expectEveryAccess(m, recordSteps(m, 10));
  });

  it('a locked exchange through a warm write page records its read and, when it writes, its write', () => {
    const m = Machine.create({ cpus: 1, footprint: true });
    m.map(DATA, { writable: true });
    const old: number[] = [];
    m.load(0, function* (x) {
      yield x.store(DATA, 8, 1); // a miss; the write page is warm after it
      old.push(yield x.xchg(DATA, 8, 2));
      old.push(yield x.cmpxchg(DATA, 8, 9, 3)); // fails: reads only
      old.push(yield x.cmpxchg(DATA + 8, 4, 0, 4));
    });
    const steps = recordSteps(m, 4);
    const data = phys(m, DATA);
    expect(steps.map(({ fp }) => ({ reads: fp.reads, writes: fp.writes }))).toEqual([
      { reads: [], writes: [data, 8] },
      { reads: [data, 8], writes: [data, 8] },
      { reads: [data, 8], writes: [] },
      { reads: [data + 8, 4], writes: [data + 8, 4] },
    ]);
    expect(steps.map(({ event }) => event.tlb)).toEqual(['miss', 'hit', 'hit', 'hit']);
    expect(m.run().outcome).toBe('ok'); // the program takes the last result
    expect(old).toEqual([1, 2, 0]);
    expect(m.memory.read64(data)).toBe(2);
    expect(m.memory.read(data + 8, 4)).toBe(4);
  });

  it('a clone instantiated from an image with footprint: true records them too', () => {
    const base = Machine.create({ cpus: 1 });
    footprintProgram(base);
    const clone = MachineImage.capture(base).instantiate({ footprint: true });
    expectEveryAccess(clone, recordSteps(clone, 10));
  });
});

describe('TLB counters and the trace', () => {
  it('N loads of one page: one miss then N-1 hits, each at its own physical address', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const offsets = [0, 8, 0x10, 0xff8, 0x800, 0, 0x7f8, 0x100, 0xfff, 0x3];
    m.load(0, function* (x) {
      for (const offset of offsets) yield x.load(DATA + offset, offset % 8 === 0 ? 8 : 1);
    });
    expect(counters(m, 0)).toEqual({ hits: 0, misses: 0 });
    expect(m.run().outcome).toBe('ok');
    expect(counters(m, 0)).toEqual({ hits: offsets.length - 1, misses: 1 });
    const loads = events(m, 0, 'load');
    expect(loads.map((e) => e.tlb)).toEqual(['miss', ...offsets.slice(1).map(() => 'hit')]);
    expect(loads.map((e) => e.pa)).toEqual(offsets.map((o) => phys(m, DATA) + o));
  });

  it('N stores to one page: one miss then hits, in the counters and the trace, each at its own physical address', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const offsets = [0x18, 0, 8, 0xff8, 0x800, 0x18, 0xfff, 0x4];
    m.load(0, function* (x) {
      for (const [i, offset] of offsets.entries()) yield x.store(DATA + offset, offset % 8 === 0 ? 8 : 1, i + 1);
    });
    expect(m.run().outcome).toBe('ok');
    expect(counters(m, 0)).toEqual({ hits: offsets.length - 1, misses: 1 });
    const stores = events(m, 0, 'store');
    expect(stores.map((e) => e.tlb)).toEqual(['miss', ...offsets.slice(1).map(() => 'hit')]);
    expect(stores.map((e) => e.pa)).toEqual(offsets.map((o) => phys(m, DATA) + o));
    expect(stores.map((e) => e.value)).toEqual(offsets.map((_, i) => i + 1));
  });

  it('pushes and pops: one miss for the stack page, then hits, each at its own physical address', () => {
    const m = Machine.create({ cpus: 1 });
    const top = m.boot!.taskStacks[0]!.top;
    m.load(0, function* (x) {
      for (let i = 0; i < 4; i++) yield x.push(i);
      for (let i = 0; i < 4; i++) yield x.pop();
    });
    expect(m.run().outcome).toBe('ok');
    const stack = m.trace.filter((e) => e.op === 'push' || e.op === 'pop');
    expect(stack.map((e) => [e.op, e.tlb, e.pa, e.value])).toEqual([
      ['push', 'miss', phys(m, top - 8), 0],
      ['push', 'hit', phys(m, top - 16), 1],
      ['push', 'hit', phys(m, top - 24), 2],
      ['push', 'hit', phys(m, top - 32), 3],
      ['pop', 'hit', phys(m, top - 32), 3],
      ['pop', 'hit', phys(m, top - 24), 2],
      ['pop', 'hit', phys(m, top - 16), 1],
      ['pop', 'hit', phys(m, top - 8), 0],
    ]);
    expect(counters(m, 0)).toEqual({ hits: 7, misses: 1 });
  });

  it('loads and stores mixed on one page: one miss; the D-setting store counts as a hit', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.store(DATA, 8, 1);
      yield x.store(DATA, 8, 2);
      yield x.load(DATA, 8);
      yield x.load(DATA, 8);
      yield x.store(DATA + 8, 8, 3);
      yield x.store(DATA + 8, 8, 4);
    });
    expect(m.run().outcome).toBe('ok');
    expect(counters(m, 0)).toEqual({ hits: 6, misses: 1 });
  });

  it('loads through the direct map (a 2 MiB entry): one miss then hits', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const direct = m.directMap(phys(m, DATA));
    m.load(0, function* (x) {
      for (let i = 0; i < 5; i++) yield x.load(direct + 8 * i, 8);
    });
    expect(m.run().outcome).toBe('ok');
    expect(counters(m, 0)).toEqual({ hits: 4, misses: 1 });
  });

  it('a page mapped past the end of installed memory reads all ones and drops writes, however often it is accessed', () => {
    const m = Machine.create({ cpus: 1 });
    const beyond = m.memory.size + 0x5000;
    m.boot!.pageTables.map4k(DATA, beyond, { writable: true, global: true });
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(DATA, 4));
      seen.push(yield x.load(DATA, 4));
      yield x.store(DATA, 4, 0x1234);
      yield x.store(DATA, 4, 0x1234);
      yield x.store(DATA + 4, 2, 0x55);
      seen.push(yield x.load(DATA, 4));
      seen.push(yield x.load(DATA + 4, 2));
      seen.push(yield x.load(DATA + 7, 1));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([0xffffffff, 0xffffffff, 0xffffffff, 0xffff, 0xff]);
    expect(events(m, 0, 'load').map((e) => e.pa)).toEqual([beyond, beyond, beyond, beyond + 4, beyond + 7]);
    expect(counters(m, 0)).toEqual({ hits: 7, misses: 1 });
  });
});

describe('pages far apart whose page numbers agree in their low bits (one slot of a direct-mapped cache)', () => {
  // 16, 32 and 64 pages apart from A: a direct-mapped page cache of up to 16, 32 or 64 entries puts them in A's slot.
  const A = toVirtual(0xffff_c900_0200_0000n);
  const SAME_SLOT = [A + 16 * PAGE_SIZE, A + 32 * PAGE_SIZE, A + 64 * PAGE_SIZE];

  it.each(SAME_SLOT.map((b) => [(b - A) / PAGE_SIZE, b]))(
    'pages %d apart: alternating stores and loads, both pages in the TLB, each reach their own frame',
    (_, b) => {
      const m = Machine.create({ cpus: 1 });
      m.map(A, { writable: true });
      m.map(b, { writable: true });
      const seen: number[] = [];
      m.load(0, function* (x) {
        yield x.store(A, 8, 1); // TLB miss: A cached with D=1
        seen.push(yield x.load(b, 8)); // TLB miss: b cached
        yield x.store(A, 8, 2); // TLB hit: A warm for writes
        seen.push(yield x.load(b, 8)); // TLB hit: b warm for reads, perhaps in A's place
        yield x.store(A, 8, 3); // must reach A's frame, not b's
        yield x.store(A + 8, 8, 4);
        seen.push(yield x.load(A, 8));
        seen.push(yield x.load(b, 8));
        yield x.store(b, 8, 5); // b's entry had D=0: a walk
        yield x.store(b, 8, 6); // b warm for writes
        seen.push(yield x.load(A, 8)); // A warm for reads, perhaps in b's place
        yield x.store(b, 8, 7); // must reach b's frame
        seen.push(yield x.load(b, 8));
        yield x.store(A + 8, 8, 8);
        seen.push(yield x.load(b + 8, 8));
      });
      expect(m.run().outcome).toBe('ok');
      expect(seen).toEqual([0, 0, 3, 0, 3, 7, 0]);
      expect([m.memory.read64(phys(m, A)), m.memory.read64(phys(m, A) + 8)]).toEqual([3, 8]);
      expect([m.memory.read64(phys(m, b)), m.memory.read64(phys(m, b) + 8)]).toEqual([7, 0]);
      const a0 = phys(m, A);
      const b0 = phys(m, b);
      expect(events(m, 0, 'store').map((e) => e.pa)).toEqual([a0, a0, a0, a0 + 8, b0, b0, b0, a0 + 8]);
    },
  );

  it('a read-only page in the slot of a warm writable page: its store faults, and stores to the other stay there', () => {
    const m = Machine.create({ cpus: 1 });
    const b = SAME_SLOT[1]!;
    m.map(A, { writable: true });
    m.map(b, { writable: false });
    m.memory.write64(phys(m, b), 0x77);
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.store(A, 8, 1);
      yield x.store(A, 8, 2);
      seen.push(yield x.load(b, 8));
      seen.push(yield x.load(b, 8));
      seen.push(yield x.store(b, 8, 9, { fixup: FAULTED }));
      yield x.store(A, 8, 3);
      seen.push(yield x.load(b, 8));
      seen.push(yield x.store(b, 8, 10, { fixup: FAULTED }));
      seen.push(yield x.load(A, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([0x77, 0x77, FAULTED, 0x77, FAULTED, 3]);
    expect(faults(m, 0).map((f) => [f.errorCode, f.cr2])).toEqual([
      [PF_ERROR.P | PF_ERROR.W, b],
      [PF_ERROR.P | PF_ERROR.W, b],
    ]);
  });

  it('a read-only alias of a warm writable page, in the same slot: the alias faults on stores and reads the writes', () => {
    const m = Machine.create({ cpus: 1 });
    const alias = SAME_SLOT[2]!;
    m.map(A, { writable: true });
    mapAlias(m, alias, A, false);
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.store(A, 8, 1);
      yield x.store(A, 8, 2);
      seen.push(yield x.load(alias, 8));
      seen.push(yield x.store(alias, 8, 3, { fixup: FAULTED }));
      yield x.store(A, 8, 4);
      seen.push(yield x.load(alias, 8));
      seen.push(yield x.store(alias, 8, 5, { fixup: FAULTED }));
      seen.push(yield x.load(A, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([2, FAULTED, 4, FAULTED, 4]);
  });

  it('a supervisor page in the slot of a warm user page: CPL 3 reaches the user page and faults on the other', () => {
    const m = Machine.create({ cpus: 1 });
    const userRsp = mapUserStack(m);
    const b = SAME_SLOT[1]!;
    m.map(A, { writable: true, user: true });
    m.map(b, { writable: true });
    const seen: number[] = [];
    const user = function* (x: Assembler): Body {
      seen.push(yield x.load(b, 8, { fixup: FAULTED }));
      seen.push(yield x.load(A, 8));
      seen.push(yield x.load(A, 8));
      seen.push(yield x.store(b, 8, 3, { fixup: FAULTED }));
      yield x.store(A, 8, 4);
      yield x.store(A, 8, 5);
      seen.push(yield x.load(b, 8, { fixup: FAULTED }));
      seen.push(yield x.load(A, 8));
      yield x.int(SYSCALL);
    };
    syscallGate(m, function* (x) {
      seen.push(yield x.load(b, 8)); // CPL 0
    });
    m.load(0, function* (x) {
      yield* pushUserFrame(x, user, userRsp);
      yield x.store(A, 8, 1);
      yield x.store(b, 8, 2);
      seen.push(yield x.load(A, 8));
      seen.push(yield x.load(b, 8)); // supervisor, b now in the slot
      yield x.iret();
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([1, 2, FAULTED, 1, 1, FAULTED, FAULTED, 5, 2]);
    expect(faults(m, 0).map((f) => f.errorCode)).toEqual([
      PF_ERROR.P | PF_ERROR.U,
      PF_ERROR.P | PF_ERROR.W | PF_ERROR.U,
      PF_ERROR.P | PF_ERROR.U,
    ]);
  });

  it('after one of two same-slot pages is retargeted and flushed, the other still reads its own frame', () => {
    const m = Machine.create({ cpus: 1 });
    const b = SAME_SLOT[0]!;
    m.map(A, { writable: true });
    m.map(b, { writable: true });
    const fresh = freshFrame(m);
    m.memory.write64(phys(m, A), 1);
    m.memory.write64(phys(m, b), 2);
    m.memory.write64(fresh, 3);
    const seen: number[] = [];
    m.load(0, function* (x) {
      seen.push(yield x.load(A, 8));
      seen.push(yield x.load(b, 8));
      seen.push(yield x.load(A, 8));
      yield* editPte(x, m, A, pointAt(fresh));
      seen.push(yield x.load(A, 8)); // stale
      seen.push(yield x.load(b, 8));
      yield x.invlpg(A);
      seen.push(yield x.load(b, 8));
      seen.push(yield x.load(A, 8));
      seen.push(yield x.load(b, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([1, 2, 1, 1, 2, 2, 3, 2]);
  });
});

describe('non-canonical addresses right after warm accesses', () => {
  const LOWER_HOLE = toVirtual(0x0000_8000_0000_0010n); // bit 47 set, bits 63:48 clear: non-canonical

  function recordFaults(m: Machine, seen: { vector: number; errorCode: number }[]) {
    useIstStack(m, 0, 3);
    for (const vector of [VECTOR.SS, VECTOR.GP, VECTOR.PF]) {
      m.cpu(0).setGate(vector, {
        handler: function* (x, ctx: HandlerContext) {
          seen.push({ vector: ctx.vector, errorCode: ctx.errorCode });
          if (ctx.hasFixup) yield x.iret({ fixup: true });
          yield x.die('oops', `vector ${ctx.vector}`);
        },
        ist: 3,
        type: 'interrupt',
      });
    }
  }

  it('a load and a store at a non-canonical address raise #GP(0)', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const seenFaults: { vector: number; errorCode: number }[] = [];
    recordFaults(m, seenFaults);
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.store(DATA + 0x10, 8, 1);
      yield x.store(DATA + 0x10, 8, 1);
      seen.push(yield x.load(DATA + 0x10, 8));
      seen.push(yield x.load(DATA + 0x10, 8));
      seen.push(yield x.load(LOWER_HOLE, 8, { fixup: FAULTED }));
      seen.push(yield x.store(LOWER_HOLE, 8, 2, { fixup: FAULTED }));
      seen.push(yield x.load(DATA + 0x10, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([1, 1, FAULTED, FAULTED, 1]);
    expect(seenFaults).toEqual([
      { vector: VECTOR.GP, errorCode: 0 },
      { vector: VECTOR.GP, errorCode: 0 },
    ]);
  });

  it.each(['push', 'pop'] as const)('a %s with a non-canonical RSP raises #SS(0), after warm stack accesses', (op) => {
    const m = Machine.create({ cpus: 1 });
    const seenFaults: { vector: number; errorCode: number }[] = [];
    recordFaults(m, seenFaults);
    m.load(0, function* (x) {
      yield x.push(1);
      yield x.push(2);
      yield x.pop();
      yield x.movToRsp(LOWER_HOLE); // touches no memory: the next stack access finds out
      if (op === 'push') yield x.push(3);
      else yield x.pop();
    });
    expect(m.run({ maxSteps: 50 }).outcome).toBe('oops');
    expect(seenFaults).toEqual([{ vector: VECTOR.SS, errorCode: 0 }]);
    expect(m.cpu(0).lastException).toMatchObject({ vector: VECTOR.SS, errorCode: 0 });
  });
});

describe('machine images: copy-on-write with warm pages on every side', () => {
  it('writes after the capture reach neither the clones nor the original, whichever machine steps when', () => {
    const base = Machine.create({ cpus: 2 });
    base.map(DATA, { writable: true });
    base.map(OTHER, { writable: true }); // never written before the capture: all zeros, no frame
    base.map(FLAGS, { writable: true });
    base.memory.write64(phys(base, DATA), 1);
    base.fillTlb(0, DATA); // the image's TLB holds DATA (read-filled, D=0)
    const seen = new Map<Assembler, number[]>();
    const worker: Program = function* (x) {
      const log: number[] = [];
      seen.set(x, log);
      const mine = yield x.load(FLAGS, 8); // each machine's own value, written before it runs
      log.push(yield x.load(DATA, 8));
      log.push(yield x.load(DATA, 8));
      log.push(yield x.load(OTHER, 8));
      yield x.store(DATA, 8, mine);
      yield x.store(OTHER, 8, mine + 1);
      yield x.pause();
      yield x.store(DATA, 8, mine + 2);
      log.push(yield x.load(DATA, 8));
      log.push(yield x.load(OTHER, 8));
      yield x.pause();
      log.push(yield x.load(DATA, 8));
      log.push(yield x.load(OTHER, 8));
    };
    base.load(0, worker);
    const image = MachineImage.capture(base);
    const flags = phys(base, FLAGS);

    base.memory.write64(flags, 10);
    const a = image.instantiate();
    a.memory.write64(flags, 20);
    const b = image.instantiate();
    b.memory.write64(flags, 30);
    // Interleave the three machines one step at a time.
    for (let i = 0; i < 14; i++) {
      for (const m of [base, a, b]) if (m.cpu(0).state === 'running') m.step(0);
    }
    for (const m of [base, a, b]) expect(m.outcome).toBe('ok');
    const expected = (mine: number) => [1, 1, 0, mine + 2, mine + 1, mine + 2, mine + 1];
    expect(seen.get(base.cpu(0).asm)).toEqual(expected(10));
    expect(seen.get(a.cpu(0).asm)).toEqual(expected(20));
    expect(seen.get(b.cpu(0).asm)).toEqual(expected(30));
    const untouched = image.instantiate();
    expect(untouched.memory.read64(phys(untouched, DATA))).toBe(1);
    expect(untouched.memory.read64(phys(untouched, OTHER))).toBe(0);
    expect(untouched.memory.read64(flags)).toBe(0);
  });

  it('a clone keeps the stale translation its TLB copied from the image until INVLPG', () => {
    const base = Machine.create({ cpus: 1 });
    base.map(DATA, { writable: true });
    const newFrame = freshFrame(base);
    base.memory.write64(phys(base, DATA), 1);
    base.memory.write64(newFrame, 2);
    base.fillTlb(0, DATA);
    base.memory.write32(base.pteAddress(DATA), pointAt(newFrame)(pteLow(base, DATA)) >>> 0);
    const seen = new Map<Assembler, number[]>();
    base.load(0, function* (x) {
      const log: number[] = [];
      seen.set(x, log);
      log.push(yield x.load(DATA, 8));
      log.push(yield x.load(DATA, 8));
      yield x.invlpg(DATA);
      log.push(yield x.load(DATA, 8));
    });
    const image = MachineImage.capture(base);
    const clone = image.instantiate();
    expect(clone.run().outcome).toBe('ok');
    expect(seen.get(clone.cpu(0).asm)).toEqual([1, 1, 2]);
    expect(events(clone, 0, 'load').map((e) => e.tlb)).toEqual(['hit', 'hit', 'miss']);
  });
});

describe('the page shortcut changes nothing observable: the same random programs with and without it', () => {
  // With footprints on, MemoryPort never fills its page caches (every access must reach the footprint), so a
  // footprint machine runs the same program through the plain TLB path. Everything else must be identical.
  const BASE = toVirtual(0xffff_c900_0400_0000n);
  // Pages 0-3 are adjacent (3 has its R/W bit toggled, 2 is not global); 4 and 5 are 16 and 32 pages above page
  // 0 (a direct-mapped page cache may put them in page 0's slot); 6 is 64 pages above and aliases page 0's frame.
  const PAGE_VAS = [0, 1, 2, 3, 16, 32, 64].map((n) => BASE + n * PAGE_SIZE);
  const ALIAS_INDEX = 6;
  const RW_TOGGLED = BASE + 3 * PAGE_SIZE;
  const DIRECT = PAGE_VAS.length; // the page index that means "the direct map of page 1's first frame"
  const SPARE_FRAMES = 2;

  type Op =
    | { kind: 'load' | 'store'; page: number; offset: number; size: number; value: number; fixup: boolean }
    | { kind: 'push'; value: number }
    | { kind: 'pop' | 'cr3' }
    | { kind: 'retarget'; page: number; frame: number }
    | { kind: 'protect'; writable: boolean }
    | { kind: 'invlpg'; va: number }
    | { kind: 'cmpxchg'; va: number; expected: number; value: number };

  /** Whether [va, va + size) may fault: it leaves the mapped pages or, for a store, touches the R/W-toggled page. */
  function mayFault(va: number, size: number, store: boolean): boolean {
    for (const page of new Set([va - (va % PAGE_SIZE), va + size - 1 - ((va + size - 1) % PAGE_SIZE)])) {
      if (!PAGE_VAS.includes(page) || (store && page === RW_TOGGLED)) return true;
    }
    return false;
  }

  function randomOps(prng: Prng, count: number): Op[] {
    const ops: Op[] = [];
    let depth = 0; // pushes outstanding: RSP starts 5 slots above a stack page boundary (see build)
    const sizes = [1, 2, 4, 8];
    const frameCount = PAGE_VAS.length - 1 + SPARE_FRAMES;
    for (let i = 0; i < count; i++) {
      const r = prng.below(100);
      const page = prng.below(PAGE_VAS.length + 1);
      const size = sizes[prng.below(4)]!;
      const offset = prng.below(4) === 0 ? 0x1000 - 1 - prng.below(10) : prng.below(0x1000 - size) & ~(size - 1);
      const value = size === 8 ? prng.nextU32() * 2 ** 16 + prng.below(2 ** 16) : prng.nextU32() % 256 ** size;
      const faulty = (store: boolean) => page !== DIRECT && mayFault(PAGE_VAS[page]! + offset, size, store);
      if (r < 30) ops.push({ kind: 'load', page, offset, size, value: 0, fixup: faulty(false) });
      else if (r < 55) ops.push({ kind: 'store', page, offset, size, value, fixup: faulty(true) });
      else if (r < 65 && depth < 16) {
        ops.push({ kind: 'push', value });
        depth++;
      } else if (r < 75 && depth > 0) {
        ops.push({ kind: 'pop' });
        depth--;
      } else if (r < 80)
        ops.push({ kind: 'retarget', page: prng.below(PAGE_VAS.length), frame: prng.below(frameCount) });
      else if (r < 85) ops.push({ kind: 'protect', writable: prng.below(2) === 0 });
      else if (r < 91) ops.push({ kind: 'invlpg', va: PAGE_VAS[prng.below(PAGE_VAS.length)]! });
      else if (r < 94) ops.push({ kind: 'cr3' });
      else {
        const va = PAGE_VAS[prng.below(3)]! + 8 * prng.below(8);
        ops.push({ kind: 'cmpxchg', va, expected: 0, value });
      }
    }
    return ops;
  }

  function build(footprint: boolean, programs: Op[][]) {
    const m = Machine.create({ cpus: 2, footprint, tlb: { entries: 8, ways: 2, largeEntries: 4 } });
    for (const [i, va] of PAGE_VAS.entries()) {
      if (i === ALIAS_INDEX) mapAlias(m, va, PAGE_VAS[0]!);
      else m.map(va, { writable: true, global: i !== 2 });
    }
    const frames = PAGE_VAS.filter((_, i) => i !== ALIAS_INDEX).map((va) => phys(m, va));
    for (let i = 0; i < SPARE_FRAMES; i++) frames.push(freshFrame(m));
    for (const [i, pa] of frames.entries()) m.memory.write64(pa + 8 * i, 0x100 + i);
    const direct = m.directMap(frames[1]!);
    const address = (page: number, offset: number) => (page === DIRECT ? direct : PAGE_VAS[page]!) + offset;
    const log = new Map<Assembler, number[]>();
    const program: Program<[Op[]]> = function* (x, ops) {
      const results: number[] = [];
      log.set(x, results);
      const cr3 = m.cpu(x.cpuId).regs.cr3;
      for (const op of ops) {
        switch (op.kind) {
          case 'load': {
            const va = address(op.page, op.offset);
            results.push(yield op.fixup ? x.load(va, op.size, { fixup: FAULTED }) : x.load(va, op.size));
            break;
          }
          case 'store': {
            const va = address(op.page, op.offset);
            results.push(
              yield op.fixup ? x.store(va, op.size, op.value, { fixup: FAULTED }) : x.store(va, op.size, op.value),
            );
            break;
          }
          case 'push':
            yield x.push(op.value);
            break;
          case 'pop':
            results.push(yield x.pop());
            break;
          case 'cr3':
            yield x.movToCr3(cr3);
            break;
          case 'retarget':
            yield* editPte(x, m, PAGE_VAS[op.page]!, pointAt(frames[op.frame]!));
            break;
          case 'protect':
            yield* editPte(x, m, RW_TOGGLED, op.writable ? setBits(PTE_LO.RW) : clearBits(PTE_LO.RW));
            break;
          case 'invlpg':
            yield x.invlpg(op.va);
            break;
          case 'cmpxchg':
            results.push(yield x.cmpxchg(op.va, 8, op.expected, op.value));
            break;
        }
      }
    };
    for (const [cpu, ops] of programs.entries()) {
      m.load(cpu, program, ops);
      // Start five slots above the boundary between the top two task stack pages, so pushes and pops cross it.
      m.cpu(cpu).regs.rsp = m.boot!.taskStacks[cpu]!.top - PAGE_SIZE + 40;
    }
    return { m, log };
  }

  function randomSchedule(prng: Prng, length: number): ScheduleEntry[] {
    const entries: ScheduleEntry[] = [];
    for (let i = 0; i < length; i++) {
      const r = prng.below(100);
      const cpu = prng.below(2);
      const va = PAGE_VAS[prng.below(PAGE_VAS.length)]!;
      if (r < 4) entries.push({ cpu, tlb: 'evict', va });
      else if (r < 7) entries.push({ cpu, tlb: 'fill', va });
      else entries.push(cpu);
    }
    return entries;
  }

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %d: same trace, results, TLB counters and contents, and memory', (seed) => {
    const prng = new Prng(seed);
    const programs = [randomOps(prng, 400), randomOps(prng, 400)];
    const schedule = randomSchedule(prng, 1200);
    const runs = [false, true].map((footprint) => {
      const { m, log } = build(footprint, programs);
      const result = m.run({ schedule, maxSteps: 10_000 });
      return { m, log, result };
    });
    const [fast, plain] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(fast.result.outcome).toBe('ok');
    expect(fast.result).toEqual(plain.result);
    // Both programs ran to the end.
    expect(fast.m.cpus.map((c) => c.state)).toEqual(['halted', 'halted']);
    expect(fast.m.trace.length).toBe(plain.m.trace.length);
    expect(fast.m.trace).toEqual(plain.m.trace);
    for (const cpu of [0, 1]) {
      expect(fast.log.get(fast.m.cpu(cpu).asm)).toEqual(plain.log.get(plain.m.cpu(cpu).asm));
      expect(counters(fast.m, cpu)).toEqual(counters(plain.m, cpu));
    }
    expect(fast.m.snapshot().cpus).toEqual(plain.m.snapshot().cpus);
    const frames = fast.m.memory.materialisedFrames();
    expect(frames).toEqual(plain.m.memory.materialisedFrames());
    const differing = frames.filter(
      (pfn) => !Buffer.from(fast.m.memory.frameBytes(pfn)).equals(plain.m.memory.frameBytes(pfn)),
    );
    expect(differing).toEqual([]);
    // The run exercised what it is meant to: faults with fixups, and far more TLB hits than misses.
    expect(fast.m.trace.some((e) => e.exceptions !== undefined)).toBe(true);
    expect(fast.m.cpu(0).tlb.hits).toBeGreaterThan(2 * fast.m.cpu(0).tlb.misses);
  });
});
