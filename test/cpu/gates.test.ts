import { describe, expect, it } from 'vitest';
import type { Assembler, Program } from '../../src/cpu/assembler.ts';
import type { ExceptionFrame } from '../../src/cpu/exception-frame.ts';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import { type GateInit, type HandlerContext, RFLAGS } from '../../src/cpu/registers.ts';
import { Machine } from '../../src/machine/machine.ts';
import { InputError, PAGE_SIZE, toVirtual } from '../../src/mmu/address.ts';
import { type Body, chain, DATA, EXTRA_STACK, faultingStep, IPI_VECTOR, NON_CANONICAL } from './fixtures.ts';

// IDT gates in IA-32e mode (SDM Vol. 3 §6.10, §6.11, §6.12.1, §6.14.1, §6.14.4-6.14.5; Vol. 2 INT n pseudocode,
// IA-32e-MODE and TRAP-OR-INTERRUPT-GATE) over Linux's GDT (src/cpu/segments.ts): 0x08 __KERNEL32_CS, 0x10
// __KERNEL_CS, 0x18 __KERNEL_DS, 0x23 __USER32_CS, 0x2b __USER_DS, 0x33 __USER_CS, 0x40 the TSS, 16 entries.

const FRAME = 40;
const USER_CS = 0x33;
const USER_SS = 0x2b;
const USER_STACK = toVirtual(0x0000_7fff_f000_0000n);
const USER_STACK_TOP = USER_STACK + PAGE_SIZE;

interface Seen {
  readonly ctx: HandlerContext;
  readonly frame: ExceptionFrame | undefined;
  readonly interruptsEnabled: boolean;
  readonly cpl: number;
}

/** A handler that records what it received, EOIs when the event was external, and returns. */
function recorder(m: Machine, seen: Seen[]): Program<[HandlerContext]> {
  return function* (x, ctx) {
    const c = m.cpu(0);
    seen.push({ ctx, frame: c.exceptionFrame(), interruptsEnabled: c.interruptsEnabled, cpl: c.regs.cpl });
    if (ctx.external) yield x.eoi();
    else yield x.pause();
  };
}

const gate = (handler: Program<[HandlerContext]>, extra: Partial<GateInit> = {}): GateInit => ({
  handler,
  ist: 0,
  type: 'interrupt',
  ...extra,
});

/** Raises IPI_VECTOR on CPU 0: as a fixed self-IPI (an external interrupt, EXT = 1) or with INT n (EXT = 0). */
function raiser(source: 'ipi' | 'int'): Program {
  return function* (x) {
    if (source === 'ipi') yield x.sendIpi('self', IPI_VECTOR);
    else yield x.int(IPI_VECTOR);
    yield x.pause();
  };
}

const stackTop = (m: Machine): number => m.boot!.taskStacks[0]!.top;

