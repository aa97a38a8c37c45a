import { describe, expect, it } from 'vitest';
import type { Assembler, Program } from '../../src/cpu/assembler.ts';
import type { ExceptionFrame } from '../../src/cpu/exception-frame.ts';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import { type Instruction, MSR } from '../../src/cpu/instruction.ts';
import { CR0, CR4, EFER, type GateInit, type HandlerContext, RFLAGS } from '../../src/cpu/registers.ts';
import { Machine } from '../../src/machine/machine.ts';
import { InputError, PAGE_SIZE } from '../../src/mmu/address.ts';
import {
  type Body,
  chain,
  DATA,
  FLAGS,
  faultingStep,
  UNMAPPED,
  USER_CS,
  USER_DATA,
  USER_RFLAGS,
  USER_SS,
  USER_STACK,
  USER_STACK_TOP,
  useIstStack,
} from './fixtures.ts';

// Instructions that write system state (SDM Vol. 2 "MOV—Move to/from Control Registers", "WRMSR", "INVLPG",
// "CLI", "STI", "HLT"; Vol. 3 §2.5 control registers, §4.10.4.1 TLB invalidation, §2.2.1 IA32_EFER).

const PF_P = 1;
const PF_W = 2;
const PF_RSVD = 8;
/** An MSR index no processor implements: WRMSR to it is #GP(0) (SDM Vol. 2 WRMSR). */
const NO_SUCH_MSR = 0xdead_beef;

interface Seen {
  readonly ctx: HandlerContext;
  readonly frame: ExceptionFrame | undefined;
}

/** A gate whose handler records what it received, then stops the CPU (a fault would re-execute forever). */
function recordAndDie(m: Machine, seen: Seen[], extra: Partial<GateInit> = {}): GateInit {
  return {
    handler: function* (x, ctx) {
      seen.push({ ctx, frame: m.cpu(0).exceptionFrame() });
      yield x.die('oops', `vector ${ctx.vector} error code ${ctx.errorCode}`);
    },
    ist: 0,
    type: 'interrupt',
    ...extra,
  };
}

/** Kernel code that enters `program` at CPL 3 on the user stack. */
function* enterUser(x: Assembler, program: Program, rflags = USER_RFLAGS): Body {
  yield x.push(USER_SS);
  yield x.push(USER_STACK_TOP);
  yield x.push(rflags);
  yield x.push(USER_CS);
  yield x.push(x.userEntry(program));
  yield x.iret();
}

/** Registers as programs read them: CR0 as the unsigned value (the model keeps it as an int32 at boot). */
const regs = (m: Machine) => {
  const r = m.cpu(0).regs;
  return { cr0: r.cr0 >>> 0, cr2: r.cr2, cr3: r.cr3, cr4: r.cr4, efer: r.efer, rsp: r.rsp, rflags: r.rflags };
};

/** Whether CPU 0's TLB holds a translation for `va`. */
const cached = (m: Machine, va: number): boolean =>
  m.snapshot().cpus[0]!.tlb.some((e) => e.va <= va && va < e.va + e.pageSize);

/**
 * Runs `build`'s instruction once on a booted one-CPU machine (at CPL 3 with `userRflags` when given), with a #GP
 * trap gate that records and stops (a trap gate leaves IF as the instruction left it). Returns the machine, what
 * the #GP handler saw, the RIP of the instruction and the registers before it.
 */
function runOnce(build: (x: Assembler, m: Machine) => Instruction, userRflags?: number) {
  const m = Machine.create({ cpus: 1 });
  m.map(USER_STACK, { writable: true, user: true });
  m.map(USER_DATA, { writable: true, user: true });
  const seen: Seen[] = [];
  m.cpu(0).setGate(VECTOR.GP, recordAndDie(m, seen, { type: 'trap' }));
  const out = { m, seen, rip: 0, before: regs(m) };
  const body: Program = function* (x) {
    yield x.load(USER_DATA, 8); // a cached user translation, for INVLPG to (not) drop
    out.rip = m.cpu(0).rip;
    out.before = regs(m);
    yield build(x, m);
  };
  const kernel: Program = function* (x) {
    yield* enterUser(x, body, userRflags);
  };
  m.load(0, userRflags === undefined ? body : kernel);
  const result = m.run();
  return { ...out, result };
}

