import { describe, expect, it, vi } from 'vitest';
import type { StepEvent } from '../../src/cpu/step-event.ts';
import { MachineImage } from '../../src/machine/image.ts';
import { Machine, type MachineConfig } from '../../src/machine/machine.ts';
import { TraceLog } from '../../src/machine/trace-log.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { runScenario } from '../../src/scenarios/catalogue.ts';
import { IPI_VECTOR, setEoiHandler, UNMAPPED } from '../cpu/fixtures.ts';

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

/** One CPU running `n` steps: `n - 1` pauses and the exit. */
function pauses(n: number, config: MachineConfig = {}): Machine {
  const m = Machine.create({ cpus: 1, ...config });
  m.load(0, function* (x) {
    for (let i = 0; i < n - 1; i++) yield x.pause();
  });
  return m;
}

/** Counts the events the log builds (TraceLog's private build, one call per event object made). */
function countBuilds() {
  return vi.spyOn(TraceLog.prototype as unknown as { build(slot: number): StepEvent }, 'build');
}

/**
 * Two CPUs whose every few steps record something rare: CPU0 sends an IPI and takes a #PF (fixed up) on each round;
 * CPU1 accepts the IPIs, its handler EOIs.
 */
function busy(config: MachineConfig): Machine {
  const m = Machine.create({ cpus: 2, ...config });
  setEoiHandler(m, 1);
  m.load(0, function* (x) {
    for (;;) {
      yield x.sendIpi(1, IPI_VECTOR);
      yield x.load(UNMAPPED, 8, { fixup: 0 });
    }
  });
  m.load(1, function* (x) {
    for (;;) yield x.pause();
  });
  return m;
}