describe('setGate and clearGate', () => {
  it('setGate stores a frozen gate: present, DPL 0 and __KERNEL_CS unless given', () => {
    const m = Machine.create({ cpus: 1 });
    const handler = recorder(m, []);
    m.cpu(0).setGate(0x81, { handler, ist: 2, type: 'trap' });
    expect(m.cpu(0).idt[0x81]).toEqual({ handler, ist: 2, type: 'trap', present: true, dpl: 0, selector: 0x10 });
    expect(Object.isFrozen(m.cpu(0).idt[0x81])).toBe(true);
    m.cpu(0).setGate(0x82, { handler, ist: 0, type: 'interrupt', present: false, dpl: 3, selector: 0x33 });
    expect(m.cpu(0).idt[0x82]).toMatchObject({ present: false, dpl: 3, selector: 0x33 });
  });

  it('the boot IDT has a gate for each architectural exception 0..21 and none above', () => {
    const m = Machine.create({ cpus: 1 });
    const idt = m.cpu(0).idt;
    expect(idt.slice(0, 22).every((g) => g?.present && g.selector === 0x10 && g.dpl === 0)).toBe(true);
    expect(idt.slice(22).every((g) => g === undefined)).toBe(true);
    expect([idt[VECTOR.DF]!.ist, idt[VECTOR.NMI]!.ist, idt[VECTOR.PF]!.ist]).toEqual([1, 2, 0]);
  });

  const handler = function* (x: Assembler) {
    yield x.pause();
  };
  it.each([
    ['IST 8', { handler, ist: 8, type: 'interrupt' }, /IST index 8/],
    ['IST -1', { handler, ist: -1, type: 'interrupt' }, /IST index -1/],
    ['IST 1.5', { handler, ist: 1.5, type: 'interrupt' }, /IST index 1\.5/],
    ['a task gate', { handler, ist: 0, type: 'task' }, /gate type/],
    ['DPL 4', { handler, ist: 0, type: 'interrupt', dpl: 4 }, /DPL 4/],
    ['a selector above 16 bits', { handler, ist: 0, type: 'interrupt', selector: 0x1_0000 }, /selector/],
    ['present "yes"', { handler, ist: 0, type: 'interrupt', present: 'yes' }, /present/],
    ['an arrow function as handler', { handler: () => {}, ist: 0, type: 'interrupt' }, /not a generator function/],
    ['null', null, /must be an object/],
  ])('setGate refuses %s with an InputError, and the IDT keeps the old gate', (_n, bad, message) => {
    const m = Machine.create({ cpus: 1 });
    const old = m.cpu(0).idt[VECTOR.PF];
    let error: unknown;
    try {
      m.cpu(0).setGate(VECTOR.PF, bad as unknown as GateInit);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/^CPU 0 setGate\(14\)/);
    expect((error as Error).message).toMatch(message);
    expect(m.cpu(0).idt[VECTOR.PF]).toBe(old);
  });

  it.each([256, -1, 1.5])('setGate and clearGate refuse vector %s', (vector) => {
    const m = Machine.create({ cpus: 1 });
    expect(() => m.cpu(0).setGate(vector, gate(handler))).toThrow(InputError);
    expect(() => m.cpu(0).clearGate(vector)).toThrow(InputError);
  });

  it('clearGate leaves no gate: a #PF through it raises #GP(14*8+3), which after a page fault is a #DF', () => {
    const m = Machine.create({ cpus: 1 });
    m.cpu(0).clearGate(VECTOR.PF);
    expect(m.cpu(0).idt[VECTOR.PF]).toBeUndefined();
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
    });
    expect(m.run().outcome).toBe('double-fault');
    const step = faultingStep(m);
    expect(chain(step)).toEqual([
      { vector: VECTOR.PF, outcome: 'gate-fault' },
      { vector: VECTOR.GP, outcome: 'double-fault', during: VECTOR.PF },
      { vector: VECTOR.DF, outcome: 'delivered', during: VECTOR.PF },
    ]);
    expect(step.exceptions![1]!.errorCode).toBe(VECTOR.PF * 8 + 3);
  });
});

