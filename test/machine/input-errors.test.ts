import { describe, expect, it } from 'vitest';
import { Assembler, type Program } from '../../src/cpu/assembler.ts';
import type { Instruction } from '../../src/cpu/instruction.ts';
import { Machine } from '../../src/machine/machine.ts';
import { parseSchedule } from '../../src/machine/schedule.ts';
import { InputError, toVirtual } from '../../src/mmu/address.ts';
import { DATA, IPI_VECTOR } from '../cpu/fixtures.ts';

/** Runs `f` and returns what it threw (failing the test when it did not throw). */
function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error, none was thrown');
}

function expectInputError(f: () => unknown, message: RegExp): void {
  const error = thrown(f);
  expect(error).toBeInstanceOf(InputError);
  expect(error.message).toMatch(message);
}

describe('machine configuration', () => {
  it.each([0, 65, -1, 1.5])('cpus: %s is refused, naming the value and the range 1..64', (cpus) => {
    expectInputError(
      () => Machine.create({ cpus }),
      new RegExp(`^cpus ${cpus} is impossible: a machine has 1\\.\\.64 CPUs`),
    );
  });

  it('1 and 64 CPUs are fine', () => {
    expect(Machine.create({ cpus: 1 }).cpus).toHaveLength(1);
    expect(Machine.create({ cpus: 64 }).cpus).toHaveLength(64);
  });

  it('memory that is not a page multiple, or too small to boot, is refused naming the size', () => {
    expectInputError(() => Machine.create({ memory: 1000 }), /memory size 1000 must be a positive multiple/);
    expectInputError(() => Machine.create({ memory: 1024 * 1024 }), /memory of 1048576 bytes is too small to boot/);
  });
});

describe('CPU ids', () => {
  const m = () => Machine.create({ cpus: 2 });

  it('step, load, runnable, evictTlb and fillTlb name a CPU that does not exist', () => {
    const machine = m();
    const program = function* (x: Assembler) {
      yield x.pause();
    };
    const noCpu = /^CPU 2 does not exist: this machine has CPUs 0\.\.1$/;
    expectInputError(() => machine.step(2), noCpu);
    expectInputError(() => machine.load(2, program), noCpu);
    expectInputError(() => machine.runnable(2), noCpu);
    expectInputError(() => machine.evictTlb(2, DATA), noCpu);
    expectInputError(() => machine.fillTlb(2, DATA), noCpu);
    expectInputError(() => machine.cpu(-1), /^CPU -1 does not exist/);
    // Nothing happened: the machine still runs.
    machine.load(0, program);
    expect(machine.run()).toMatchObject({ outcome: 'ok', steps: 2 });
  });

  it('a schedule naming an unknown CPU is refused before any step runs', () => {
    const machine = m();
    machine.load(0, function* (x) {
      yield x.pause();
    });
    expectInputError(
      () => machine.run({ schedule: '0,7' }),
      /^schedule entry 1 names CPU 7, which does not exist \(0\.\.1\)/,
    );
    expectInputError(
      () => machine.run({ schedule: [0, { cpu: 3, tlb: 'evict', va: DATA }] }),
      /^schedule entry 1 names CPU 3, which does not exist/,
    );
    expect(machine.stepCount).toBe(0);
    expect(machine.trace).toEqual([]);
    expect(machine.run({ schedule: '0' }).steps).toBe(1);
  });

  it('loading a second program on a CPU is refused', () => {
    const machine = m();
    const program = function* (x: Assembler) {
      yield x.pause();
    };
    machine.load(0, program);
    expectInputError(() => machine.load(0, program), /^CPU 0 already runs a program/);
  });

  it('an IPI to a CPU that does not exist fails clearly and reaches no CPU', () => {
    const machine = m();
    machine.load(0, function* (x) {
      yield x.sendIpi([1, 7], IPI_VECTOR);
    });
    expectInputError(() => machine.step(0), /CPU 7 does not exist/);
    expect(machine.snapshot().cpus[1]!.apic.pending).toEqual([]);
  });
});