describe('MOV to CR0', () => {
  // CR0 is a 64-bit register whose value at boot is PE | WP | PG = 0x80010001 (SDM Vol. 3 §2.5), held as an
  // unsigned number: a program that writes back what it read is a no-op MOV to CR0.
  it('CR0 reads as 0x80010001 after boot, and writing it back unchanged is a no-op', () => {
    const m = Machine.create({ cpus: 1 });
    expect(m.snapshot().cpus[0]!.registers.cr0).toBe(0x8001_0001);
    m.load(0, function* (x) {
      yield x.movToCr0(m.cpu(0).regs.cr0);
    });
    expect(m.run().outcome).toBe('ok');
  });

  it('clearing WP lets a supervisor write to a read-only page succeed; setting it back makes it #PF(P|W)', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: false });
    const cr0 = m.cpu(0).regs.cr0 >>> 0;
    const values: number[] = [];
    m.load(0, function* (x) {
      values.push(yield x.load(DATA, 8)); // caches the read-only translation: the writes below hit it
      yield x.movToCr0((cr0 & ~CR0.WP) >>> 0);
      yield x.store(DATA, 8, 5);
      yield x.movToCr0(cr0);
      values.push(yield x.store(DATA, 8, 6, { fixup: 0xf1 })); // the boot #PF handler completes it by its fixup
      values.push(yield x.load(DATA, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(values).toEqual([0, 0xf1, 5]);
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.PF, errorCode: PF_P | PF_W, cr2: DATA });
    expect(m.trace.filter((e) => e.exceptions).map((e) => e.op)).toEqual(['store']);
    expect(regs(m).cr0).toBe(cr0);
  });

  it('with WP clear, a write to a read-only page not yet cached succeeds too (the walk honours CR0.WP)', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: false });
    const cr0 = m.cpu(0).regs.cr0 >>> 0;
    m.load(0, function* (x) {
      yield x.movToCr0((cr0 & ~CR0.WP) >>> 0);
      yield x.store(DATA, 8, 5);
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.memory.read64(m.physicalAddress(DATA)!)).toBe(5);
    expect(regs(m).cr0).toBe((cr0 & ~CR0.WP) >>> 0);
  });

  it.each([
    ['clearing PG', (cr0: number) => (cr0 & ~CR0.PG) >>> 0],
    ['clearing PE', (cr0: number) => (cr0 & ~CR0.PE) >>> 0],
    ['setting bit 32 (reserved)', (cr0: number) => cr0 + 2 ** 32],
  ])('%s raises #GP(0) and CR0 keeps its value', (_n, value) => {
    const { m, seen, rip, before, result } = runOnce((x, machine) => x.movToCr0(value(machine.cpu(0).regs.cr0 >>> 0)));
    expect(result.outcome).toBe('oops');
    expect(seen[0]!.ctx).toMatchObject({ vector: VECTOR.GP, errorCode: 0 });
    expect(seen[0]!.frame).toMatchObject({ errorCode: 0, rip });
    expect(regs(m).cr0).toBe(before.cr0);
  });

  // NW = 1 with CD = 0 is an invalid CR0 combination: MOV to CR0 raises #GP(0) (SDM Vol. 2 MOV CR, 64-bit
  // mode exceptions: "invalid bit combinations in CR0 (... setting the CD flag to 0 when the NW flag is set to 1)").
  it('setting NW with CD clear raises #GP(0)', () => {
    const NW = 1 << 29;
    const { m, seen, before } = runOnce((x, machine) => x.movToCr0(((machine.cpu(0).regs.cr0 >>> 0) | NW) >>> 0));
    expect(seen[0]?.ctx).toMatchObject({ vector: VECTOR.GP, errorCode: 0 });
    expect(regs(m).cr0).toBe(before.cr0);
  });
});

