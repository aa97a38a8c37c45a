import { describe, expect, it } from 'vitest';
import type { Assembler, Program } from '../../src/cpu/assembler.ts';
import type { ExceptionFrame } from '../../src/cpu/exception-frame.ts';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import { type GateInit, type HandlerContext, RFLAGS } from '../../src/cpu/registers.ts';
import { Machine } from '../../src/machine/machine.ts';
import { canonicalHighHalf, LOWER_HALF_END, PAGE_SIZE, toVirtual } from '../../src/mmu/address.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';
import {
  type Body,
  chain,
  DATA,
  EXTRA_STACK,
  faultingStep,
  IPI_VECTOR,
  readFrame,
  setPresent,
  UNMAPPED,
  USER_CS,
  USER_DATA,
  USER_RFLAGS,
  USER_SS,
  USER_STACK,
  USER_STACK_TOP,
  useIstStack,
} from './fixtures.ts';

// INT n and INT3 (SDM Vol. 2 "INT n/INTO/INT3/INT1", IA-32e-MODE and TRAP-OR-INTERRUPT-GATE pseudocode; Vol. 3
// §6.4.2, §6.12, §6.13, §6.14), and entering user mode with IRET (SDM Vol. 2 "IRET", RETURN-TO-OUTER-PRIVILEGE-LEVEL).

const SYSCALL_VECTOR = 0x80;
const KERNEL_CS = 0x10;
const KERNEL_SS = 0x18;
/** Where the model keeps RIPs of consecutive instructions apart (cpu.ts RIP_STRIDE). */
const NEXT = 4;
/** Bytes of a frame without / with an error code. */
const FRAME = 40;
const FRAME_WITH_ERROR_CODE = 48;

interface Seen {
  readonly ctx: HandlerContext;
  readonly frame: ExceptionFrame | undefined;
  readonly cpl: number;
  readonly interruptsEnabled: boolean;
}

/** A gate whose handler records what it received and returns (the implicit iret). */
function recordingGate(m: Machine, seen: Seen[], extra: Partial<GateInit> = {}, cpu = 0): GateInit {
  return {
    handler: function* (x, ctx) {
      const c = m.cpu(cpu);
      seen.push({ ctx, frame: c.exceptionFrame(), cpl: c.regs.cpl, interruptsEnabled: c.interruptsEnabled });
      yield x.pause();
    },
    ist: 0,
    type: 'interrupt',
    ...extra,
  };
}

/** A gate whose handler records what it received and then stops the CPU (for faults that would re-execute). */
function recordAndDie(m: Machine, seen: Seen[], extra: Partial<GateInit> = {}): GateInit {
  return {
    handler: function* (x, ctx) {
      const c = m.cpu(0);
      seen.push({ ctx, frame: c.exceptionFrame(), cpl: c.regs.cpl, interruptsEnabled: c.interruptsEnabled });
      yield x.die('oops', `vector ${ctx.vector} error code ${ctx.errorCode}`);
    },
    ist: 0,
    type: 'interrupt',
    ...extra,
  };
}

/**
 * Pushes a model-form kernel address as its canonical 64-bit image: x.push stores the number as it is (bits 47:0,
 * zeros above; an 8-byte value is at most 2^53-1), so for a high-half address the upper 4 bytes are sign-extended
 * with a store.
 */
function* pushAddress(x: Assembler, m: Machine, va: number): Body {
  yield x.push(va);
  if (va >= LOWER_HALF_END) yield x.store(m.cpu(x.cpuId).regs.rsp + 4, 4, canonicalHighHalf(va));
}

/** Kernel code that enters `program` at CPL 3 on the user stack: push SS, RSP, RFLAGS, CS, RIP; iret. */
function* enterUser<A extends readonly unknown[]>(x: Assembler, program: Program<A>, ...args: A): Body {
  yield x.push(USER_SS);
  yield x.push(USER_STACK_TOP);
  yield x.push(USER_RFLAGS);
  yield x.push(USER_CS);
  yield x.push(x.userEntry(program, ...args));
  yield x.iret();
}

/** Steps CPU `cpu` until it runs at CPL 3 (the kernel code above has irets into the user program). */
function stepToUser(m: Machine, cpu = 0): void {
  for (let i = 0; i < 10 && m.cpu(cpu).regs.cpl !== 3; i++) m.step(cpu);
  expect(m.cpu(cpu).regs.cpl).toBe(3);
}

