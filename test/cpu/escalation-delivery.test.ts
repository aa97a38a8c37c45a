import { describe, expect, it } from 'vitest';
import type { Program } from '../../src/cpu/assembler.ts';
import { type ExceptionClass, escalate, VECTOR, vectorInfo } from '../../src/cpu/exceptions.ts';
import { Machine } from '../../src/machine/machine.ts';
import { formatVirtual, PAGE_SIZE, toVirtual } from '../../src/mmu/address.ts';
import { chain, DATA, faultingStep, IPI_VECTOR, NON_CANONICAL, UNMAPPED } from './fixtures.ts';

// Every buildable pair of Table 6-5, built for real on a booted one-CPU machine: the first event is raised by an
// instruction or an accepted interrupt, the second by pushing the first one's frame (a faulting push or a missing
// IDT gate). A benign exception cannot be raised by a frame push, so the benign column is covered by the table test.

const NON_CANONICAL_STACK = toVirtual(0x0000_8000_0000_1000n);
const PF_ERR_WRITE = 0x2;

interface Case {
  readonly name: string;
  readonly first: ExceptionClass;
  readonly second: ExceptionClass;
  /** Index in the step's exception chain of the second exception of the pair (the first is just before it). */
  readonly at: number;
  /** Builds the machine and its program; the first step that raises exceptions is the one examined. */
  readonly build: () => Machine;
  readonly chain: ReturnType<typeof chain>;
  readonly outcome: string;
  readonly message: RegExp;
}

function oneCpu(program: Program, setup: (m: Machine) => void = () => {}): Machine {
  const m = Machine.create({ cpus: 1 });
  setup(m);
  m.load(0, program);
  return m;
}

const loadNonCanonical: Program = function* (x) {
  yield x.load(NON_CANONICAL, 8);
};
const loadUnmapped: Program = function* (x) {
  yield x.load(DATA, 8);
};
const pushOnce: Program = function* (x) {
  yield x.push(1);
};
const selfIpi: Program = function* (x) {
  yield x.sendIpi('self', IPI_VECTOR);
  yield x.pause();
};
const selfNmi: Program = function* (x) {
  yield x.sendIpi('self', VECTOR.NMI, 'nmi');
  yield x.pause();
};
const unmapTaskStackTop = (m: Machine) => m.boot!.pageTables.clearPresent(m.boot!.taskStacks[0]!.top - PAGE_SIZE);
const unmapDoubleFaultStack = (m: Machine) =>
  m.boot!.pageTables.clearPresent(m.boot!.doubleFaultStacks[0]!.top - PAGE_SIZE);
/** Gives `vector` its own IST stack at an unmapped address, so only its frame push faults (with #PF). */
const unmappedIstFor = (vector: number) => (m: Machine) => {
  const gate = m.cpu(0).idt[vector];
  m.cpu(0).setGate(vector, { handler: gate?.handler ?? function* () {}, ist: 3, type: 'interrupt' });
  m.cpu(0).tss.ist[3] = UNMAPPED + PAGE_SIZE;
};
/** Gives `vector` an IST stack at a non-canonical address, so its frame push raises #SS(0). */
const nonCanonicalIstFor = (vector: number) => (m: Machine) => {
  const gate = m.cpu(0).idt[vector]!;
  m.cpu(0).setGate(vector, { ...gate, ist: 3 });
  m.cpu(0).tss.ist[3] = NON_CANONICAL_STACK;
};

