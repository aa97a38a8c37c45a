import { describe, expect, it } from 'vitest';
import type { Program } from '../../src/cpu/assembler.ts';
import { explore, replay } from '../../src/explore/explore.ts';
import { Machine } from '../../src/machine/machine.ts';
import { formatSchedule, parseSchedule } from '../../src/machine/schedule.ts';
import { InputError } from '../../src/mmu/input-error.ts';

// x86-TSO on the machine (SDM §8.2.3): each CPU's stores wait in its store buffer until a drain event, a fence, a
// locked or serializing instruction. These tests step the CPUs and drain by hand; the checker explores the same
// events (test/explore/litmus.test.ts).

const X = 0xffffc90001000000n;
const Y = 0xffffc90001001000n;

/** Two CPUs, x and y mapped, store buffers of `entries`. */
function machine(entries: number): { m: Machine; x: number; y: number } {
  const m = Machine.create({ cpus: 2, storeBuffer: entries });
  return { m, x: m.map(X, { writable: true }), y: m.map(Y, { writable: true }) };
}

/** The store-buffering litmus (SDM §8.2.3.4): each CPU stores 1 to its flag, then loads the other's. */
function storeBuffering(m: Machine, x: number, y: number, fence: 'none' | 'mfence' | 'xchg'): number[] {
  const seen = [-1, -1];
  const side = (mine: number, other: number, id: number): Program =>
    function* (a) {
      if (fence === 'xchg') yield a.xchg(mine, 8, 1);
      else yield a.store(mine, 8, 1);
      if (fence === 'mfence') yield a.mfence();
      seen[id] = yield a.load(other, 8);
    };
  m.load(0, side(x, y, 0));
  m.load(1, side(y, x, 1));
  return seen;
}

describe('store buffers (x86-TSO)', () => {
  it('store buffering: both CPUs may read 0, each before the other store leaves its buffer', () => {
    const { m, x, y } = machine(2);
    const seen = storeBuffering(m, x, y, 'none');
    // Each CPU: the store, the load, and the step in which its program takes the loaded value and ends.
    m.run({ schedule: '0,1,0,1,0,1' });
    expect(seen).toEqual([0, 0]);
    // Still buffered: memory has neither store until the buffers drain.
    expect([m.memory.read64(m.physicalAddress(x)!), m.memory.read64(m.physicalAddress(y)!)]).toEqual([0, 0]);
    expect(m.drainStoreBuffer(0)).toBe(true);
    expect(m.drainStoreBuffer(1)).toBe(true);
    expect(m.drainStoreBuffer(1)).toBe(false);
    expect([m.memory.read64(m.physicalAddress(x)!), m.memory.read64(m.physicalAddress(y)!)]).toEqual([1, 1]);
  });

  it('without store buffers the same schedule cannot give both 0 (sequential consistency)', () => {
    const m = Machine.create({ cpus: 2 });
    const seen = storeBuffering(m, m.map(X, { writable: true }), m.map(Y, { writable: true }), 'none');
    m.run({ schedule: '0,1,0,1,0,1' });
    expect(seen).toEqual([1, 1]);
  });

  it('MFENCE between the store and the load drains the buffer: the other CPU reads 1', () => {
    const { m, x, y } = machine(2);
    const seen = storeBuffering(m, x, y, 'mfence');
    m.run({ schedule: '0*3,1*4,0' });
    expect(seen).toEqual([0, 1]);
  });

  it('a locked store (xchg) reaches memory as it executes', () => {
    const { m, x, y } = machine(2);
    const seen = storeBuffering(m, x, y, 'xchg');
    m.run({ schedule: '0,1,0,1,0,1' });
    expect(seen).toEqual([1, 1]);
  });

  it("a CPU's load sees its own buffered store (store forwarding)", () => {
    const { m, x } = machine(1);
    let own = -1;
    m.load(0, function* (a) {
      yield a.store(x, 8, 7);
      own = yield a.load(x, 8);
    });
    m.run({ schedule: '0,0,0' });
    expect(own).toBe(7);
    expect(m.memory.read64(m.physicalAddress(x)!)).toBe(0);
  });

  it('a full buffer drains its oldest store when the next one executes', () => {
    const { m, x, y } = machine(1);
    m.load(0, function* (a) {
      yield a.store(x, 8, 1);
      yield a.store(y, 8, 2);
    });
    m.run({ schedule: '0,0' });
    expect(m.memory.read64(m.physicalAddress(x)!)).toBe(1);
    expect(m.memory.read64(m.physicalAddress(y)!)).toBe(0);
  });

  it('a CPU spinning on a flag wakes when the store drains, not when it is buffered', () => {
    const { m, x } = machine(2);
    m.load(0, function* (a) {
      yield a.store(x, 8, 1);
    });
    m.load(1, function* (a) {
      yield a.spinUntil(x, 8, (v) => v === 1);
    });
    m.run({ schedule: '1,0,1' });
    expect(m.cpu(1).state).toBe('blocked');
    m.drainStoreBuffer(0);
    expect(m.cpu(1).runnable).toBe(true);
  });

  it('refuses a store-buffer size outside 0..64, naming the option', () => {
    expect(() => Machine.create({ storeBuffer: 65 })).toThrow(InputError);
    expect(() => Machine.create({ storeBuffer: -1 })).toThrow(/option storeBuffer -1 must be an integer in 0\.\.64/);
  });
});