describe('gate and code-segment checks at delivery (SDM INT n, TRAP-OR-INTERRUPT-GATE)', () => {
  interface Fault {
    readonly name: string;
    readonly gate: Partial<GateInit> | 'cleared';
    readonly vector: number;
    /** The error code before EXT is added. */
    readonly code: number;
  }
  const faults: Fault[] = [
    { name: 'a not-present gate: #NP(vector*8+2+EXT)', gate: { present: false }, vector: VECTOR.NP, code: 0x782 },
    { name: 'a cleared gate: #GP(vector*8+2+EXT)', gate: 'cleared', vector: VECTOR.GP, code: 0x782 },
    { name: 'a null selector: #GP(EXT)', gate: { selector: 0 }, vector: VECTOR.GP, code: 0 },
    { name: 'a null selector with RPL 3: #GP(EXT)', gate: { selector: 3 }, vector: VECTOR.GP, code: 0 },
    { name: 'a selector outside the GDT (index 16)', gate: { selector: 0x80 }, vector: VECTOR.GP, code: 0x80 },
    { name: 'a selector at GDT index 511', gate: { selector: 0xfff8 }, vector: VECTOR.GP, code: 0xfff8 },
    { name: 'a data segment (__KERNEL_DS)', gate: { selector: 0x18 }, vector: VECTOR.GP, code: 0x18 },
    { name: 'the TSS descriptor', gate: { selector: 0x40 }, vector: VECTOR.GP, code: 0x40 },
    { name: 'an empty GDT slot', gate: { selector: 0x38 }, vector: VECTOR.GP, code: 0x38 },
    { name: 'an LDT selector (TI set)', gate: { selector: 0x14 }, vector: VECTOR.GP, code: 0x14 },
    { name: 'a DPL-3 code segment from CPL 0', gate: { selector: 0x33 }, vector: VECTOR.GP, code: 0x30 },
    { name: 'the 32-bit user code segment', gate: { selector: 0x23 }, vector: VECTOR.GP, code: 0x20 },
  ];
  const sources = [
    ['a fixed IPI', 'ipi', 1],
    ['INT n', 'int', 0],
  ] as const;

  describe.each(sources)('while delivering %s', (_s, source, ext) => {
    it.each(faults.map((f) => [f.name, f] as const))('%s', (_n, f) => {
      const m = Machine.create({ cpus: 1 });
      const seen: Seen[] = [];
      if (f.gate === 'cleared') m.cpu(0).clearGate(IPI_VECTOR);
      else m.cpu(0).setGate(IPI_VECTOR, gate(recorder(m, seen), f.gate));
      m.load(0, raiser(source));
      const result = m.run();
      const step = faultingStep(m);
      expect(chain(step)).toEqual([
        { vector: IPI_VECTOR, outcome: 'gate-fault' },
        { vector: f.vector, outcome: 'delivered', during: IPI_VECTOR },
      ]);
      expect(step.exceptions![1]!.errorCode).toBe(f.code | ext);
      expect(seen).toHaveLength(0);
      // The boot handler of #GP / #NP oopses with that error code.
      expect(result.outcome).toBe('oops');
      expect(result.stop?.message).toMatch(`error_code: 0x${(f.code | ext).toString(16)} in kernel mode`);
    });

    // The SDM's INT n pseudocode (IA-32e mode) raises #GP(selector + EXT) when the gate's code segment is not 64-bit
    // code, as Bochs and QEMU (do_interrupt64) do; §6.14.1's prose says "the IDT vector number". The model follows
    // the pseudocode and the two emulators; docs/deviations.md notes the discrepancy.
    it('a 32-bit code segment (__KERNEL32_CS): #GP(0x08 + EXT), the selector', () => {
      const m = Machine.create({ cpus: 1 });
      m.cpu(0).setGate(IPI_VECTOR, gate(recorder(m, []), { selector: 0x08 }));
      m.load(0, raiser(source));
      m.run();
      expect(faultingStep(m).exceptions![1]).toMatchObject({ vector: VECTOR.GP, errorCode: 0x08 + ext });
    });

    it('a gate selector for __KERNEL_CS with RPL 3 is fine: the handler runs at CPL 0 (RPL is ignored)', () => {
      const m = Machine.create({ cpus: 1 });
      const seen: Seen[] = [];
      m.cpu(0).setGate(IPI_VECTOR, gate(recorder(m, seen), { selector: 0x13 }));
      m.load(0, raiser(source));
      expect(m.run().outcome).toBe('ok');
      expect(seen).toHaveLength(1);
      expect(seen[0]!.cpl).toBe(0);
      expect(seen[0]!.frame).toMatchObject({ cs: 0x10 });
    });
  });

  it('a not-present gate is reported before a bad selector in it (the P check comes first)', () => {
    const m = Machine.create({ cpus: 1 });
    m.cpu(0).setGate(IPI_VECTOR, gate(recorder(m, []), { present: false, selector: 0x18 }));
    m.load(0, raiser('ipi'));
    m.run();
    expect(faultingStep(m).exceptions![1]).toMatchObject({ vector: VECTOR.NP, errorCode: 0x783 });
  });

  it('cpu.lastException is the gate fault that was delivered', () => {
    const m = Machine.create({ cpus: 1 });
    m.cpu(0).setGate(IPI_VECTOR, gate(recorder(m, []), { selector: 0x18 }));
    m.load(0, raiser('ipi'));
    m.run();
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.GP, errorCode: 0x19, cr2: 0 });
  });
});