/** A one-CPU machine with a user stack and a user data page mapped. */
function userMachine(cpus = 1): Machine {
  const m = Machine.create({ cpus });
  m.map(USER_STACK, { writable: true, user: true });
  m.map(USER_DATA, { writable: true, user: true });
  return m;
}

const stackTop = (m: Machine): number => m.boot!.taskStacks[0]!.top;

describe('INT n is a trap: the frame saves the next instruction', () => {
  it('int 0x80 runs the gate handler with a frame whose RIP is the next instruction; its iret resumes there', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const seen: Seen[] = [];
    m.cpu(0).setGate(SYSCALL_VECTOR, recordingGate(m, seen));
    m.load(0, function* (x) {
      yield x.int(SYSCALL_VECTOR);
      yield x.store(DATA, 8, 1);
    });
    const int = m.step(0)!;
    expect(int.op).toBe('int');
    expect(int.exceptions).toEqual([
      {
        vector: SYSCALL_VECTOR,
        name: 'INT 0x80',
        errorCode: 0,
        outcome: 'delivered',
        stack: 'current',
        rsp: stackTop(m) - FRAME,
      },
    ]);
    expect(m.run().outcome).toBe('ok');
    expect(m.trace.map((e) => e.op)).toEqual(['int', 'pause', 'iret', 'store', 'exit']);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.frame).toEqual({
      vector: SYSCALL_VECTOR,
      rip: int.rip + NEXT,
      cs: KERNEL_CS,
      rflags: RFLAGS.FIXED | RFLAGS.IF,
      rsp: stackTop(m),
      ss: KERNEL_SS,
      address: stackTop(m) - FRAME,
    });
    expect(seen[0]!.ctx).toMatchObject({ vector: SYSCALL_VECTOR, software: true, external: false, hasFixup: false });
    // The store after the INT ran once, and the INT was not executed again.
    expect(m.trace.filter((e) => e.op === 'int')).toHaveLength(1);
    expect(m.memory.read64(m.physicalAddress(DATA)!)).toBe(1);
    expect(m.cpu(0).regs.rsp).toBe(stackTop(m));
  });

  it('int3 raises #BP through gate 3 as a trap: the handler sees software = true and the program goes on', () => {
    const m = Machine.create({ cpus: 1 });
    const seen: Seen[] = [];
    m.cpu(0).setGate(3, recordingGate(m, seen));
    m.load(0, function* (x) {
      yield x.int3();
      yield x.pause();
    });
    const int3 = m.step(0)!;
    expect(int3.exceptions).toEqual([
      { vector: 3, name: 'INT3', errorCode: 0, outcome: 'delivered', stack: 'current', rsp: stackTop(m) - FRAME },
    ]);
    expect(m.run().outcome).toBe('ok');
    expect(m.trace.map((e) => e.op)).toEqual(['int', 'pause', 'iret', 'pause', 'exit']);
    expect(seen[0]!.ctx).toMatchObject({ vector: 3, errorCode: 0, software: true });
    expect(seen[0]!.frame?.rip).toBe(int3.rip + NEXT);
  });

  it.each([
    ['int 14', VECTOR.PF],
    ['int 13', VECTOR.GP],
    ['int 8', VECTOR.DF],
  ])('%s pushes no error code even though the exception has one: a 5-slot frame, ctx.errorCode 0', (_n, vector) => {
    const m = Machine.create({ cpus: 1 });
    const seen: Seen[] = [];
    m.cpu(0).setGate(vector, recordAndDie(m, seen));
    m.load(0, function* (x) {
      yield x.int(vector);
    });
    const int = m.step(0)!;
    expect(int.exceptions).toEqual([
      expect.objectContaining({ vector, errorCode: 0, outcome: 'delivered', rsp: stackTop(m) - FRAME }),
    ]);
    m.run();
    const { ctx, frame } = seen[0]!;
    expect(ctx).toMatchObject({ vector, errorCode: 0, software: true, frameRsp: stackTop(m) - FRAME });
    expect(frame).not.toHaveProperty('errorCode');
    expect(frame).toMatchObject({ rip: int.rip + NEXT, cs: KERNEL_CS, rsp: stackTop(m), ss: KERNEL_SS });
    // What sits at frameRsp is the saved RIP, not an error code.
    expect(readFrame(m, ctx.frameRsp, false).rip).toBe(int.rip + NEXT);
  });

  it.each([
    ['int 14', VECTOR.PF],
    ['int 13', VECTOR.GP],
  ])('the handler of %s returns with iret past the INT, its frame having no error code to drop', (_n, vector) => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    m.cpu(0).setGate(vector, recordingGate(m, []));
    m.load(0, function* (x) {
      yield x.int(vector);
      yield x.store(DATA, 8, 1);
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.trace.map((e) => e.op)).toEqual(['int', 'pause', 'iret', 'store', 'exit']);
    expect(m.cpu(0).regs.rsp).toBe(stackTop(m));
  });

  // IRET does not depend on the vector that entered the handler (SDM Vol. 2 IRET pseudocode); INT 8 is a
  // software interrupt whose frame saves the next instruction (SDM Vol. 3 §6.4.2, INT n "trap"), so its handler
  // may return. Only a #DF *exception* saves an undefined CS:RIP (§6.15 interrupt 8).
  it('a handler entered by int 8 returns past the INT: its frame is a trap frame, not an abort frame', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    m.cpu(0).setGate(VECTOR.DF, recordingGate(m, [], { ist: 1 }));
    m.load(0, function* (x) {
      yield x.int(VECTOR.DF);
      yield x.store(DATA, 8, 1);
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.memory.read64(m.physicalAddress(DATA)!)).toBe(1);
  });

  it('int 14 leaves CR2 alone: only a page fault loads CR2', () => {
    const m = Machine.create({ cpus: 1 });
    const seen: Seen[] = [];
    m.cpu(0).setGate(VECTOR.PF, recordingGate(m, seen));
    m.load(0, function* (x) {
      yield x.movToCr2(DATA);
      yield x.int(VECTOR.PF);
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen[0]!.ctx.cr2).toBe(DATA);
    expect(m.cpu(0).regs.cr2).toBe(DATA);
    expect(m.cpu(0).lastException).toBeUndefined();
  });

  it('an INT through an interrupt gate clears IF in the handler; its iret restores IF from the frame', () => {
    const m = Machine.create({ cpus: 1 });
    const seen: Seen[] = [];
    m.cpu(0).setGate(SYSCALL_VECTOR, recordingGate(m, seen));
    let after = false;
    m.load(0, function* (x) {
      yield x.int(SYSCALL_VECTOR);
      after = m.cpu(0).interruptsEnabled;
      yield x.pause();
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen[0]!.interruptsEnabled).toBe(false);
    expect(seen[0]!.frame!.rflags & RFLAGS.IF).toBe(RFLAGS.IF);
    expect(after).toBe(true);
  });
});