describe('reading the trace', () => {
  it('reading one event builds that event only, not the ones before it', () => {
    const m = pauses(1000);
    m.run();
    expect(m.traceLog.length).toBe(1000);
    const builds = countBuilds();
    try {
      const event = m.traceLog.at(500);
      expect(builds).toHaveBeenCalledTimes(1);
      expect(event).toMatchObject({ step: 500, op: 'pause' });
      expect(m.traceLog.at(500)).toBe(event);
      expect(builds).toHaveBeenCalledTimes(1);
      // Reading the whole trace builds the other 999 and keeps the one already read.
      expect(m.trace[500]).toBe(event);
      expect(builds).toHaveBeenCalledTimes(1000);
      expect(m.trace.map((e) => e.step)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    } finally {
      builds.mockRestore();
    }
  });

  it('an index outside the trace is refused, naming the index and the range', () => {
    const m = pauses(3);
    m.run();
    expect(() => m.traceLog.at(3)).toThrow(InputError);
    expect(() => m.traceLog.at(3)).toThrow(/^trace index 3 is out of range: the trace holds events 0\.\.2$/);
    expect(() => m.traceLog.at(-1)).toThrow(/^trace index -1 is out of range/);
    expect(() => new TraceLog().at(0)).toThrow(/the trace is empty$/);
  });
});

describe('traceLimit: the trace keeps the last N events', () => {
  it('a machine with traceLimit 10 that runs 1000 steps keeps the last 10, in order, and counts 990 dropped', () => {
    const capped = busy({ traceLimit: 10 });
    const full = busy({});
    expect(capped.run({ maxSteps: 1000 }).steps).toBe(1000);
    full.run({ maxSteps: 1000 });
    const kept = capped.trace;
    expect(kept).toHaveLength(10);
    expect(capped.traceLog.length).toBe(10);
    expect(capped.traceLog.dropped).toBe(990);
    expect(kept.map((e) => e.step)).toEqual(Array.from({ length: 10 }, (_, i) => 990 + i));
    // Every field, exceptions and IPIs included, is what an uncapped run of the same machine recorded.
    expect(JSON.parse(JSON.stringify(kept))).toEqual(JSON.parse(JSON.stringify(full.trace.slice(-10))));
    expect(kept.some((e) => e.exceptions?.[0]?.name === '#PF')).toBe(true);
    expect(kept.some((e) => e.ipi?.vector === IPI_VECTOR)).toBe(true);
    expect(kept.some((e) => e.accepted?.vector === IPI_VECTOR)).toBe(true);
  });

  it('memory stays bounded: the columns never outgrow the limit and evicted extras are forgotten', () => {
    const m = busy({ traceLimit: 10 });
    for (let chunk = 0; chunk < 10; chunk++) {
      m.run({ maxSteps: 100 });
      m.traceLog.at(9); // an event built by at() is forgotten when evicted, too
    }
    const log = m.traceLog as unknown as {
      capacity: number;
      extras: Map<number, unknown>;
      built: Map<number, unknown>;
    };
    expect(log.capacity).toBe(10);
    expect(log.extras.size).toBeLessThanOrEqual(10);
    expect(log.built.size).toBeLessThanOrEqual(10);
    expect(m.traceLog.dropped).toBe(990);
  });

  it('an event read before later steps is the same object while it is kept, at its new index', () => {
    const m = pauses(50, { traceLimit: 4 });
    m.run({ maxSteps: 20 });
    const newest = m.traceLog.at(3);
    const trace = m.trace;
    m.run({ maxSteps: 2 });
    expect(m.traceLog.at(1)).toBe(newest);
    expect(m.trace[1]).toBe(newest);
    expect(m.trace.map((e) => e.step)).toEqual([18, 19, 20, 21]);
    // The array read before the drop keeps what it held.
    expect(trace.map((e) => e.step)).toEqual([16, 17, 18, 19]);
  });

  it('events read while the trace is below its limit are in step order, as without a limit', () => {
    const m = pauses(5, { traceLimit: 10 });
    m.run();
    expect(m.trace.map((e) => [e.step, e.op])).toEqual([
      [0, 'pause'],
      [1, 'pause'],
      [2, 'pause'],
      [3, 'pause'],
      [4, 'exit'],
    ]);
    expect(m.traceLog.dropped).toBe(0);
  });

  it('a limit of 1 keeps the newest event', () => {
    const m = pauses(7, { traceLimit: 1 });
    m.run();
    expect(m.trace.map((e) => [e.step, e.op])).toEqual([[6, 'exit']]);
    expect(m.traceLog.dropped).toBe(6);
  });

  it('clearTrace empties a capped trace and resets the dropped count', () => {
    const m = pauses(30, { traceLimit: 5 });
    m.run({ maxSteps: 20 });
    expect(m.traceLog.dropped).toBe(15);
    m.clearTrace();
    expect(m.trace).toEqual([]);
    expect(m.traceLog.dropped).toBe(0);
    m.run();
    expect(m.trace.map((e) => e.step)).toEqual([25, 26, 27, 28, 29]);
    expect(m.traceLog.dropped).toBe(5);
  });

  it('IPI deliveries held in flight are events like steps: the limit counts and evicts them too', () => {
    const m = Machine.create({ cpus: 2, ipiDelivery: 'scheduled', traceLimit: 3 });
    m.load(0, function* (x) {
      yield x.sendIpi(1, IPI_VECTOR);
    });
    m.load(1, function* (x) {
      for (let i = 0; i < 5; i++) yield x.pause();
    });
    m.run({ schedule: '0,1,deliver:1' });
    expect(m.trace.map((e) => e.op)).toEqual(['send-ipi', 'pause', 'deliver']);
    expect(m.trace[2]!.ipi).toEqual({ to: [1], vector: IPI_VECTOR, mode: 'fixed', from: 0 });
    m.run({ schedule: '1' });
    expect(m.trace.map((e) => e.op)).toEqual(['pause', 'deliver', 'interrupt']);
    expect(m.traceLog.dropped).toBe(1);
  });

  it('an image passes the limit on to the machines made from it', () => {
    const image = MachineImage.capture(pauses(20, { traceLimit: 3 }));
    const m = image.instantiate();
    expect(m.traceLog.limit).toBe(3);
    m.run();
    expect(m.trace.map((e) => e.step)).toEqual([17, 18, 19]);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '10', null, true])(
    'traceLimit %s is refused with an InputError naming the value and the rule',
    (traceLimit) => {
      const create = () => Machine.create({ traceLimit: traceLimit as never });
      expect(create).toThrow(InputError);
      expect(create).toThrow(/^Machine\.create option traceLimit .+ must be an integer >= 1/);
    },
  );

  it('no traceLimit (or undefined) keeps every event', () => {
    const m = pauses(3000, { traceLimit: undefined });
    m.run();
    expect(m.trace).toHaveLength(3000);
    expect(m.traceLog.limit).toBe(Number.POSITIVE_INFINITY);
    expect(m.traceLog.dropped).toBe(0);
  });
});
