import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import type { HandlerContext } from '../../src/cpu/registers.ts';
import { Machine } from '../../src/machine/machine.ts';
import { formatSchedule, parseSchedule, type ScheduleEntry } from '../../src/machine/schedule.ts';
import { formatVirtual, PAGE_SIZE } from '../../src/mmu/address.ts';
import { type Body, clearPresent, DATA, FLAGS, IPI_VECTOR } from '../cpu/fixtures.ts';

/** Three CPUs contending: a cmpxchg spinlock around a counter, a flag handshake, and an IPI. */
function contended(): Machine {
  const m = Machine.create({ cpus: 3 });
  m.map(DATA, { writable: true });
  m.map(FLAGS, { writable: true });
  const lock = FLAGS;
  const counter = DATA;
  for (const cpu of m.cpus) {
    cpu.setGate(IPI_VECTOR, {
      handler: function* (x) {
        const mine = DATA + 8 * (1 + x.cpuId); // a per-CPU count of IPIs handled
        const v = yield x.load(mine, 8);
        yield x.store(mine, 8, v + 1);
        yield x.eoi();
      },
      ist: 0,
      type: 'interrupt',
    });
  }
  const worker = function* (x: Assembler, rounds: number): Body {
    for (let i = 0; i < rounds; i++) {
      while ((yield x.cmpxchg(lock, 4, 0, 1)) !== 0) yield x.spinUntil(lock, 4, (v) => v === 0);
      const v = yield x.load(counter, 8);
      yield x.store(counter, 8, v + 1);
      yield x.store(lock, 4, 0);
    }
    yield x.sendIpi('all-but-self', IPI_VECTOR);
    yield x.spinUntil(counter, 8, (v) => v === 6);
  };
  m.load(0, worker, 2);
  m.load(1, worker, 2);
  m.load(2, worker, 2);
  return m;
}

const runJson = (m: Machine, options: Parameters<Machine['run']>[0]) => {
  const result = m.run(options);
  return JSON.stringify({ result, trace: m.trace, snapshot: m.snapshot() });
};

describe('determinism', () => {
  it('the same programs, schedule policy and seed give the same trace, bit for bit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
        expect(runJson(contended(), { schedule: 'random', seed })).toBe(
          runJson(contended(), { schedule: 'random', seed }),
        );
      }),
      { numRuns: 15 },
    );
    expect(runJson(contended(), {})).toBe(runJson(contended(), {}));
  });

  it('the contended run is correct under every seed tried: the lock protects the counter', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const m = contended();
      const result = m.run({ schedule: 'random', seed });
      expect(result.outcome).toBe('ok');
      expect(m.memory.read64(m.physicalAddress(DATA)!)).toBe(6);
      // Each CPU got IPIs from the two others: handled once or twice (two pending IPIs of one vector coalesce).
      for (const cpu of [0, 1, 2]) {
        const handled = m.memory.read64(m.physicalAddress(DATA + 8 * (1 + cpu))!);
        expect(handled === 1 || handled === 2).toBe(true);
      }
    }
  });

  it('different seeds explore different interleavings; random differs from round-robin', () => {
    const orders = new Set<string>();
    for (let seed = 1; seed <= 8; seed++) {
      const m = contended();
      m.run({ schedule: 'random', seed });
      orders.add(m.trace.map((e) => e.cpu).join(''));
    }
    expect(orders.size).toBeGreaterThan(1);
    const rr = contended();
    rr.run();
    expect(orders.has(rr.trace.map((e) => e.cpu).join(''))).toBe(false);
    expect(rr.trace.slice(0, 6).map((e) => e.cpu)).toEqual([0, 1, 2, 0, 1, 2]);
  });

  it("a random run's CPU order, replayed as an explicit schedule string, reproduces it exactly", () => {
    const m = contended();
    m.run({ schedule: 'random', seed: 42 });
    const schedule = formatSchedule(m.trace.map((e) => e.cpu));
    const replay = contended();
    replay.run({ schedule });
    expect(JSON.stringify(replay.trace)).toBe(JSON.stringify(m.trace));
  });
});