describe('schedule strings', () => {
  it.each([
    ['x', /^malformed schedule token 'x': a schedule is a comma- or space-separated list/],
    ['0;1', /^malformed schedule token '0;1'/],
    ['-1', /^malformed schedule token '-1'/],
    ['1*', /^malformed schedule token '1\*'/],
    ['1*0', /^schedule token '1\*0': repeat count must be 1\.\.1000000/],
    ['evict:1', /^malformed schedule token 'evict:1'/],
    ['flush:0:0x1000', /^malformed schedule token 'flush:0:0x1000'/],
    ['evict:1:0xnothex', /^schedule token 'evict:1:0xnothex': address '0xnothex' is not a number/],
    ['fill:0:0x1ffffc90000001000', /^schedule token 'fill:0:0x1ffffc90000001000': address .* does not fit in 64 bits/],
  ])('"%s" is refused, naming the token', (token, message) => {
    expectInputError(() => parseSchedule(`0,${token},1`), message);
  });

  it('a malformed string given to run() is refused before any step', () => {
    const machine = Machine.create({ cpus: 1 });
    machine.load(0, function* (x) {
      yield x.pause();
    });
    expectInputError(() => machine.run({ schedule: '0,zero' }), /'zero'/);
    expect(machine.stepCount).toBe(0);
  });

  it('a TLB event at a non-canonical address is refused, naming the token', () => {
    expectInputError(() => parseSchedule('evict:0:0x0000800000000000'), /evict:0:0x0000800000000000.*canonical/);
  });

  it('bad run options name the value', () => {
    const machine = Machine.create({ cpus: 1 });
    expectInputError(() => machine.run({ maxSteps: -1 }), /^maxSteps -1 must be an integer >= 0$/);
    expectInputError(() => machine.run({ schedule: 'random', seed: 1.5 }), /^seed 1\.5 must be an integer$/);
  });
});

describe('addresses', () => {
  it('toVirtual names a malformed or oversized address', () => {
    expectInputError(() => toVirtual('0xffffc9000000100g'), /^address '0xffffc9000000100g' is not a number/);
    expectInputError(() => toVirtual('0x1ffffc90000001000'), /0x1ffffc90000001000 does not fit in 64 bits/);
    expectInputError(() => toVirtual(-4096), /^address -4096 is not a virtual address/);
  });

  it('map() refuses a non-canonical or unaligned address, naming it', () => {
    const machine = Machine.create({ cpus: 1 });
    expectInputError(
      () => machine.map(0x0000_8000_0000_0000n),
      /^map\(0x0000800000000000\): the address must be canonical and 4 KiB aligned$/,
    );
    expectInputError(
      () => machine.map(0xffff_c900_0100_0008n),
      /^map\(0xffffc90001000008\): the address must be canonical and 4 KiB aligned$/,
    );
    expect(machine.map(DATA)).toBe(DATA); // still usable
  });

  it('directMap() and pteAddress() name an address outside memory or without page tables', () => {
    const machine = Machine.create({ cpus: 1 });
    expectInputError(() => machine.directMap(machine.memory.size), /^physical address 0x4000000 is outside memory/);
    expectInputError(() => machine.directMap(-1), /physical address .* is outside memory/);
    expectInputError(
      () => machine.pteAddress(0x0000_1000_0000_0000n),
      /^0x0000100000000000 has no page table down to its leaf entry$/,
    );
  });
});