describe('escalation of gate faults (SDM Table 6-5)', () => {
  const unmapTaskStackTop = (m: Machine) => m.boot!.pageTables.clearPresent(stackTop(m) - PAGE_SIZE);

  it('a gate fault while delivering #DF is a triple fault: the CPU shuts down', () => {
    const m = Machine.create({ cpus: 1 });
    unmapTaskStackTop(m);
    m.cpu(0).setGate(VECTOR.DF, { ...m.cpu(0).idt[VECTOR.DF]!, selector: 0x18 });
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
    });
    const result = m.run();
    expect(result.outcome).toBe('triple-fault');
    expect(chain(faultingStep(m))).toEqual([
      { vector: VECTOR.PF, outcome: 'frame-fault' },
      { vector: VECTOR.PF, outcome: 'double-fault', during: VECTOR.PF },
      { vector: VECTOR.DF, outcome: 'gate-fault', during: VECTOR.PF },
      { vector: VECTOR.GP, outcome: 'triple-fault', during: VECTOR.DF },
    ]);
    expect(faultingStep(m).exceptions![3]!.errorCode).toBe(0x19);
    expect(m.cpu(0).state).toBe('shutdown');
    expect(result.stop?.message).toBe('triple fault: #GP (error code 25) while delivering #DF');
  });

  it.each([
    ['a data-segment selector', { selector: 0x18 }, VECTOR.GP, 0x19],
    ['a null selector', { selector: 0 }, VECTOR.GP, 1],
    ['not present', { present: false }, VECTOR.NP, VECTOR.PF * 8 + 3],
  ] as const)('a #PF gate with %s: the fault while delivering #PF is contributory, so #DF', (_n, bad, v, code) => {
    const m = Machine.create({ cpus: 1 });
    m.cpu(0).setGate(VECTOR.PF, { ...m.cpu(0).idt[VECTOR.PF]!, ...bad });
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
    });
    const result = m.run();
    expect(chain(faultingStep(m))).toEqual([
      { vector: VECTOR.PF, outcome: 'gate-fault' },
      { vector: v, outcome: 'double-fault', during: VECTOR.PF },
      { vector: VECTOR.DF, outcome: 'delivered', during: VECTOR.PF },
    ]);
    expect(faultingStep(m).exceptions![1]!.errorCode).toBe(code);
    expect(result.outcome).toBe('double-fault');
    expect(result.stop?.message).toMatch(/^PANIC: double fault, error_code: 0x0\n/);
  });

  it('a #GP gate with a bad selector: #GP while delivering #GP is contributory + contributory, so #DF', () => {
    const m = Machine.create({ cpus: 1 });
    m.cpu(0).setGate(VECTOR.GP, { ...m.cpu(0).idt[VECTOR.GP]!, selector: 0x40 });
    m.load(0, function* (x) {
      yield x.load(NON_CANONICAL, 8);
    });
    expect(m.run().outcome).toBe('double-fault');
    expect(chain(faultingStep(m))).toEqual([
      { vector: VECTOR.GP, outcome: 'gate-fault' },
      { vector: VECTOR.GP, outcome: 'double-fault', during: VECTOR.GP },
      { vector: VECTOR.DF, outcome: 'delivered', during: VECTOR.GP },
    ]);
  });

  it('a gate fault while delivering an IPI is serial: the #GP is delivered and the IPI is not', () => {
    const m = Machine.create({ cpus: 1 });
    const seen: Seen[] = [];
    m.cpu(0).setGate(IPI_VECTOR, gate(recorder(m, []), { selector: 0x18 }));
    m.cpu(0).setGate(VECTOR.GP, {
      handler: function* (x, ctx) {
        seen.push({ ctx, frame: m.cpu(0).exceptionFrame(), interruptsEnabled: false, cpl: 0 });
        yield x.die('oops', 'gp');
      },
      ist: 0,
      type: 'interrupt',
    });
    m.load(0, raiser('ipi'));
    m.run();
    expect(seen[0]!.ctx).toMatchObject({ vector: VECTOR.GP, errorCode: 0x19, external: false });
    // The #GP frame saves the interrupted instruction, where the IPI would have returned to.
    expect(seen[0]!.frame).toMatchObject({ errorCode: 0x19, rip: faultingStep(m).rip, rsp: stackTop(m) });
  });

  it('a gate fault while delivering INT 14 is serial too: INT n is no exception, whatever its vector', () => {
    const m = Machine.create({ cpus: 1 });
    m.cpu(0).setGate(VECTOR.PF, { ...m.cpu(0).idt[VECTOR.PF]!, selector: 0x18 });
    m.load(0, function* (x) {
      yield x.int(VECTOR.PF);
    });
    const result = m.run();
    expect(chain(faultingStep(m))).toEqual([
      { vector: VECTOR.PF, outcome: 'gate-fault' },
      { vector: VECTOR.GP, outcome: 'delivered', during: VECTOR.PF },
    ]);
    expect(result.stop?.message).toBe('general protection fault, error_code: 0x18 in kernel mode');
  });
});