describe('gate DPL: INT n is checked against CPL, exceptions and interrupts are not', () => {
  it('INT n from CPL 3 through a DPL-0 gate raises #GP(vector*8+2) on the RSP0 stack, saving the INT itself', () => {
    const m = userMachine();
    const gp: Seen[] = [];
    const syscall: Seen[] = [];
    m.cpu(0).setGate(SYSCALL_VECTOR, recordingGate(m, syscall)); // DPL 0
    m.cpu(0).setGate(VECTOR.GP, recordAndDie(m, gp));
    let intRip = 0;
    const user: Program = function* (x) {
      intRip = m.cpu(0).rip;
      yield x.int(SYSCALL_VECTOR);
    };
    m.load(0, function* (x) {
      yield* enterUser(x, user);
    });
    const result = m.run();
    expect(result.outcome).toBe('oops');
    expect(syscall).toHaveLength(0);
    // IDT bit set, EXT clear: raised by INT n itself (SDM INT n: #GP(error_code(vector_number,1,0))).
    expect(gp[0]!.ctx).toMatchObject({ vector: VECTOR.GP, errorCode: SYSCALL_VECTOR * 8 + 2, software: false });
    expect(gp[0]!.cpl).toBe(0);
    expect(gp[0]!.frame).toEqual({
      vector: VECTOR.GP,
      errorCode: SYSCALL_VECTOR * 8 + 2,
      rip: intRip,
      cs: USER_CS,
      rflags: USER_RFLAGS,
      rsp: USER_STACK_TOP,
      ss: USER_SS,
      address: stackTop(m) - FRAME_WITH_ERROR_CODE,
    });
    expect(chain(faultingStep(m))).toEqual([
      { vector: SYSCALL_VECTOR, outcome: 'gate-fault' },
      { vector: VECTOR.GP, outcome: 'delivered', during: SYSCALL_VECTOR },
    ]);
    expect(faultingStep(m).exceptions![1]).toMatchObject({ errorCode: 0x402, stack: 'rsp0' });
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.GP, errorCode: 0x402, cr2: 0 });
  });

  it('INT n from CPL 3 through a DPL-3 gate runs the handler at CPL 0 on RSP0; its iret returns to CPL 3', () => {
    const m = userMachine();
    const seen: Seen[] = [];
    m.cpu(0).setGate(SYSCALL_VECTOR, recordingGate(m, seen, { dpl: 3 }));
    let intRip = 0;
    const after: { cpl: number; rsp: number }[] = [];
    const user: Program = function* (x) {
      intRip = m.cpu(0).rip;
      yield x.int(SYSCALL_VECTOR);
      after.push({ cpl: m.cpu(0).regs.cpl, rsp: m.cpu(0).regs.rsp });
      yield x.store(USER_DATA, 8, 7);
    };
    m.load(0, function* (x) {
      yield* enterUser(x, user);
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.cpl).toBe(0);
    expect(seen[0]!.ctx.software).toBe(true);
    expect(seen[0]!.frame).toEqual({
      vector: SYSCALL_VECTOR,
      rip: intRip + NEXT,
      cs: USER_CS,
      rflags: USER_RFLAGS,
      rsp: USER_STACK_TOP,
      ss: USER_SS,
      address: stackTop(m) - FRAME,
    });
    expect(m.trace.find((e) => e.op === 'int')!.exceptions![0]).toMatchObject({ stack: 'rsp0' });
    expect(after).toEqual([{ cpl: 3, rsp: USER_STACK_TOP }]);
    expect(m.memory.read64(m.physicalAddress(USER_DATA)!)).toBe(7);
  });

  it.each([
    ['refused by a DPL-0 #BP gate with #GP(3*8+2)', 0, [VECTOR.GP]],
    ['allowed by a DPL-3 #BP gate, as Linux sets it', 3, [3]],
  ] as const)('int3 from CPL 3 is %s', (_n, dpl, vectors) => {
    const m = userMachine();
    const seen: Seen[] = [];
    m.cpu(0).setGate(3, recordingGate(m, seen, { dpl }));
    m.cpu(0).setGate(VECTOR.GP, recordAndDie(m, seen));
    const user: Program = function* (x) {
      yield x.int3();
    };
    m.load(0, function* (x) {
      yield* enterUser(x, user);
    });
    m.run();
    expect(seen.map((s) => s.ctx.vector)).toEqual(vectors);
    if (dpl === 0) expect(seen[0]!.ctx.errorCode).toBe(3 * 8 + 2);
  });

  it('a #PF from CPL 3 is delivered through the DPL-0 #PF gate: exceptions ignore the gate DPL', () => {
    const m = userMachine();
    const seen: Seen[] = [];
    m.cpu(0).setGate(VECTOR.PF, recordAndDie(m, seen));
    const missing = toVirtual(0x0000_0000_0070_0000n);
    const user: Program = function* (x) {
      yield x.load(missing, 8);
    };
    m.load(0, function* (x) {
      yield* enterUser(x, user);
    });
    m.run();
    // Error code U (bit 2): a user-mode read of a not-present page.
    expect(seen[0]!.ctx).toMatchObject({ vector: VECTOR.PF, errorCode: 4, cr2: missing });
    expect(seen[0]!.frame).toMatchObject({ errorCode: 4, cs: USER_CS, ss: USER_SS, rsp: USER_STACK_TOP });
    expect(faultingStep(m).exceptions).toEqual([
      expect.objectContaining({ vector: VECTOR.PF, outcome: 'delivered', stack: 'rsp0' }),
    ]);
  });

  it('an IPI taken at CPL 3 is delivered through a DPL-0 gate: external interrupts ignore the gate DPL', () => {
    const m = userMachine(2);
    const seen: Seen[] = [];
    m.cpu(0).setGate(IPI_VECTOR, {
      handler: function* (x, ctx) {
        seen.push({ ctx, frame: m.cpu(0).exceptionFrame(), cpl: m.cpu(0).regs.cpl, interruptsEnabled: false });
        yield x.eoi();
      },
      ist: 0,
      type: 'interrupt',
    });
    const user: Program = function* (x) {
      yield x.pause();
      yield x.pause();
    };
    m.load(0, function* (x) {
      yield* enterUser(x, user);
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, IPI_VECTOR);
    });
    stepToUser(m);
    m.step(0); // one pause at CPL 3, then the IPI arrives
    m.step(1);
    expect(m.step(0)).toMatchObject({ cpu: 0, op: 'interrupt', accepted: { vector: IPI_VECTOR } });
    expect(m.run().outcome).toBe('ok');
    expect(seen[0]!.ctx).toMatchObject({ vector: IPI_VECTOR, external: true });
    expect(seen[0]!.frame).toMatchObject({ cs: USER_CS, ss: USER_SS, rsp: USER_STACK_TOP });
    expect(m.cpu(0).regs.cpl).toBe(3);
  });
});