describe('MOV to CR2', () => {
  it('sets CR2, which the next #PF overwrites with the faulting address', () => {
    const m = Machine.create({ cpus: 1 });
    const cr2: number[] = [];
    m.load(0, function* (x) {
      yield x.movToCr2(FLAGS);
      cr2.push(m.cpu(0).regs.cr2);
      yield x.load(UNMAPPED, 8, { fixup: 0 });
      cr2.push(m.cpu(0).regs.cr2);
    });
    expect(m.run().outcome).toBe('ok');
    expect(cr2).toEqual([FLAGS, UNMAPPED]);
    expect(m.snapshot().cpus[0]!.registers.cr2).toBe(UNMAPPED);
  });
});

describe('MOV to CR3', () => {
  it('reloading CR3 flushes non-global TLB entries and keeps global ones', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true }); // global, as boot mappings are
    m.map(FLAGS, { writable: true, global: false });
    const cr3 = m.cpu(0).regs.cr3;
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.load(FLAGS, 8);
      yield x.movToCr3(cr3);
      yield x.load(DATA, 8);
      yield x.load(FLAGS, 8);
    });
    m.run({ schedule: '0*2' });
    expect([cached(m, DATA), cached(m, FLAGS)]).toEqual([true, true]);
    expect(m.step(0)).toMatchObject({ op: 'mov-to-cr3' });
    expect([cached(m, DATA), cached(m, FLAGS)]).toEqual([true, false]);
    expect(m.step(0)).toMatchObject({ op: 'load', va: DATA, tlb: 'hit' });
    expect(m.step(0)).toMatchObject({ op: 'load', va: FLAGS, tlb: 'miss' });
    expect(regs(m).cr3).toBe(cr3);
  });

  it('a CR3 with a bit at or above MAXPHYADDR (2^46) raises #GP(0): CR3 and the TLB are unchanged', () => {
    const { m, seen, before } = runOnce((x, machine) => x.movToCr3(machine.cpu(0).regs.cr3 + 2 ** 46));
    expect(seen[0]!.ctx).toMatchObject({ vector: VECTOR.GP, errorCode: 0 });
    expect(regs(m).cr3).toBe(before.cr3);
    expect(cached(m, USER_DATA)).toBe(true); // the non-global user page survived: no flush happened
  });

  it('a CR3 just below 2^46 is accepted', () => {
    const m = Machine.create({ cpus: 1 });
    const cr3 = m.cpu(0).regs.cr3;
    m.load(0, function* (x) {
      yield x.movToCr3(2 ** 46 - PAGE_SIZE);
      yield x.movToCr3(cr3);
    });
    // Neither step touches memory (program code is not fetched through the page tables), so nothing faults.
    expect(m.run().outcome).toBe('ok');
    expect(m.trace.some((e) => e.exceptions)).toBe(false);
    expect(regs(m).cr3).toBe(cr3);
  });
});