const CASES: readonly Case[] = [
  {
    name: 'a #GP whose frame push faults with #PF: the #PF is delivered (serial), its handler oopses on the IST address',
    first: 'contributory',
    second: 'page-fault',
    at: 1,
    build: () => oneCpu(loadNonCanonical, unmappedIstFor(VECTOR.GP)),
    chain: [
      { vector: VECTOR.GP, outcome: 'frame-fault' },
      { vector: VECTOR.PF, outcome: 'delivered', during: VECTOR.GP },
    ],
    outcome: 'oops',
    message: new RegExp(`unable to handle page fault for address: ${formatVirtual(UNMAPPED + PAGE_SIZE - 8)}`),
  },
  {
    name: 'a #GP through a not-present IDT gate raises #NP while delivering it: contributory + contributory -> #DF',
    first: 'contributory',
    second: 'contributory',
    at: 1,
    build: () =>
      oneCpu(loadNonCanonical, (m) => {
        m.cpu(0).setGate(VECTOR.GP, { ...m.cpu(0).idt[VECTOR.GP]!, present: false });
      }),
    chain: [
      { vector: VECTOR.GP, outcome: 'gate-fault' },
      { vector: VECTOR.NP, outcome: 'double-fault', during: VECTOR.GP },
      { vector: VECTOR.DF, outcome: 'delivered', during: VECTOR.GP },
    ],
    outcome: 'double-fault',
    message: /^PANIC: double fault, error_code: 0x0\n#NP while delivering #GP$/,
  },
  {
    name: 'a push with a non-canonical RSP raises #SS, whose frame push raises #SS again: -> #DF',
    first: 'contributory',
    second: 'contributory',
    at: 1,
    build: () =>
      oneCpu(pushOnce, (m) => {
        m.cpu(0).regs.rsp = NON_CANONICAL_STACK;
      }),
    chain: [
      { vector: VECTOR.SS, outcome: 'frame-fault' },
      { vector: VECTOR.SS, outcome: 'double-fault', during: VECTOR.SS },
      { vector: VECTOR.DF, outcome: 'delivered', during: VECTOR.SS },
    ],
    outcome: 'double-fault',
    message: /^PANIC: double fault/,
  },
  {
    name: 'a #PF whose frame push faults with #PF (task stack unmapped): -> #DF',
    first: 'page-fault',
    second: 'page-fault',
    at: 1,
    build: () => oneCpu(loadUnmapped, unmapTaskStackTop),
    chain: [
      { vector: VECTOR.PF, outcome: 'frame-fault' },
      { vector: VECTOR.PF, outcome: 'double-fault', during: VECTOR.PF },
      { vector: VECTOR.DF, outcome: 'delivered', during: VECTOR.PF },
    ],
    outcome: 'double-fault',
    message: /^PANIC: double fault/,
  },
  {
    name: 'a #PF whose frame push raises #SS (IST stack non-canonical): page fault + contributory -> #DF',
    first: 'page-fault',
    second: 'contributory',
    at: 1,
    build: () => oneCpu(loadUnmapped, nonCanonicalIstFor(VECTOR.PF)),
    chain: [
      { vector: VECTOR.PF, outcome: 'frame-fault' },
      { vector: VECTOR.SS, outcome: 'double-fault', during: VECTOR.PF },
      { vector: VECTOR.DF, outcome: 'delivered', during: VECTOR.PF },
    ],
    outcome: 'double-fault',
    message: /^PANIC: double fault/,
  },
  {
    name: 'an IPI whose frame push faults with #PF: the #PF is delivered (serial)',
    first: 'benign',
    second: 'page-fault',
    at: 1,
    build: () => oneCpu(selfIpi, unmappedIstFor(IPI_VECTOR)),
    chain: [
      { vector: IPI_VECTOR, outcome: 'frame-fault' },
      { vector: VECTOR.PF, outcome: 'delivered', during: IPI_VECTOR },
    ],
    outcome: 'oops',
    message: new RegExp(`unable to handle page fault for address: ${formatVirtual(UNMAPPED + PAGE_SIZE - 8)}`),
  },
  {
    name: 'an IPI with no IDT gate raises #GP: benign + contributory is serial, the #GP is delivered',
    first: 'benign',
    second: 'contributory',
    at: 1,
    build: () => oneCpu(selfIpi),
    chain: [
      { vector: IPI_VECTOR, outcome: 'gate-fault' },
      { vector: VECTOR.GP, outcome: 'delivered', during: IPI_VECTOR },
    ],
    outcome: 'oops',
    // IDT-flavoured error code: index 0xf0 << 3 | IDT (2) | EXT (1) (SDM INT n: a missing gate is #GP).
    message: /^general protection fault, error_code: 0x783 in kernel mode$/,
  },
  {
    name: 'an NMI whose IST stack is non-canonical raises #SS: benign + contributory is serial',
    first: 'benign',
    second: 'contributory',
    at: 1,
    build: () =>
      oneCpu(selfNmi, (m) => {
        m.cpu(0).tss.ist[2] = NON_CANONICAL_STACK;
      }),
    chain: [
      { vector: VECTOR.NMI, outcome: 'frame-fault' },
      { vector: VECTOR.SS, outcome: 'delivered', during: VECTOR.NMI },
    ],
    outcome: 'oops',
    // EXT (bit 0) is set: the #SS was raised while delivering an external event (SDM §6.13).
    message: /^#SS exception, error_code: 0x1 in kernel mode$/,
  },
  {
    name: 'a #PF while pushing the #DF frame (IST1 page unmapped): -> triple fault',
    first: 'double-fault',
    second: 'page-fault',
    at: 3,
    build: () =>
      oneCpu(loadUnmapped, (m) => {
        unmapTaskStackTop(m);
        unmapDoubleFaultStack(m);
      }),
    chain: [
      { vector: VECTOR.PF, outcome: 'frame-fault' },
      { vector: VECTOR.PF, outcome: 'double-fault', during: VECTOR.PF },
      { vector: VECTOR.DF, outcome: 'frame-fault', during: VECTOR.PF },
      { vector: VECTOR.PF, outcome: 'triple-fault', during: VECTOR.DF },
    ],
    outcome: 'triple-fault',
    message: /^triple fault: #PF \(error code 2\) while delivering #DF/,
  },
  {
    name: 'a #SS while pushing the #DF frame (IST1 non-canonical): -> triple fault',
    first: 'double-fault',
    second: 'contributory',
    at: 3,
    build: () =>
      oneCpu(loadUnmapped, (m) => {
        unmapTaskStackTop(m);
        m.cpu(0).tss.ist[1] = NON_CANONICAL_STACK;
      }),
    chain: [
      { vector: VECTOR.PF, outcome: 'frame-fault' },
      { vector: VECTOR.PF, outcome: 'double-fault', during: VECTOR.PF },
      { vector: VECTOR.DF, outcome: 'frame-fault', during: VECTOR.PF },
      { vector: VECTOR.SS, outcome: 'triple-fault', during: VECTOR.DF },
    ],
    outcome: 'triple-fault',
    message: /^triple fault: #SS \(error code 1\) while delivering #DF$/,
  },
  {
    name: 'a #DF through a not-present IDT gate raises #NP: -> triple fault',
    first: 'double-fault',
    second: 'contributory',
    at: 3,
    build: () =>
      oneCpu(loadUnmapped, (m) => {
        unmapTaskStackTop(m);
        m.cpu(0).setGate(VECTOR.DF, { ...m.cpu(0).idt[VECTOR.DF]!, present: false });
      }),
    chain: [
      { vector: VECTOR.PF, outcome: 'frame-fault' },
      { vector: VECTOR.PF, outcome: 'double-fault', during: VECTOR.PF },
      { vector: VECTOR.DF, outcome: 'gate-fault', during: VECTOR.PF },
      { vector: VECTOR.NP, outcome: 'triple-fault', during: VECTOR.DF },
    ],
    outcome: 'triple-fault',
    // 8 << 3 | IDT (2) | EXT (1): raised while delivering an exception.
    message: /^triple fault: #NP \(error code 67\) while delivering #DF$/,
  },
];