describe('no Table 6-5 escalation for the software interrupt itself', () => {
  it('int 14 whose frame push raises #PF gets a plain #PF (no #DF); after its iret the INT re-executes', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const top = stackTop(m);
    const stackPage = top - PAGE_SIZE;
    const pte = m.pteAddress(stackPage);
    // The stack page is read-only while the CPU caches it, then writable again in memory (no INVLPG): the stale
    // entry makes the INT's frame push fault, and the fault drops the entry, so the #PF frame push walks and works.
    m.memory.write32(pte, m.memory.read32(pte) & ~PTE_LO.RW);
    const seen: Seen[] = [];
    m.cpu(0).setGate(VECTOR.PF, recordingGate(m, seen));
    m.load(0, function* (x) {
      yield x.load(top - 8, 8); // caches the read-only translation
      const lo = yield x.load(m.directMap(pte), 4);
      yield x.store(m.directMap(pte), 4, (lo | PTE_LO.RW) >>> 0);
      yield x.int(VECTOR.PF);
      yield x.store(DATA, 8, 1);
    });
    expect(m.run().outcome).toBe('ok');
    const int = m.trace.find((e) => e.op === 'int')!;
    expect(int.exceptions).toEqual([
      { vector: VECTOR.PF, name: 'INT 0xe', errorCode: 0, outcome: 'frame-fault' },
      {
        vector: VECTOR.PF,
        name: '#PF',
        errorCode: 3, // P | W: a supervisor write through a read-only translation
        cr2: top - 8,
        during: VECTOR.PF,
        outcome: 'delivered',
        stack: 'current',
        rsp: top - FRAME_WITH_ERROR_CODE,
      },
    ]);
    // The #PF saved the INT's own RIP: its iret re-executes the INT, whose delivery now succeeds.
    expect(seen.map((s) => s.ctx.software)).toEqual([false, true]);
    expect(seen[0]!.frame).toMatchObject({ errorCode: 3, rip: int.rip });
    expect(seen[1]!.frame).toMatchObject({ rip: int.rip + NEXT });
    expect(m.trace.map((e) => e.op)).toEqual([
      'load',
      'load',
      'store',
      'int',
      'pause',
      'iret',
      'int',
      'pause',
      'iret',
      'store',
      'exit',
    ]);
    expect(m.memory.read64(m.physicalAddress(DATA)!)).toBe(1);
  });

  it('an INT whose IST page is not present raises #PF; the handler maps it, irets, and the INT runs its handler', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const istTop = useIstStack(m, 0, 3);
    m.boot!.pageTables.clearPresent(EXTRA_STACK);
    const syscall: Seen[] = [];
    const faults: HandlerContext[] = [];
    m.cpu(0).setGate(SYSCALL_VECTOR, recordingGate(m, syscall, { ist: 3 }));
    m.cpu(0).setGate(VECTOR.PF, {
      handler: function* (x, ctx) {
        faults.push(ctx);
        yield* setPresent(x, m, EXTRA_STACK);
      },
      ist: 0,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      yield x.int(SYSCALL_VECTOR);
      yield x.store(DATA, 8, 1);
    });
    expect(m.run().outcome).toBe('ok');
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ vector: VECTOR.PF, errorCode: 2, cr2: istTop - 8, software: false });
    expect(syscall).toHaveLength(1);
    expect(syscall[0]!.frame).toMatchObject({ address: istTop - FRAME, rsp: stackTop(m) });
    expect(m.trace.map((e) => e.op)).toEqual(['int', 'load', 'store', 'iret', 'int', 'pause', 'iret', 'store', 'exit']);
    expect(m.memory.read64(m.physicalAddress(DATA)!)).toBe(1);
  });
});