describe('MOV to CR4', () => {
  it.each([
    ['clearing PAE', (cr4: number) => cr4 & ~CR4.PAE],
    ['setting bit 32 (reserved)', (cr4: number) => cr4 + 2 ** 32],
  ])('%s raises #GP(0) and CR4 keeps its value', (_n, value) => {
    const { m, seen, rip, before } = runOnce((x, machine) => x.movToCr4(value(machine.cpu(0).regs.cr4)));
    expect(seen[0]!.ctx).toMatchObject({ vector: VECTOR.GP, errorCode: 0 });
    expect(seen[0]!.frame).toMatchObject({ rip });
    expect(regs(m).cr4).toBe(before.cr4);
  });

  it('toggling PGE flushes global entries too; while PGE is clear no entry is global', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true }); // a global page
    const { cr3, cr4 } = m.cpu(0).regs;
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.movToCr4(cr4 & ~CR4.PGE);
      yield x.load(DATA, 8);
      yield x.movToCr3(cr3);
      yield x.load(DATA, 8);
      yield x.movToCr4(cr4);
    });
    m.step(0);
    expect(cached(m, DATA)).toBe(true);
    m.step(0); // PGE cleared: everything goes, global entries included (SDM §4.10.4.1)
    expect(m.snapshot().cpus[0]!.tlb).toEqual([]);
    m.step(0);
    expect(m.snapshot().cpus[0]!.tlb.find((e) => e.va === DATA)).toMatchObject({ global: false });
    m.step(0); // with PGE clear the G bit is ignored: a CR3 load drops the page
    expect(cached(m, DATA)).toBe(false);
    m.step(0);
    m.step(0); // PGE set again: flushes again
    expect(m.snapshot().cpus[0]!.tlb).toEqual([]);
    expect(regs(m).cr4).toBe(cr4);
  });

  it('writing CR4 with PGE unchanged keeps the TLB', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const { cr4 } = m.cpu(0).regs;
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.movToCr4(cr4);
    });
    expect(m.run().outcome).toBe('ok');
    expect(cached(m, DATA)).toBe(true);
  });

  // CR4.LA57 cannot be modified in IA-32e mode; MOV to CR4 that changes it raises #GP(0) (SDM Vol. 3 §2.5,
  // CR4.LA57: "This bit cannot be modified in IA-32e mode"; KVM injects #GP likewise).
  it('setting CR4.LA57 in IA-32e mode raises #GP(0)', () => {
    const LA57 = 1 << 12;
    const { m, seen, before } = runOnce((x, machine) => x.movToCr4(machine.cpu(0).regs.cr4 | LA57));
    expect(seen[0]?.ctx).toMatchObject({ vector: VECTOR.GP, errorCode: 0 });
    expect(regs(m).cr4).toBe(before.cr4);
  });
});