describe('bad instructions inside programs', () => {
  function twoCpus(bad: (x: Assembler) => Instruction) {
    const machine = Machine.create({ cpus: 2 });
    machine.map(DATA, { writable: true });
    machine.load(0, function* (x) {
      yield bad(x);
    });
    machine.load(1, function* (x) {
      yield x.pause();
      yield x.pause();
    });
    return machine;
  }

  it.each([
    ['access size 3', (x: Assembler) => x.load(DATA, 3), /^CPU 0 load access size 3 is not one of 1, 2, 4, 8 bytes$/],
    [
      'store size 16',
      (x: Assembler) => x.store(DATA, 16, 0),
      /^CPU 0 store access size 16 is not one of 1, 2, 4, 8 bytes$/,
    ],
    [
      'IPI vector 5',
      (x: Assembler) => x.sendIpi(1, 5),
      /^CPU 0 send-ipi vector 5 is illegal: fixed IPIs use vectors 16\.\.255/,
    ],
    ['IPI vector 256', (x: Assembler) => x.sendIpi(1, 256), /^CPU 0 send-ipi vector 256 is illegal/],
  ] as const)('%s: step() throws a clear InputError and stops only that CPU', (_name, bad, message) => {
    const machine = twoCpus(bad);
    expectInputError(() => machine.step(0), message);
    expect(machine.cpu(0).state).toBe('stopped');
    expect(machine.cpu(0).stopEvent).toMatchObject({ outcome: 'assertion' });
    expect(machine.cpu(0).stopEvent!.message).toMatch(/^program threw at RIP 0xffffffff8\w+: /);
    // The run's outcome records the stop; the other CPU is unaffected and can still be stepped.
    expect(machine.outcome).toBe('assertion');
    expect(machine.run()).toMatchObject({ outcome: 'assertion', steps: 0, stop: { cpu: 0, step: 0 } });
    expect(machine.step(1)?.op).toBe('pause');
    expect(machine.step(1)?.op).toBe('pause');
    expect(machine.step(1)?.op).toBe('exit');
    expect(machine.cpu(1).state).toBe('halted');
  });

  it('the assembler refuses an address that is not an integer, naming it', () => {
    const x = new Assembler(0);
    expectInputError(() => x.load(DATA + 0.5, 8), /^CPU 0 load address \d+\.5 is not a virtual address/);
    expectInputError(() => x.store(Number.NaN, 8, 0), /^CPU 0 store address NaN is not a virtual address/);
    expectInputError(
      () => x.cmpxchg(Number.POSITIVE_INFINITY, 8, 0, 1),
      /^CPU 0 cmpxchg address Infinity is not a virtual address/,
    );
    expect(x.load(DATA, 8).va).toBe(DATA); // and builds the next one normally
  });

  it('the assembler refuses a bad size or vector directly, too', () => {
    const x = new Assembler(0);
    expectInputError(() => x.load(DATA, 3), /access size 3/);
    expectInputError(() => x.cmpxchg(DATA, 0, 0, 1), /access size 0/);
    expectInputError(() => x.sendIpi(1, 15), /send-ipi vector 15 is illegal/);
    expect(x.sendIpi(1, 2, 'nmi').value).toBe(2); // NMI takes no fixed vector
  });

  it('after a program throws, the machine reports that CPU stop as its outcome', () => {
    const machine = twoCpus((x) => x.load(DATA, 3));
    expect(() => machine.step(0)).toThrow(InputError);
    expect(machine.outcome).toBe('assertion');
    expect(machine.run().outcome).toBe('assertion');
  });

  it('a program that yields something other than an instruction is named', () => {
    const machine = Machine.create({ cpus: 1 });
    machine.load(0, function* () {
      yield 5 as unknown as Instruction;
    });
    expectInputError(() => machine.step(0), /^CPU 0 program yielded 5, not an instruction/);
  });

  it('a program that is not a generator function is refused at load, leaving the CPU free for a real one', () => {
    const machine = Machine.create({ cpus: 1 });
    const notAGenerator = (() => [] as unknown as Generator<Instruction>) as unknown as Program;
    expectInputError(
      () => machine.load(0, notAGenerator),
      /^program notAGenerator is not a generator function: write programs as function\* \(x\)/,
    );
    expect(machine.cpu(0).started).toBe(false);
    machine.load(0, function* (x) {
      yield x.pause();
    });
    expect(machine.run().outcome).toBe('ok');
  });

  it('an IDT vector out of range is refused', () => {
    const machine = Machine.create({ cpus: 1 });
    expectInputError(
      () => machine.cpu(0).setGate(256, { handler: function* () {}, ist: 0, type: 'interrupt' }),
      /^CPU 0 setGate\(256\): IDT vector 256 must be an integer in 0\.\.255$/,
    );
  });
});

describe('stepping a stopped CPU', () => {
  it('is refused with the state and the reason it stopped; other CPUs still step', () => {
    const machine = Machine.create({ cpus: 2 });
    machine.load(0, function* (x) {
      yield x.die('oops', 'BUG: something\nmore detail');
    });
    machine.load(1, function* (x) {
      yield x.pause();
    });
    machine.step(0);
    expectInputError(() => machine.step(0), /^CPU 0 cannot step: it is stopped \(oops: BUG: something\)$/);
    expect(machine.step(1)?.op).toBe('pause');
    expect(machine.snapshot().cpus[0]!.stop).toEqual({ outcome: 'oops', message: 'BUG: something\nmore detail' });
  });

  it('an assertion that fails stops the CPU with its message', () => {
    const machine = Machine.create({ cpus: 1 });
    machine.load(0, function* (x) {
      yield x.assert(() => false, 'the lock is held');
    });
    expect(machine.run()).toMatchObject({ outcome: 'assertion', stop: { message: 'the lock is held' } });
    expectInputError(() => machine.step(0), /cannot step: it is stopped \(assertion: the lock is held\)/);
  });
});