describe('EXT in the error codes of faults raised while delivering an event (SDM §6.13)', () => {
  it('an INT through a not-present gate raises #NP(vector*8+2): EXT = 0, the frame saves the INT', () => {
    const m = Machine.create({ cpus: 1 });
    const seen: Seen[] = [];
    m.cpu(0).setGate(SYSCALL_VECTOR, { ...recordingGate(m, []), present: false });
    m.cpu(0).setGate(VECTOR.NP, recordAndDie(m, seen));
    m.load(0, function* (x) {
      yield x.int(SYSCALL_VECTOR);
    });
    expect(m.run().outcome).toBe('oops');
    const step = faultingStep(m);
    expect(chain(step)).toEqual([
      { vector: SYSCALL_VECTOR, outcome: 'gate-fault' },
      { vector: VECTOR.NP, outcome: 'delivered', during: SYSCALL_VECTOR },
    ]);
    expect(step.exceptions![1]!.errorCode).toBe(0x402);
    expect(seen[0]!.frame).toMatchObject({ errorCode: 0x402, rip: step.rip });
  });

  it('an IPI to a not-present gate raises #NP(vector*8+3): EXT = 1', () => {
    const m = Machine.create({ cpus: 1 });
    m.cpu(0).setGate(IPI_VECTOR, { ...recordingGate(m, []), present: false });
    m.load(0, function* (x) {
      yield x.sendIpi('self', IPI_VECTOR);
      yield x.pause();
    });
    const result = m.run();
    expect(chain(faultingStep(m))).toEqual([
      { vector: IPI_VECTOR, outcome: 'gate-fault' },
      { vector: VECTOR.NP, outcome: 'delivered', during: IPI_VECTOR },
    ]);
    expect(result.outcome).toBe('oops');
    expect(result.stop?.message).toBe(
      `#NP exception, error_code: 0x${(IPI_VECTOR * 8 + 3).toString(16)} in kernel mode`,
    );
  });

  it.each([
    ['an INT n', 'int', 2],
    ['a fixed IPI', 'ipi', 3],
  ] as const)('%s whose vector has no gate (clearGate) raises #GP(vector*8+2+EXT)', (_n, source, code) => {
    const m = Machine.create({ cpus: 1 });
    m.cpu(0).setGate(IPI_VECTOR, recordingGate(m, []));
    m.cpu(0).clearGate(IPI_VECTOR);
    m.load(0, function* (x) {
      if (source === 'int') yield x.int(IPI_VECTOR);
      else yield x.sendIpi('self', IPI_VECTOR);
      yield x.pause();
    });
    const result = m.run();
    expect(chain(faultingStep(m))).toEqual([
      { vector: IPI_VECTOR, outcome: 'gate-fault' },
      { vector: VECTOR.GP, outcome: 'delivered', during: IPI_VECTOR },
    ]);
    expect(faultingStep(m).exceptions![1]!.errorCode).toBe(IPI_VECTOR * 8 + code);
    expect(result.stop?.message).toBe(
      `general protection fault, error_code: 0x${(IPI_VECTOR * 8 + code).toString(16)} in kernel mode`,
    );
  });

  it.each([
    ['an INT n', 'int', 0],
    ['a fixed IPI', 'ipi', 1],
  ] as const)('%s whose gate names a data segment raises #GP(0x18 + EXT)', (_n, source, ext) => {
    const m = Machine.create({ cpus: 1 });
    m.cpu(0).setGate(IPI_VECTOR, recordingGate(m, [], { selector: 0x18 }));
    m.load(0, function* (x) {
      if (source === 'int') yield x.int(IPI_VECTOR);
      else yield x.sendIpi('self', IPI_VECTOR);
      yield x.pause();
    });
    m.run();
    expect(faultingStep(m).exceptions![1]).toMatchObject({ vector: VECTOR.GP, errorCode: 0x18 + ext });
  });

  it.each([
    ['an INT n', 'int', 0],
    ['a fixed IPI', 'ipi', 1],
  ] as const)('%s whose IST stack is non-canonical raises #SS(EXT)', (_n, source, ext) => {
    const m = Machine.create({ cpus: 1 });
    m.cpu(0).setGate(IPI_VECTOR, recordingGate(m, [], { ist: 3 }));
    m.cpu(0).tss.ist[3] = toVirtual(0x0000_8000_0000_1000n);
    m.load(0, function* (x) {
      if (source === 'int') yield x.int(IPI_VECTOR);
      else yield x.sendIpi('self', IPI_VECTOR);
      yield x.pause();
    });
    m.run();
    expect(chain(faultingStep(m))).toEqual([
      { vector: IPI_VECTOR, outcome: 'frame-fault' },
      { vector: VECTOR.SS, outcome: 'delivered', during: IPI_VECTOR },
    ]);
    expect(faultingStep(m).exceptions![1]!.errorCode).toBe(ext);
  });
});