describe('paging-structure caches on the machine', () => {
  it('a CPU walks through its cached PDE after the PDE is cleared in memory, until its INVLPG', () => {
    const m = Machine.create({ cpus: 1, pagingStructureCaches: 4 });
    const a = m.map(X, { writable: true });
    const b = m.map(X + 0x1000n, { writable: true });
    const pde = m.directMap(m.entryAddress(a, 2));
    const reads: number[] = [];
    m.load(0, function* (x) {
      reads.push(yield x.load(a, 8)); // walks, caches the PML4E, PDPTE and PDE
      const low = yield x.load(pde, 4);
      yield x.store(pde, 4, low & ~1); // the PDE is no longer present
      reads.push(yield x.load(b, 8)); // a TLB miss: the walk starts from the cached PDE
      yield x.invlpg(b); // drops every paging-structure-cache entry (SDM §4.10.4.1)
      yield x.load(b, 8, { fixup: 0xdead }); // walks from CR3: #PF
    });
    m.run();
    expect(reads).toEqual([0, 0]);
    expect(m.cpu(0).lastException).toMatchObject({ vector: 14, errorCode: 0 });
  });

  it('without paging-structure caches the same load faults at once', () => {
    const m = Machine.create({ cpus: 1 });
    const a = m.map(X, { writable: true });
    const b = m.map(X + 0x1000n, { writable: true });
    const pde = m.directMap(m.entryAddress(a, 2));
    m.load(0, function* (x) {
      yield x.load(a, 8);
      const low = yield x.load(pde, 4);
      yield x.store(pde, 4, low & ~1);
      yield x.load(b, 8, { fixup: 0xdead });
    });
    m.run();
    expect(m.cpu(0).lastException).toMatchObject({ vector: 14, errorCode: 0 });
  });
});

describe('store-buffer and paging-structure-cache events in schedules', () => {
  it('drain:N, evict-pde:N:va and fill-pde:N:va parse, format back, and are refused when malformed', () => {
    const text =
      '0,drain:0,1*2,evict-pde:1:0xffffc90001000000,evict-pml4e:0:0xffffc90000000000,fill-pdpte:1:0xffffc90000000000';
    expect(formatSchedule(parseSchedule(text))).toBe(text);
    expect(() => parseSchedule('fill-pte:0:0xffffc90000000000')).toThrow(/malformed schedule token/);
    expect(() => parseSchedule('drain:x')).toThrow(/malformed schedule token 'drain:x'/);
    expect(() => parseSchedule('evict-pte:0:0xffffc90000000000')).toThrow(/malformed schedule token/);
  });

  it('a schedule drains a store buffer where it says, and replay refuses a drain of an empty buffer', () => {
    const build = () => {
      const { m, x, y } = machine(2);
      storeBuffering(m, x, y, 'none');
      return m;
    };
    // CPU0's store reaches memory before CPU1 loads it: CPU1 reads 1.
    const m = build();
    m.run({ schedule: '0,drain:0,1,1,1' });
    expect(m.memory.read64(m.physicalAddress(X)!)).toBe(1);
    expect(replay(build, '0,drain:0,1,1').kind).toBeUndefined();
    expect(() => replay(build, 'drain:0')).toThrow(/schedule entry 0 \(drain:0\): CPU 0's store buffer is empty/);
  });
});

describe('runs with store buffers', () => {
  it('round-robin drains buffered stores on the bus turn, so a flag handshake completes', () => {
    const { m, x, y } = machine(2);
    m.load(0, function* (a) {
      yield a.store(x, 8, 1);
      yield a.spinUntil(y, 8, (v) => v === 1);
    });
    m.load(1, function* (a) {
      yield a.spinUntil(x, 8, (v) => v === 1);
      yield a.store(y, 8, 1);
    });
    const r = m.run();
    expect(r.outcome).toBe('ok');
    expect(m.cpus.map((c) => c.state)).toEqual(['halted', 'halted']);
  });

  it('a random schedule and a timed one complete the same handshake', () => {
    for (const schedule of ['random', 'timed'] as const) {
      const { m, x, y } = machine(2);
      m.load(0, function* (a) {
        yield a.store(x, 8, 1);
        yield a.spinUntil(y, 8, (v) => v === 1);
      });
      m.load(1, function* (a) {
        yield a.spinUntil(x, 8, (v) => v === 1);
        yield a.store(y, 8, 1);
      });
      expect(m.run({ schedule }).outcome).toBe('ok');
    }
  });
});

describe('the checker and store buffers', () => {
  it('explore searches machines with store buffers or paging-structure caches, both searches to completion', () => {
    // What each reaches is held by test/explore/litmus.test.ts and test/explore/page-walk-litmus.test.ts.
    for (const config of [{ storeBuffer: 2 }, { pagingStructureCaches: 4 }]) {
      const build = () => {
        const m = Machine.create({ cpus: 2, ...config });
        const x = m.map(X, { writable: true });
        const y = m.map(Y, { writable: true });
        storeBuffering(m, x, y, 'none');
        return m;
      };
      for (const search of ['stateless', 'stateful'] as const) {
        const result = explore(build, { strategy: 'exhaustive', search, tlbEvents: 1 });
        expect(result).toMatchObject({ complete: true, violations: [] });
      }
    }
  });
});