describe('explicit schedules', () => {
  function twoLoaders() {
    const m = Machine.create({ cpus: 2 });
    m.map(DATA, { writable: true });
    const reader = function* (x: Assembler): Body {
      for (let i = 0; i < 4; i++) yield x.load(DATA, 8);
    };
    m.load(0, reader);
    m.load(1, reader);
    return m;
  }

  it('"0,1*3" steps CPU 0 once then CPU 1 three times, and stops where the schedule ends', () => {
    const m = twoLoaders();
    const result = m.run({ schedule: '0,1*3' });
    expect(m.trace.map((e) => e.cpu)).toEqual([0, 1, 1, 1]);
    expect(result).toMatchObject({ outcome: 'ok', steps: 4, limitReached: false });
    expect(m.runnable(0) && m.runnable(1)).toBe(true);
  });

  it('an evict event drops one CPU TLB entry between steps: the next access misses', () => {
    const m = twoLoaders();
    m.run({ schedule: `1,1,evict:1:${formatVirtual(DATA)},1,0` });
    expect(m.trace.map((e) => `${e.cpu}:${e.tlb}`)).toEqual(['1:miss', '1:hit', '1:miss', '0:miss']);
  });

  it('a fill event caches a translation speculatively: the first access hits', () => {
    const m = twoLoaders();
    m.run({ schedule: `fill:0:${formatVirtual(DATA)},0,1` });
    expect(m.trace.map((e) => `${e.cpu}:${e.tlb}`)).toEqual(['0:hit', '1:miss']);
  });

  it('TLB events are not steps, and an array schedule means the same as its string', () => {
    const a = twoLoaders();
    const b = twoLoaders();
    const entries: ScheduleEntry[] = [0, { cpu: 0, tlb: 'evict', va: DATA }, 0, 1];
    const ra = a.run({ schedule: entries });
    const rb = b.run({ schedule: formatSchedule(entries) });
    expect(ra.steps).toBe(3);
    expect(rb.steps).toBe(3);
    expect(JSON.stringify(a.trace)).toBe(JSON.stringify(b.trace));
  });

  it('an eviction, a cleared PTE and a push make a double fault with no IPI at all', () => {
    const build = () => {
      const m = Machine.create({ cpus: 2 });
      const page = m.boot!.taskStacks[0]!.top - PAGE_SIZE;
      m.load(0, function* (x) {
        yield x.push(1);
        yield x.push(2);
      });
      m.load(1, function* (x) {
        yield* clearPresent(x, m, page); // a naive migration of CPU 0's stack page
      });
      return { m, page };
    };
    const stale = build();
    expect(stale.m.run({ schedule: '0,1,1,0' }).outcome).toBe('ok'); // the stale entry still translates
    const evicted = build();
    const result = evicted.m.run({ schedule: `0,1,1,evict:0:${formatVirtual(evicted.page)},0,0` });
    expect(result.outcome).toBe('double-fault');
    expect(result.stop).toMatchObject({
      cpu: 0,
      message: expect.stringMatching(/^PANIC: double fault, error_code: 0x0\n#PF at .* while delivering #PF at /),
    });
    expect(evicted.m.trace.at(-2)!.exceptions!.map((e) => e.name)).toEqual(['#PF', '#PF', '#DF']);
  });

  it('parseSchedule and formatSchedule are inverses', () => {
    const entry = fc.oneof(
      fc.integer({ min: 0, max: 63 }),
      fc.record({
        cpu: fc.integer({ min: 0, max: 63 }),
        tlb: fc.constantFrom('evict' as const, 'fill' as const),
        va: fc.integer({ min: 0, max: 2 ** 48 / PAGE_SIZE - 1 }).map((p) => p * PAGE_SIZE),
      }),
    );
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 30 }), (entries) => {
        expect(parseSchedule(formatSchedule(entries))).toEqual(entries);
      }),
    );
    expect(parseSchedule('0 1*2,, 2')).toEqual([0, 1, 1, 2]);
    expect(formatSchedule([1, 1, 1, 0, 2, 2])).toBe('1*3,0,2*2');
  });
});