describe('entering user mode with iret', () => {
  it('kernel code pushes a user frame and irets: the program runs at CPL 3 on its stack, the kernel stack empty', () => {
    const m = userMachine();
    const seen: { cpl: number; rsp: number; rflags: number; depth: number }[] = [];
    const user: Program<[number]> = function* (x, value) {
      const c = m.cpu(0);
      seen.push({ cpl: c.regs.cpl, rsp: c.regs.rsp, rflags: c.regs.rflags, depth: c.depth });
      yield x.push(value);
      yield x.store(USER_DATA, 8, value);
    };
    m.load(0, function* (x) {
      yield* enterUser(x, user, 0x55);
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([{ cpl: 3, rsp: USER_STACK_TOP, rflags: USER_RFLAGS, depth: 1 }]);
    const ops = m.trace.map((e) => e.op);
    expect(ops.slice(ops.indexOf('iret'))).toEqual(['iret', 'push', 'store', 'exit']);
    expect(m.trace[ops.indexOf('iret') + 1]).toMatchObject({ op: 'push', va: USER_STACK_TOP - 8, value: 0x55 });
    expect(m.memory.read64(m.physicalAddress(USER_DATA)!)).toBe(0x55);
    expect(m.snapshot().cpus[0]!.registers).toMatchObject({ cpl: 3, rsp: USER_STACK_TOP - 8 });
  });

  it('a user program cannot touch a supervisor page: #PF with U and P set', () => {
    const m = userMachine();
    m.map(DATA, { writable: true });
    const seen: Seen[] = [];
    m.cpu(0).setGate(VECTOR.PF, recordAndDie(m, seen));
    const user: Program = function* (x) {
      yield x.load(DATA, 8);
    };
    m.load(0, function* (x) {
      yield* enterUser(x, user);
    });
    m.run();
    expect(seen[0]!.ctx).toMatchObject({ errorCode: 5, cr2: DATA });
  });

  it('the frame as documented, with x.push(x.userEntry(program)) in the RIP slot, enters the program there', () => {
    const m = userMachine();
    let ran = false;
    const user: Program = function* (x) {
      ran = true;
      yield x.pause();
    };
    m.load(0, function* (x) {
      yield x.push(USER_SS);
      yield x.push(USER_STACK_TOP);
      yield x.push(USER_RFLAGS);
      yield x.push(USER_CS);
      yield x.push(x.userEntry(user));
      yield x.iret();
    });
    expect(m.run().outcome).toBe('ok');
    expect(ran).toBe(true);
    // A user entry is a user-half RIP (a canonical lower-half address), so the frame needs no sign extension.
    expect(m.trace.at(-2)).toMatchObject({ op: 'pause', cpu: 0 });
    expect(m.trace.at(-2)!.rip).toBeLessThan(LOWER_HALF_END);
  });

  it('an iret to a RIP that is no userEntry stops the CPU with stack-corruption', () => {
    const m = userMachine();
    m.load(0, function* (x) {
      yield x.push(USER_SS);
      yield x.push(USER_STACK_TOP);
      yield x.push(USER_RFLAGS);
      yield x.push(USER_CS);
      yield x.push(0x40_1000);
      yield x.iret();
    });
    const result = m.run();
    expect(result.outcome).toBe('stack-corruption');
    expect(result.stop?.message).toMatch(/^iret outside a handler popped RIP 0x0000000000401000 with CS 0x33/);
    expect(m.cpu(0).regs.cpl).toBe(0);
  });

  it('an iret outside a handler to a kernel CS (RPL 0) is no user entry either: stack-corruption', () => {
    const m = userMachine();
    const user: Program = function* (x) {
      yield x.pause();
    };
    m.load(0, function* (x) {
      yield x.push(KERNEL_SS);
      yield* pushAddress(x, m, stackTop(m));
      yield x.push(USER_RFLAGS);
      yield x.push(KERNEL_CS);
      yield x.push(x.userEntry(user));
      yield x.iret();
    });
    expect(m.run().outcome).toBe('stack-corruption');
  });

  it.each([
    ['CS a data segment (0x2b)', 0x2b, USER_SS, 0x28],
    ['CS outside the GDT (0x83)', 0x83, USER_SS, 0x80],
    ['CS an LDT selector (0x37)', 0x37, USER_SS, 0x34],
    ['SS the kernel data segment (0x18)', USER_CS, KERNEL_SS, 0x18],
    ['SS with RPL 0 (0x28)', USER_CS, 0x28, 0x28],
    ['SS a code segment (0x33)', USER_CS, USER_CS, 0x30],
    ['SS null', USER_CS, 0, 0],
  ])('an iret frame with %s raises #GP(selector) and changes nothing', (_n, cs, ss, code) => {
    const m = userMachine();
    const seen: Seen[] = [];
    m.cpu(0).setGate(VECTOR.GP, recordAndDie(m, seen));
    const user: Program = function* (x) {
      yield x.pause();
    };
    let iretRip = 0;
    m.load(0, function* (x) {
      yield x.push(ss);
      yield x.push(USER_STACK_TOP);
      yield x.push(USER_RFLAGS);
      yield x.push(cs);
      yield x.push(x.userEntry(user));
      iretRip = m.cpu(0).rip;
      yield x.iret();
    });
    expect(m.run().outcome).toBe('oops');
    expect(seen[0]!.ctx).toMatchObject({ vector: VECTOR.GP, errorCode: code });
    // A fault in the kernel: the #GP frame saves the iret, CPL 0, and the user frame still under it.
    expect(seen[0]!.frame).toMatchObject({ rip: iretRip, cs: KERNEL_CS, rsp: stackTop(m) - FRAME });
    expect(seen[0]!.cpl).toBe(0);
  });

  it('an exception in user mode switches to TSS.RSP0, wherever the kernel stack pointer was', () => {
    const m = userMachine();
    const seen: Seen[] = [];
    m.cpu(0).setGate(VECTOR.GP, recordAndDie(m, seen));
    const rsp0 = useIstStack(m, 0, 7); // any mapped page will do as RSP0
    m.cpu(0).tss.rsp0 = rsp0;
    const user: Program = function* (x) {
      yield x.cli();
    };
    m.load(0, function* (x) {
      yield* enterUser(x, user);
    });
    m.run();
    expect(seen[0]!.frame).toMatchObject({ address: rsp0 - FRAME_WITH_ERROR_CODE, rsp: USER_STACK_TOP, cs: USER_CS });
    expect(faultingStep(m).exceptions![0]).toMatchObject({ stack: 'rsp0', rsp: rsp0 - FRAME_WITH_ERROR_CODE });
  });

  // On a privilege change in IA-32e mode the CPU loads SS with a NULL selector (RPL = new CPL), so a nested
  // exception taken in that handler pushes SS = 0, not __KERNEL_DS (SDM Vol. 3 §6.14 "If the CPL changes, the new
  // SS is set to NULL", Vol. 2 INT n INTER-PRIVILEGE-LEVEL-INTERRUPT "NewSS := new code-segment DPL").
  it('a #PF in a handler entered from CPL 3 saves SS = 0: the privilege change loaded a NULL SS', () => {
    const m = userMachine();
    const seen: Seen[] = [];
    m.cpu(0).setGate(VECTOR.PF, recordAndDie(m, seen));
    m.cpu(0).setGate(SYSCALL_VECTOR, {
      handler: function* (x) {
        yield x.load(UNMAPPED, 8);
      },
      ist: 0,
      type: 'interrupt',
      dpl: 3,
    });
    const user: Program = function* (x) {
      yield x.int(SYSCALL_VECTOR);
    };
    m.load(0, function* (x) {
      yield* enterUser(x, user);
    });
    m.run();
    expect(seen[0]!.frame).toMatchObject({ cs: KERNEL_CS, ss: 0 });
  });
});