describe('WRMSR IA32_EFER', () => {
  it('with NXE clear, bit 63 of an entry is reserved: the walk faults with #PF(P|RSVD); with NXE set it is XD', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true }); // NX set in its PTE (m.map's default)
    m.map(FLAGS, { writable: true, noExecute: false });
    const efer = m.cpu(0).regs.efer;
    const values: number[] = [];
    const errors: number[] = [];
    m.load(0, function* (x) {
      yield x.push(0); // the stack page is cached: the #PF frames below go through the TLB
      yield x.pop();
      yield x.wrmsr(MSR.EFER, efer & ~EFER.NXE);
      values.push(yield x.load(FLAGS, 8));
      values.push(yield x.load(DATA, 8, { fixup: 0x77 }));
      errors.push(m.cpu(0).lastException?.errorCode ?? -1);
      values.push(yield x.store(DATA, 8, 1, { fixup: 0x78 }));
      errors.push(m.cpu(0).lastException?.errorCode ?? -1);
      yield x.wrmsr(MSR.EFER, efer);
      values.push(yield x.load(DATA, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(values).toEqual([0, 0x77, 0x78, 0]);
    expect(errors).toEqual([PF_P | PF_RSVD, PF_P | PF_W | PF_RSVD]);
    expect(m.cpu(0).lastException).toMatchObject({ vector: VECTOR.PF, cr2: DATA });
    expect(regs(m).efer).toBe(efer);
  });

  it('SCE may be set and cleared', () => {
    const m = Machine.create({ cpus: 1 });
    const efer = m.cpu(0).regs.efer;
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.wrmsr(MSR.EFER, efer | 1);
      seen.push(m.cpu(0).regs.efer);
      yield x.wrmsr(MSR.EFER, efer);
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([efer | 1]);
    expect(regs(m).efer).toBe(efer);
  });

  it('a write that clears LMA is accepted and LMA stays set: it is read-only', () => {
    const m = Machine.create({ cpus: 1 });
    const efer = m.cpu(0).regs.efer;
    m.load(0, function* (x) {
      yield x.wrmsr(MSR.EFER, efer & ~EFER.LMA);
    });
    expect(m.run().outcome).toBe('ok');
    expect(regs(m).efer).toBe(efer);
    expect(efer & EFER.LMA).toBe(EFER.LMA);
  });

  it.each([
    ['clears LME while paging is on', (efer: number) => efer & ~EFER.LME, MSR.EFER],
    ['sets reserved bit 1', (efer: number) => efer | 2, MSR.EFER],
    ['sets reserved bit 32', (efer: number) => efer + 2 ** 32, MSR.EFER],
    ['names an MSR the CPU does not implement', (efer: number) => efer, NO_SUCH_MSR],
  ])('a WRMSR that %s raises #GP(0) and EFER keeps its value', (_n, value, msr) => {
    const { m, seen, rip, before } = runOnce((x, machine) => x.wrmsr(msr, value(machine.cpu(0).regs.efer)));
    expect(seen[0]!.ctx).toMatchObject({ vector: VECTOR.GP, errorCode: 0 });
    expect(seen[0]!.frame).toMatchObject({ rip });
    expect(regs(m).efer).toBe(before.efer);
  });
});

describe('MOV to RSP', () => {
  it('changes RSP with no memory access; the next push lands just below it', () => {
    const m = Machine.create({ cpus: 1 });
    const top = useIstStack(m, 0, 7); // any mapped page will do as a stack
    m.load(0, function* (x) {
      yield x.movToRsp(top);
      yield x.push(9);
    });
    const tlbBefore = m.snapshot().cpus[0]!.tlbStats;
    const mov = m.step(0)!;
    expect(mov).toMatchObject({ op: 'mov-to-rsp', va: undefined, pa: undefined, tlb: undefined });
    expect(m.snapshot().cpus[0]!.tlbStats).toEqual(tlbBefore);
    expect(m.snapshot().cpus[0]!.tlb).toEqual([]);
    expect(regs(m).rsp).toBe(top);
    expect(m.step(0)).toMatchObject({ op: 'push', va: top - 8, value: 9 });
    expect(m.memory.read64(m.physicalAddress(top - 8)!)).toBe(9);
    expect(regs(m).rsp).toBe(top - 8);
  });

  it('a push onto an unmapped new stack faults with #PF(W) and leaves RSP at the value MOV to RSP set', () => {
    const m = Machine.create({ cpus: 1 });
    useIstStack(m, 0, 3);
    const seen: Seen[] = [];
    m.cpu(0).setGate(VECTOR.PF, recordAndDie(m, seen, { ist: 3 }));
    const top = UNMAPPED + PAGE_SIZE;
    let pushRip = 0;
    m.load(0, function* (x) {
      yield x.movToRsp(top);
      pushRip = m.cpu(0).rip;
      yield x.push(9);
    });
    expect(m.run().outcome).toBe('oops');
    expect(seen[0]!.ctx).toMatchObject({ vector: VECTOR.PF, errorCode: PF_W, cr2: top - 8 });
    expect(seen[0]!.frame).toMatchObject({ rip: pushRip, rsp: top });
  });

  it('without an IST for #PF, that push is a kernel stack overflow: the #PF frame cannot be pushed, #DF', () => {
    const m = Machine.create({ cpus: 1 });
    const top = UNMAPPED + PAGE_SIZE;
    m.load(0, function* (x) {
      yield x.movToRsp(top);
      yield x.push(9);
    });
    expect(m.run().outcome).toBe('double-fault');
    expect(chain(faultingStep(m))).toEqual([
      { vector: VECTOR.PF, outcome: 'frame-fault' },
      { vector: VECTOR.PF, outcome: 'double-fault', during: VECTOR.PF },
      { vector: VECTOR.DF, outcome: 'delivered', during: VECTOR.PF },
    ]);
  });

  it('is allowed at CPL 3', () => {
    const { m, seen } = runOnce((x) => x.movToRsp(USER_STACK + 0x800), USER_RFLAGS);
    expect(seen).toEqual([]);
    expect(regs(m).rsp).toBe(USER_STACK + 0x800);
    expect(m.cpu(0).regs.cpl).toBe(3);
  });

  it('refuses an address that is not a virtual address where the instruction is built', () => {
    const m = Machine.create({ cpus: 1 });
    m.load(0, function* (x) {
      yield x.movToRsp(-8);
    });
    expect(() => m.run()).toThrow(InputError);
  });
});

describe('privileged instructions at CPL 3 raise #GP(0) and change nothing', () => {
  type Check = (m: Machine, before: ReturnType<typeof regs>) => void;
  const cases: [string, number, (x: Assembler, m: Machine) => Instruction, Check][] = [
    ['cli', USER_RFLAGS, (x) => x.cli(), (m) => expect(m.cpu(0).interruptsEnabled).toBe(true)],
    ['sti (entered with IF=0)', RFLAGS.FIXED, (x) => x.sti(), (m) => expect(m.cpu(0).interruptsEnabled).toBe(false)],
    ['hlt', USER_RFLAGS, (x) => x.hlt(), (m) => expect(m.cpu(0).state).not.toBe('halted')],
    ['invlpg', USER_RFLAGS, (x) => x.invlpg(USER_DATA), (m) => expect(cached(m, USER_DATA)).toBe(true)],
    [
      'mov to CR0',
      USER_RFLAGS,
      (x, m) => x.movToCr0((m.cpu(0).regs.cr0 & ~CR0.WP) >>> 0),
      (m, before) => expect(regs(m).cr0).toBe(before.cr0),
    ],
    ['mov to CR2', USER_RFLAGS, (x) => x.movToCr2(USER_DATA), (m, before) => expect(regs(m).cr2).toBe(before.cr2)],
    ['mov to CR3', USER_RFLAGS, (x) => x.movToCr3(0x1000), (m, before) => expect(regs(m).cr3).toBe(before.cr3)],
    [
      'mov to CR4',
      USER_RFLAGS,
      (x, m) => x.movToCr4(m.cpu(0).regs.cr4 & ~CR4.PGE),
      (m, before) => {
        expect(regs(m).cr4).toBe(before.cr4);
        expect(cached(m, USER_DATA)).toBe(true);
      },
    ],
    [
      'wrmsr',
      USER_RFLAGS,
      (x, m) => x.wrmsr(MSR.EFER, m.cpu(0).regs.efer | 1),
      (m, before) => expect(regs(m).efer).toBe(before.efer),
    ],
  ];

  it.each(cases)('%s', (_n, rflags, build, unchanged) => {
    const { m, seen, rip, before, result } = runOnce(build, rflags);
    expect(result.outcome).toBe('oops');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.ctx).toMatchObject({ vector: VECTOR.GP, errorCode: 0, software: false });
    // A fault: the frame saves the instruction itself, in user mode, with the user's RFLAGS.
    expect(seen[0]!.frame).toMatchObject({ errorCode: 0, rip, cs: USER_CS, rflags, rsp: USER_STACK_TOP, ss: USER_SS });
    expect(before.rflags).toBe(rflags);
    unchanged(m, before);
  });

  it('the same instructions run at CPL 0', () => {
    const m = Machine.create({ cpus: 1 });
    const { cr0, cr3, cr4, efer } = regs(m);
    m.load(0, function* (x) {
      yield x.cli();
      yield x.sti();
      yield x.invlpg(DATA);
      yield x.movToCr0(cr0);
      yield x.movToCr2(DATA);
      yield x.movToCr3(cr3);
      yield x.movToCr4(cr4);
      yield x.wrmsr(MSR.EFER, efer);
      yield x.hlt();
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.trace.some((e) => e.exceptions)).toBe(false);
    expect(m.cpu(0).state).toBe('halted');
  });
});