describe('interrupt gates and trap gates', () => {
  it.each([
    ['an interrupt gate clears IF in the handler', 'interrupt', false],
    ['a trap gate leaves IF set in the handler', 'trap', true],
  ] as const)('%s; the frame keeps the interrupted IF and iret restores it', (_n, type, handlerIf) => {
    const m = Machine.create({ cpus: 1 });
    const seen: Seen[] = [];
    m.cpu(0).setGate(IPI_VECTOR, gate(recorder(m, seen), { type }));
    m.load(0, raiser('ipi'));
    expect(m.run().outcome).toBe('ok');
    expect(seen[0]!.interruptsEnabled).toBe(handlerIf);
    expect(seen[0]!.frame!.rflags).toBe(RFLAGS.FIXED | RFLAGS.IF);
    expect(m.cpu(0).interruptsEnabled).toBe(true);
  });

  it.each([
    ['interrupt', false],
    ['trap', true],
  ] as const)('an exception through a%s gate: IF in the handler is %s', (type, handlerIf) => {
    const m = Machine.create({ cpus: 1 });
    const seen: Seen[] = [];
    m.cpu(0).setGate(VECTOR.PF, {
      handler: function* (x, ctx) {
        seen.push({ ctx, frame: undefined, interruptsEnabled: m.cpu(0).interruptsEnabled, cpl: 0 });
        yield x.iret({ fixup: true });
      },
      ist: 0,
      type,
    });
    m.load(0, function* (x) {
      yield x.load(DATA, 8, { fixup: 1 });
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen[0]!.interruptsEnabled).toBe(handlerIf);
  });

  it('an IPI nests in a trap-gate handler but waits for the iret of an interrupt-gate handler', () => {
    for (const [type, nested] of [
      ['trap', true],
      ['interrupt', false],
    ] as const) {
      const m = Machine.create({ cpus: 1 });
      const order: string[] = [];
      m.cpu(0).setGate(0x81, {
        handler: function* (x) {
          order.push('int 0x81');
          yield x.sendIpi('self', IPI_VECTOR);
          yield x.pause();
          order.push('0x81 returns');
        },
        ist: 0,
        type,
      });
      m.cpu(0).setGate(
        IPI_VECTOR,
        gate(function* (x) {
          order.push('IPI');
          yield x.eoi();
        }),
      );
      m.load(0, function* (x) {
        yield x.int(0x81);
        yield x.pause();
      });
      expect(m.run().outcome).toBe('ok');
      expect(order).toEqual(nested ? ['int 0x81', 'IPI', '0x81 returns'] : ['int 0x81', '0x81 returns', 'IPI']);
    }
  });
});

describe('stacks: IST, alignment, privilege change', () => {
  it.each([1, 2, 3, 4, 5, 6, 7])('IST %i takes the stack from tss.ist[%i]', (n) => {
    const m = Machine.create({ cpus: 1 });
    const page = EXTRA_STACK + n * 2 * PAGE_SIZE;
    m.map(page, { writable: true });
    m.cpu(0).tss.ist[n] = page + PAGE_SIZE;
    const seen: Seen[] = [];
    m.cpu(0).setGate(IPI_VECTOR, gate(recorder(m, seen), { ist: n }));
    m.load(0, raiser('ipi'));
    expect(m.run().outcome).toBe('ok');
    const accepted = m.trace.find((e) => e.op === 'interrupt')!;
    expect(accepted.exceptions![0]).toMatchObject({ stack: `ist${n}`, rsp: page + PAGE_SIZE - FRAME });
    expect(seen[0]!.frame).toMatchObject({ address: page + PAGE_SIZE - FRAME, rsp: stackTop(m) });
    expect(m.cpu(0).regs.rsp).toBe(stackTop(m));
  });

  it('the IST top is aligned down to 16 bytes before the frame is pushed', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(EXTRA_STACK, { writable: true });
    const top = EXTRA_STACK + PAGE_SIZE - 8;
    m.cpu(0).tss.ist[3] = top;
    const seen: Seen[] = [];
    m.cpu(0).setGate(IPI_VECTOR, gate(recorder(m, seen), { ist: 3 }));
    m.load(0, raiser('ipi'));
    m.run();
    expect(seen[0]!.frame!.address).toBe(top - 8 - FRAME);
  });

  it('without an IST the frame goes on the current stack, aligned to 16; it saves the unaligned RSP', () => {
    const m = Machine.create({ cpus: 1 });
    const seen: Seen[] = [];
    m.cpu(0).setGate(0x81, gate(recorder(m, seen)));
    m.load(0, function* (x) {
      yield x.push(1); // RSP = top - 8
      yield x.int(0x81);
      yield x.pop();
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen[0]!.frame).toMatchObject({ address: stackTop(m) - 16 - FRAME, rsp: stackTop(m) - 8 });
    expect(m.cpu(0).regs.rsp).toBe(stackTop(m));
  });

  it('an IST gate switches stacks even for an event raised inside a handler already on that IST', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(EXTRA_STACK, { writable: true });
    m.cpu(0).tss.ist[3] = EXTRA_STACK + PAGE_SIZE;
    const addresses: number[] = [];
    let depth = 0;
    m.cpu(0).setGate(0x81, {
      handler: function* (x) {
        addresses.push(m.cpu(0).exceptionFrame()!.address);
        if (depth++ === 0) yield x.int(0x81);
        yield x.pause();
      },
      ist: 3,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      yield x.int(0x81);
    });
    const result = m.run();
    // The nested frame overwrites the outer one (why Linux never lets an IST vector nest on its own stack): the
    // outer handler's iret pops the inner frame's RIP.
    expect(addresses).toEqual([EXTRA_STACK + PAGE_SIZE - FRAME, EXTRA_STACK + PAGE_SIZE - FRAME]);
    expect(result.outcome).toBe('stack-corruption');
  });

  it('a DPL-3 gate whose code segment is __USER_CS runs an INT from CPL 3 at CPL 3, on the user stack', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(USER_STACK, { writable: true, user: true });
    const seen: Seen[] = [];
    m.cpu(0).setGate(0x81, gate(recorder(m, seen), { dpl: 3, selector: USER_CS }));
    const user: Program = function* (x) {
      yield x.int(0x81);
      yield x.pause();
    };
    m.load(0, function* (x) {
      yield* enterUser(x, user);
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen[0]!.cpl).toBe(3);
    expect(seen[0]!.frame).toMatchObject({ address: USER_STACK_TOP - FRAME, cs: USER_CS, ss: USER_SS });
    expect(m.trace.find((e) => e.op === 'int')!.exceptions![0]).toMatchObject({ stack: 'current' });
  });
});

function* enterUser(x: Assembler, program: Program): Body {
  yield x.push(USER_SS);
  yield x.push(USER_STACK_TOP);
  yield x.push(RFLAGS.FIXED | RFLAGS.IF);
  yield x.push(USER_CS);
  yield x.push(x.userEntry(program));
  yield x.iret();
}
