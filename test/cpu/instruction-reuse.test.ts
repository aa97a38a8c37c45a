import { describe, expect, it } from 'vitest';
import { StaleInstructionError } from '../../src/cpu/instruction.ts';
import { Machine } from '../../src/machine/machine.ts';

const DATA = 0xffffc90001000000n;

describe('load, store, push, pop, xchg and cmpxchg reuse one instruction object per CPU', () => {
  it('yielding each instruction as it is built runs them all, with the right operands', () => {
    const m = Machine.create({ cpus: 1 });
    const va = m.map(DATA, { writable: true });
    const seen: number[] = [];
    m.load(0, function* (x) {
      for (let i = 1; i <= 3; i++) yield x.store(va + 8 * i, 8, i * 10);
      for (let i = 1; i <= 3; i++) seen.push(yield x.load(va + 8 * i, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([10, 20, 30]);
  });

  it('building two before yielding is a clear error, not a silently different instruction', () => {
    const m = Machine.create({ cpus: 1 });
    const va = m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      const first = x.load(va, 8);
      x.store(va, 8, 1);
      yield first;
    });
    expect(() => m.run()).toThrow(StaleInstructionError);
    expect(() => m.run()).not.toThrow(); // the run is over: the CPU stopped
    expect(m.outcome).toBe('assertion');
    expect(m.cpu(0).stopEvent?.message).toMatch(
      /CPU 0 program yielded a load\/store\/push\/pop\/xchg\/cmpxchg after building 2 of them/,
    );
  });

  it('yielding the same load twice is a clear error', () => {
    const m = Machine.create({ cpus: 1 });
    const va = m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      const ins = x.load(va, 8);
      yield ins;
      yield ins;
    });
    expect(() => m.run()).toThrow(/it had already yielded/);
  });

  it('a faulting load keeps its operands while the #PF handler builds its own loads and stores', () => {
    const m = Machine.create({ cpus: 1 });
    const va = m.map(DATA, { writable: true });
    const scratch = m.map(DATA + 0x1000n, { writable: true });
    const pte = m.directMap(m.pteAddress(va));
    const cpu = m.cpu(0);
    cpu.setGate(14, {
      ist: 0,
      type: 'interrupt',
      *handler(x) {
        yield x.store(scratch, 8, 7); // refills the reused instruction
        const low = yield x.load(pte, 4);
        yield x.store(pte, 4, low | 1); // map the page back; returning re-executes the load
      },
    });
    let value = -1;
    m.load(0, function* (x) {
      yield x.store(va, 8, 99);
      const low = yield x.load(pte, 4);
      yield x.store(pte, 4, low & ~1);
      yield x.invlpg(va);
      value = yield x.load(va, 8);
    });
    expect(m.run().outcome).toBe('ok');
    expect(value).toBe(99);
  });

  it('xchg and cmpxchg are built in the same object: each has its own operands, a cmpxchg its own expected value', () => {
    const m = Machine.create({ cpus: 1 });
    const va = m.map(DATA, { writable: true });
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.store(va, 8, 5);
      seen.push(yield x.cmpxchg(va, 8, 5, 6)); // swaps
      seen.push(yield x.load(va, 8));
      seen.push(yield x.cmpxchg(va, 8, 5, 7)); // 6 is not 5: no swap
      seen.push(yield x.xchg(va, 4, 9));
      seen.push(yield x.load(va, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([5, 6, 6, 6, 9]);
  });

  it('building an xchg and then a load before yielding the xchg is a StaleInstructionError', () => {
    const m = Machine.create({ cpus: 1 });
    const va = m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      const swap = x.xchg(va, 8, 1);
      x.load(va, 8);
      yield swap;
    });
    expect(() => m.run()).toThrow(StaleInstructionError);
  });

  it('a faulting xchg and cmpxchg keep their operands while the #PF handler builds its own instructions', () => {
    const m = Machine.create({ cpus: 1 });
    const va = m.map(DATA, { writable: true });
    const scratch = m.map(DATA + 0x1000n, { writable: true });
    const pte = m.directMap(m.pteAddress(va));
    let faults = 0;
    m.cpu(0).setGate(14, {
      ist: 0,
      type: 'interrupt',
      *handler(x) {
        faults++;
        yield x.xchg(scratch, 8, 7); // refills the reused instruction
        yield x.cmpxchg(scratch, 8, 7, 8);
        const low = yield x.load(pte, 4);
        yield x.store(pte, 4, low | 1); // map the page back; returning re-executes the faulted instruction
      },
    });
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.store(va, 8, 99);
      for (const locked of ['xchg', 'cmpxchg'] as const) {
        const low = yield x.load(pte, 4);
        yield x.store(pte, 4, low & ~1);
        yield x.invlpg(va);
        seen.push(yield locked === 'xchg' ? x.xchg(va, 8, 42) : x.cmpxchg(va, 8, 42, 43));
      }
      seen.push(yield x.load(va, 8));
    });
    expect(m.run().outcome).toBe('ok');
    expect(faults).toBe(2);
    expect(seen).toEqual([99, 42, 43]);
  });
});