describe('blocked CPUs and deadlock', () => {
  it('the only CPU spinning on a value no one writes is a deadlock, reported at once', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(FLAGS, { writable: true });
    m.load(0, function* (x) {
      yield x.spinUntil(FLAGS, 8, (v) => v === 1);
    });
    const result = m.run({ maxSteps: 1000 });
    expect(result).toMatchObject({ outcome: 'deadlock', steps: 1, limitReached: false });
    expect(result.cpus).toEqual([{ id: 0, state: 'blocked' }]);
    expect(m.outcome).toBe('deadlock');
  });

  it('a deadlock with a finished CPU: the spinner waits for a write that will never come', () => {
    const m = Machine.create({ cpus: 2 });
    m.map(FLAGS, { writable: true });
    m.load(0, function* (x) {
      yield x.spinUntil(FLAGS, 8, (v) => v === 1);
    });
    m.load(1, function* (x) {
      yield x.store(FLAGS, 8, 2);
    });
    expect(m.run().outcome).toBe('deadlock');
    expect(m.cpu(1).state).toBe('halted');
  });

  it('a blocked CPU is skipped by round-robin until its bytes are written, then re-checks its condition', () => {
    const m = Machine.create({ cpus: 2 });
    m.map(FLAGS, { writable: true });
    let seen = 0;
    m.load(0, function* (x) {
      seen = yield x.spinUntil(FLAGS, 8, (v) => v === 1);
    });
    m.load(1, function* (x) {
      yield x.store(FLAGS + 8, 8, 5); // next to the watched bytes: no wake-up
      yield x.store(FLAGS, 8, 2); // wakes CPU 0, which blocks again
      yield x.store(FLAGS, 8, 1); // wakes CPU 0, whose condition now holds
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.trace.map((e) => `${e.cpu}:${e.op}:${e.state}`)).toEqual([
      '0:spin-until:blocked',
      '1:store:running',
      '1:store:running',
      '0:spin-until:blocked',
      '1:store:running',
      '0:spin-until:running',
      '1:exit:halted',
      '0:exit:halted',
    ]);
    expect(seen).toBe(1);
  });

  it('a wait-until resumes its program with 1, not the value that met the condition; the trace shows each value read', () => {
    const m = Machine.create({ cpus: 2 });
    m.map(FLAGS, { writable: true });
    let seen = 0;
    m.load(0, function* (x) {
      seen = yield x.waitUntil(FLAGS, 8, (v) => v >= 2);
    });
    m.load(1, function* (x) {
      yield x.store(FLAGS, 8, 1); // wakes CPU 0, which blocks again
      yield x.store(FLAGS, 8, 7);
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toBe(1);
    const spins = m.trace.filter((e) => e.op === 'spin-until');
    expect(spins.map((e) => `${e.state}:${e.value}`)).toEqual(['blocked:0', 'blocked:1', 'running:7']);
  });

  it('an IPI interrupts a spinning CPU; after iret the spin re-checks', () => {
    const m = Machine.create({ cpus: 2 });
    m.map(FLAGS, { writable: true });
    const handled: HandlerContext[] = [];
    m.cpu(0).setGate(IPI_VECTOR, {
      handler: function* (x, ctx) {
        handled.push(ctx);
        yield x.store(FLAGS, 8, 1); // the handler releases the spin itself
        yield x.eoi();
      },
      ist: 0,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      yield x.spinUntil(FLAGS, 8, (v) => v === 1);
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, IPI_VECTOR);
    });
    expect(m.run().outcome).toBe('ok');
    expect(handled).toHaveLength(1);
    expect(m.trace.filter((e) => e.cpu === 0).map((e) => e.op)).toEqual([
      'spin-until',
      'interrupt',
      'store',
      'eoi',
      'iret',
      'spin-until',
      'exit',
    ]);
  });

  it('maxSteps bounds a run that could go on forever', () => {
    const m = Machine.create({ cpus: 1 });
    m.load(0, function* (x) {
      for (;;) yield x.pause();
    });
    expect(m.run({ maxSteps: 25 })).toMatchObject({ outcome: 'ok', steps: 25, limitReached: true });
    expect(m.run({ maxSteps: 5 })).toMatchObject({ steps: 5, limitReached: true });
    expect(m.stepCount).toBe(30);
  });

  it('after a CPU stops, run() returns at once with the first stop', () => {
    const m = Machine.create({ cpus: 2 });
    m.load(0, function* (x) {
      yield x.die('oops', 'first');
    });
    m.load(1, function* (x) {
      for (;;) yield x.pause();
    });
    expect(m.run()).toMatchObject({ outcome: 'oops', stop: { cpu: 0, step: 0, message: 'first' } });
    expect(m.run()).toMatchObject({ outcome: 'oops', steps: 0 });
    expect(m.step(1)?.op).toBe('pause'); // the other CPU can still be stepped by hand
  });
});

describe('CPUs without a task program', () => {
  it('an idle CPU (no program) that takes an IPI runs the handler and goes back to idle', () => {
    const m = Machine.create({ cpus: 2 });
    const handled: number[] = [];
    m.cpu(1).setGate(IPI_VECTOR, {
      handler: function* (x, ctx) {
        handled.push(ctx.vector);
        yield x.eoi();
      },
      ist: 0,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      yield x.sendIpi('all-but-self', IPI_VECTOR);
    });
    const result = m.run();
    expect(handled).toEqual([IPI_VECTOR]);
    expect(result.outcome).toBe('ok');
    expect(m.cpu(1).state).toBe('halted');
  });

  it('round-robin never picks an idle CPU with nothing to accept', () => {
    const m = Machine.create({ cpus: 3 });
    m.load(1, function* (x) {
      yield x.pause();
    });
    m.run();
    expect(m.trace.map((e) => e.cpu)).toEqual([1, 1]);
  });
});
