import { describe, expect, it } from 'vitest';
import { DEFAULT_COSTS } from '../../src/machine/cost-model.ts';
import { Machine } from '../../src/machine/machine.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { runScenario } from '../../src/scenarios/catalogue.ts';

const DATA = 0xffffc90001000000n;
const C = DEFAULT_COSTS;

describe('the cost model and the timed schedule', () => {
  it('a step costs what the model says: a TLB miss adds a walk, an atomic and a pause cost theirs', () => {
    const m = Machine.create({ cpus: 1, trace: false });
    const data = m.map(DATA, { writable: true });
    const seen: number[] = [];
    m.load(0, function* (x) {
      yield x.store(data, 8, 1); // TLB miss: walk + store
      yield x.store(data + 8, 8, 2); // hit
      yield x.xchg(data, 8, 3);
      yield x.pause();
      seen.push(yield x.rdtsc());
    });
    m.run({ schedule: 'timed' });
    const expected = 4 * C.pageWalkLevel + C.instruction + C.instruction + C.atomicRmw + C.pause;
    expect(seen).toEqual([Math.floor(expected)]);
    expect(m.clocks[0]).toBeCloseTo(expected + 2 * C.instruction, 9); // then the rdtsc itself, and the exit
  });

  it('the CPU whose clock is lowest steps next: cheap steps run while an expensive one is counted', () => {
    const m = Machine.create({ cpus: 2, trace: true });
    const data = m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.load(data, 8);
      for (let i = 0; i < 2; i++) yield x.pause(); // 47 ns each
    });
    m.load(1, function* (x) {
      yield x.load(data + 8, 8);
      for (let i = 0; i < 40; i++) yield x.load(data + 8, 8); // 1.3 ns each
    });
    m.run({ schedule: 'timed' });
    const order = m.trace.map((e) => e.cpu);
    // CPU0's first pause (at ~16 ns) puts its clock at ~63 ns: CPU1 then runs until it passes that.
    const firstPause = m.trace.findIndex((e) => e.cpu === 0 && e.op === 'pause');
    const after = order.slice(firstPause + 1, firstPause + 30);
    expect(after.every((cpu) => cpu === 1)).toBe(true);
  });

  it('an IPI held in flight reaches its target the delivery latency after it was sent', () => {
    const m = Machine.create({ cpus: 2, trace: true, ipiDelivery: 'scheduled' });
    let accepted = -1;
    m.cpu(1).setGate(0xf0, {
      handler: function* (x) {
        accepted = yield x.rdtsc();
        yield x.eoi();
      },
      ist: 0,
      type: 'interrupt',
    });
    let sent = -1;
    m.load(0, function* (x) {
      sent = yield x.rdtsc();
      yield x.sendIpi(1, 0xf0);
    });
    m.load(1, function* (x) {
      yield x.sti();
      yield x.hlt();
    });
    m.run({ schedule: 'timed' });
    expect(m.outcome).toBe('ok');
    expect(accepted).toBeGreaterThanOrEqual(sent + C.ipiDelivery);
    expect(accepted).toBeLessThan(sent + C.ipiDelivery + C.ipiSendPerTarget + C.exceptionEntry + 10);
  });

  it('a timed run is deterministic, and the costs can be set', () => {
    const a = runScenario('stack-migration', { protocol: 'ipi-switcheroo', rounds: 50 }, { trace: true, timed: true });
    const b = runScenario('stack-migration', { protocol: 'ipi-switcheroo', rounds: 50 }, { trace: true, timed: true });
    expect(a.report).toEqual(b.report);
    expect(a.machine.trace.map((e) => [e.cpu, e.op])).toEqual(b.machine.trace.map((e) => [e.cpu, e.op]));

    const slow = Machine.create({ cpus: 1, trace: false });
    const fast = Machine.create({ cpus: 1, trace: false });
    for (const m of [slow, fast]) {
      m.load(0, function* (x) {
        yield x.pause();
      });
    }
    slow.run({ schedule: 'timed', costs: { pause: 1000 } });
    fast.run({ schedule: 'timed' });
    expect(slow.clocks[0]! - fast.clocks[0]!).toBeCloseTo(1000 - C.pause, 9);
  });

  it('bad costs are refused, naming the value; costs belong to the timed schedule', () => {
    const m = Machine.create({ cpus: 1, trace: false });
    m.load(0, function* (x) {
      yield x.pause();
    });
    expect(() => m.run({ schedule: 'timed', costs: { pause: -1 } })).toThrow(/cost pause -1 must be a finite number/);
    expect(() => m.run({ schedule: 'timed', costs: { warp: 1 } as never })).toThrow(InputError);
    expect(() => m.run({ schedule: 'timed', costs: { copyBytesPerNs: 0 } })).toThrow(/copyBytesPerNs/);
    expect(() => m.run({ costs: { pause: 1 } })).toThrow(/costs are used by schedule 'timed'/);
    expect(m.stepCount).toBe(0);
  });

  it('the switcheroo, timed: migration latency, the task CPU stall, the IPI round trips and the lock hold time, in nanoseconds', () => {
    const run = runScenario(
      'stack-migration',
      { protocol: 'ipi-switcheroo', rounds: 200 },
      { trace: false, timed: true },
    );
    expect(run.result.outcome).toBe('ok');
    const ns = run.report!.timedNs as Record<string, number>;
    const copy = 4096 / C.copyBytesPerNs;
    expect(ns.migration).toBeGreaterThan(copy + 2 * C.ipiDelivery); // the copy, and two synchronous IPI trips
    expect(ns.ipiCalls).toBe(2); // the switcheroo, then the flush of the others
    expect(ns.ipiRoundTrip).toBeGreaterThan(C.ipiDelivery);
    expect(ns.taskStall).toBeGreaterThan(copy); // the task's CPU did the copy in its handler
    // The move runs under the migration lock: held for both round trips and the copy.
    expect(ns.lockHold).toBeGreaterThan(2 * ns.ipiRoundTrip! - C.ipiDelivery);
    expect(ns.lockHold).toBeLessThanOrEqual(ns.migration!);
  });
});