describe('nested faults during delivery, built end to end (SDM Table 6-5)', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const m = c.build();
    const result = m.run({ maxSteps: 100 });
    const step = faultingStep(m);
    expect(chain(step)).toEqual(c.chain);
    // The chain's classes are the pair under test, and the pair's table entry is what happened.
    const first = step.exceptions![c.at - 1]!;
    const second = step.exceptions![c.at]!;
    expect(vectorInfo(first.vector).cls).toBe(c.first);
    expect(vectorInfo(second.vector).cls).toBe(c.second);
    const action = escalate(first.vector, second.vector);
    expect(second.outcome).toBe(action === 'serial' ? 'delivered' : action);
    expect(result.outcome).toBe(c.outcome);
    expect(result.stop?.message).toMatch(c.message);
  });

  it('a serially delivered #PF (after a #GP frame fault) carries the write error code and CR2 of the frame slot', () => {
    const m = oneCpu(loadNonCanonical, unmappedIstFor(VECTOR.GP));
    m.run({ maxSteps: 100 });
    const [gp, pf] = faultingStep(m).exceptions!;
    expect(gp).toMatchObject({ vector: VECTOR.GP, errorCode: 0 });
    expect(pf).toMatchObject({
      vector: VECTOR.PF,
      errorCode: PF_ERR_WRITE,
      cr2: UNMAPPED + PAGE_SIZE - 8,
      stack: 'current',
    });
    expect(m.cpu(0).regs.cr2).toBe(UNMAPPED + PAGE_SIZE - 8);
  });

  it('an IPI whose frame push faults loses nothing else: the #PF frame goes on the current stack', () => {
    const m = oneCpu(selfIpi, unmappedIstFor(IPI_VECTOR));
    m.run({ maxSteps: 100 });
    const step = faultingStep(m);
    expect(step.op).toBe('interrupt');
    expect(step.accepted).toEqual({ vector: IPI_VECTOR, nmi: false });
    const stack = m.boot!.taskStacks[0]!;
    expect(step.exceptions![1]).toMatchObject({ stack: 'current', rsp: stack.top - 48 });
  });

  it.each([
    ['a #GP', loadNonCanonical, VECTOR.GP],
    ['an IPI', selfIpi, IPI_VECTOR],
  ] as const)('after %s whose frame push faults, cpu.lastException is the serially delivered #PF', (_n, program, v) => {
    const m = oneCpu(program, unmappedIstFor(v));
    m.run({ maxSteps: 100 });
    expect(m.cpu(0).lastException).toEqual({
      vector: VECTOR.PF,
      errorCode: PF_ERR_WRITE,
      cr2: UNMAPPED + PAGE_SIZE - 8,
    });
    expect(m.snapshot().cpus[0]!.lastException).toMatchObject({ vector: VECTOR.PF });
  });
});
