import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/machine/machine.ts';
import { runScenario } from '../../src/scenarios/catalogue.ts';

const DATA = 0xffffc90001000000n;

describe('the trace', () => {
  it('the event step() returns is the one m.trace holds for that step', () => {
    const m = Machine.create({ cpus: 1 });
    const va = m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.store(va, 8, 5);
      yield x.load(va, 8);
    });
    const first = m.step(0)!;
    const second = m.step(0)!;
    expect(m.trace).toHaveLength(2);
    expect(m.trace[0]).toBe(first);
    expect(m.trace[1]).toBe(second);
    expect(second).toMatchObject({ step: 1, cpu: 0, op: 'load', va, tlb: 'hit', value: 5, size: 8, state: 'running' });
    expect(second.exceptions).toBeUndefined();
  });

  it('a run records every step with the same fields whether it is read during or after the run', () => {
    const during: unknown[] = [];
    const m = Machine.create({ cpus: 2 });
    const va = m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.store(va, 8, 1);
      yield x.sendIpi(1, 0xf0);
    });
    for (let i = 0; i < 2; i++) during.push(JSON.parse(JSON.stringify(m.step(0))));
    const after = JSON.parse(JSON.stringify(m.trace));
    expect(after).toEqual(during);
    expect(after[1]).toMatchObject({ op: 'send-ipi', ipi: { to: [1], vector: 0xf0, mode: 'fixed' } });
  });

  it('exceptions and stops survive the columnar storage', () => {
    const { machine } = runScenario('df-triple');
    const last = machine.trace.at(-1)!;
    expect(last.exceptions?.map((e) => e.name)).toEqual(['#PF', '#PF', '#DF', '#PF']);
    expect(last.stop?.outcome).toBe('triple-fault');
    expect(last.state).toBe('shutdown');
  });

  it('clearTrace forgets recorded steps; later steps are recorded from empty', () => {
    const m = Machine.create({ cpus: 1 });
    m.load(0, function* (x) {
      for (let i = 0; i < 5; i++) yield x.pause();
    });
    m.run({ maxSteps: 3 });
    expect(m.trace).toHaveLength(3);
    m.clearTrace();
    expect(m.trace).toHaveLength(0);
    m.run();
    expect(m.trace.map((e) => [e.step, e.op])).toEqual([
      [3, 'pause'],
      [4, 'pause'],
      [5, 'exit'],
    ]);
  });

  it('with tracing off nothing is recorded and step() returns undefined', () => {
    const m = Machine.create({ cpus: 1, trace: false });
    m.load(0, function* (x) {
      yield x.pause();
    });
    expect(m.step(0)).toBeUndefined();
    expect(m.trace).toHaveLength(0);
  });
});
