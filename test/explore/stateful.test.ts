import { describe, expect, it } from 'vitest';
import type { Assembler, Program } from '../../src/cpu/assembler.ts';
import { explore, replay } from '../../src/explore/explore.ts';
import { MachineState } from '../../src/explore/machine-state.ts';
import { MachineImage } from '../../src/machine/image.ts';
import { Machine } from '../../src/machine/machine.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { buildCounters, COUNTER } from './fixtures/counters.ts';

// The stateful search (src/explore/stateful.ts) against the stateless one with no reduction, on small programs:
// the same violation kinds and the same final states. Final states are compared by their contents (memory words,
// CPU states and registers, outcome), collected through the final-state check, which both searches call on every
// run's end.

/** A final state by contents: every non-zero word of memory, each CPU's state and registers, the IPIs in flight. */
function contentKey(m: Machine): string {
  const words: string[] = [];
  for (const pfn of m.memory.materialisedFrames()) {
    const f = m.memory.frame(pfn, false);
    for (let o = 0; o < 4096; o += 4) {
      const w = f.getUint32(o, true);
      if (w !== 0) words.push(`${pfn}:${o}=${w}`);
    }
  }
  const cpus = m.cpus.map((c) => `${c.state}:${c.rip}:${c.depth}:${c.regs.rsp}:${c.regs.rflags}:${c.regs.cr2}`);
  const ipis = m.ipiBus.inFlight.map((i) => `${i.to}:${i.vector}`);
  return `${m.outcome}|${cpus.join(',')}|${ipis.join(',')}|${words.join(',')}`;
}

/** Explores `build` both ways; returns each search's violation kinds and final states (by contents). */
function bothWays(build: () => Machine, options: { tlbEvents?: number; check?: (m: Machine) => boolean } = {}) {
  const run = (search: 'stateful' | 'stateless') => {
    const finals = new Set<string>();
    const result = explore(build, {
      strategy: 'exhaustive',
      search,
      ...(search === 'stateless' ? { reduction: 'none' as const } : {}),
      tlbEvents: options.tlbEvents ?? 0,
      check: (m) => {
        finals.add(contentKey(m));
        return options.check ? options.check(m) : true;
      },
    });
    return { result, finals: [...finals].sort(), kinds: result.violations.map((v) => v.kind).sort() };
  };
  return { stateful: run('stateful'), stateless: run('stateless') };
}

const FLAG = 0xffffc90001000000n;
const DATA = 0xffffc90001001000n;

/** CPU0 takes a lock with xchg (or, `broken`, with a load and a store), increments, unlocks; CPU1 does the same. */
function lockedCounter(broken: boolean) {
  return () => {
    const m = Machine.create({ cpus: 2, trace: false });
    const lock = m.map(FLAG, { writable: true });
    const data = m.map(DATA, { writable: true });
    for (const id of [0, 1]) {
      m.load(id, function* (x: Assembler) {
        for (;;) {
          if (broken) {
            const held: number = yield x.load(lock, 8);
            if (held === 0) {
              yield x.store(lock, 8, 1);
              break;
            }
          } else if ((yield x.xchg(lock, 8, 1)) === 0) break;
          yield x.spinUntil(lock, 8, (v) => v === 0);
        }
        const v: number = yield x.load(data, 8);
        yield x.store(data, 8, v + 1);
        yield x.store(lock, 8, 0);
      });
    }
    return m;
  };
}
const bothCounted = (m: Machine) => m.memory.read64(m.physicalAddress(DATA)!) === 2;

/** CPU0 sends CPU1 an IPI whose handler stores to a word; CPU1 waits for it with interrupts on (scheduled delivery). */
function ipiHandshake() {
  const m = Machine.create({ cpus: 2, trace: false, ipiDelivery: 'scheduled' });
  const flag = m.map(FLAG, { writable: true });
  const data = m.map(DATA, { writable: true });
  m.cpu(1).setGate(0xf0, {
    handler: function* (x) {
      yield x.store(flag, 8, 1);
      yield x.eoi();
    },
    ist: 0,
    type: 'interrupt',
  });
  m.load(0, function* (x) {
    yield x.store(data, 8, 7);
    yield x.sendIpi(1, 0xf0);
    yield x.store(data, 8, 8);
  });
  m.load(1, function* (x) {
    yield x.sti();
    yield x.spinUntil(flag, 8, (v) => v === 1);
    const d: number = yield x.load(data, 8);
    yield x.assert(d === 8, `data is ${d} when the IPI has run`);
  });
  return m;
}

/** As explore.test.ts "TLB events as choices": only an eviction makes CPU1's push fault on its own stack. */
function staleStack() {
  const m = Machine.create({ cpus: 2, trace: false });
  const stack = m.boot!.taskStacks[1]!;
  const pte = m.directMap(m.pteAddress(stack.top - 4096));
  const flag = m.map(FLAG, { writable: true });
  m.load(1, function* (x) {
    yield x.push(1);
    yield x.store(flag, 8, 1);
    yield x.push(2);
    yield x.push(3);
  });
  m.load(0, function* (x) {
    yield x.spinUntil(flag, 8, (v) => v === 1);
    const lo: number = yield x.load(pte, 4);
    yield x.store(pte, 4, lo & ~1);
  });
  return m;
}

describe('the stateful search finds what the stateless one without reduction finds', () => {
  it.each([
    [2, 2],
    [3, 1],
  ])(
    'counters, %i CPUs, %i rounds: the same lost updates and final states',
    (cpus, rounds) => {
      const image = MachineImage.capture(buildCounters(cpus, rounds));
      const all = (m: Machine) => m.memory.read64(m.physicalAddress(COUNTER)!) === cpus * rounds;
      const { stateful, stateless } = bothWays(() => image.instantiate({ trace: false }), { check: all });
      expect(stateful.result.complete).toBe(true);
      expect(stateful.kinds).toEqual(['assertion']);
      expect(stateful.kinds).toEqual(stateless.kinds);
      expect(stateful.finals).toEqual(stateless.finals);
      // Far fewer transitions than the stateless search's steps: each state is expanded once.
      expect(stateful.result.transitions!).toBeLessThan(stateless.result.steps / 5);
    },
    60_000,
  );

  it.each([true, false])('a lock (broken: %s): the same verdict and final states', (broken) => {
    const { stateful, stateless } = bothWays(lockedCounter(broken), { check: bothCounted });
    expect(stateful.kinds).toEqual(broken ? ['assertion'] : []);
    expect(stateful.kinds).toEqual(stateless.kinds);
    expect(stateful.finals).toEqual(stateless.finals);
  });

  it('IPIs in flight, delivered as choices: the same final states and the same assertion', () => {
    const { stateful, stateless } = bothWays(ipiHandshake);
    expect(stateful.kinds).toEqual(['assertion']);
    expect(stateful.kinds).toEqual(stateless.kinds);
    expect(stateful.finals).toEqual(stateless.finals);
  });

  it('TLB events: the double fault only an eviction reaches, and the same final states', { timeout: 60_000 }, () => {
    const none = bothWays(staleStack);
    expect(none.stateful.kinds).toEqual([]);
    expect(none.stateful.finals).toEqual(none.stateless.finals);
    const one = bothWays(staleStack, { tlbEvents: 1 });
    expect(one.stateful.kinds).toEqual(['double-fault']);
    expect(one.stateful.kinds).toEqual(one.stateless.kinds);
    expect(one.stateful.finals).toEqual(one.stateless.finals);
  });
});

describe('the TLB-event reduction', () => {
  it('leaves out evictions and fills that cannot make a difference: the same double fault and final states, in fewer states', () => {
    const run = (reduction: 'tlb-events' | 'none') => {
      const finals = new Set<string>();
      const result = explore(staleStack, {
        strategy: 'exhaustive',
        search: 'stateful',
        tlbEvents: 1,
        reduction,
        check: (m) => finals.add(contentKey(m)) !== undefined,
      });
      return { result, finals: [...finals].sort(), kinds: result.violations.map((v) => v.kind) };
    };
    const plain = run('none');
    const reduced = run('tlb-events');
    expect(reduced.result.complete).toBe(true);
    expect(reduced.kinds).toEqual(['double-fault']);
    expect(reduced.kinds).toEqual(plain.kinds);
    expect(reduced.finals).toEqual(plain.finals);
    expect(reduced.result.states!).toBeLessThan(plain.result.states!);
    const found = reduced.result.violations[0]!.schedule;
    expect(replay(staleStack, found).kind).toBe('double-fault');
  });

  it('is the stateful search’s reduction: DPOR’s name is refused there, and its name in the stateless search', () => {
    const build = () => buildCounters(2, 1);
    expect(() => explore(build, { strategy: 'exhaustive', search: 'stateful', reduction: 'dpor' })).toThrow(
      /tlb-events/,
    );
    expect(() => explore(build, { strategy: 'exhaustive', reduction: 'tlb-events' })).toThrow(/dpor/);
  });
});

describe('stateful results', () => {
  it('a violation comes with a minimised schedule that replays, and the search says what it did', () => {
    const r = explore(staleStack, { strategy: 'exhaustive', search: 'stateful', tlbEvents: 1 });
    expect(r).toMatchObject({ search: 'stateful', complete: true });
    expect(r.states).toBeGreaterThan(10);
    expect(r.transitions).toBeGreaterThanOrEqual(r.states! - 1);
    expect(r.depth).toBeGreaterThan(3);
    expect(r.collisionProbability).toBeCloseTo(r.states! ** 2 / 2 ** 65, 30);
    expect(r.visitedBytes).toBeGreaterThan(0);
    const v = r.violations[0]!;
    expect(v.schedule).toMatch(/evict:1:0xffffc9/);
    expect(replay(staleStack, v.schedule).kind).toBe('double-fault');
  });

  it('an invariant is checked on every state; its violation replays with the invariant', () => {
    // The counter never goes down... but a lost update makes CPU1's store write a value CPU0 already wrote.
    const image = MachineImage.capture(buildCounters(2, 2));
    const build = () => image.instantiate({ trace: false });
    const notThree = (m: Machine) => m.memory.read64(m.physicalAddress(COUNTER)!) !== 3;
    const r = explore(build, { strategy: 'exhaustive', search: 'stateful', invariant: notThree });
    expect(r.violations.map((v) => v.kind)).toEqual(['invariant']);
    expect(replay(build, r.violations[0]!.schedule, { invariant: notThree }).kind).toBe('invariant');
  });

  it('a cycle in the state graph (a fault retried forever) is a step-bound violation, as the stateless search says', () => {
    const build = () => {
      const m = Machine.create({ cpus: 1, trace: false });
      m.cpu(0).setGate(14, { handler: function* () {}, ist: 0, type: 'interrupt' }); // returns without a fix
      m.load(0, function* (x) {
        yield x.load(0xffffc90002000000n, 8); // not mapped: #PF, iret, #PF, ...
      });
      return m;
    };
    const stateful = explore(build, { strategy: 'exhaustive', search: 'stateful', maxSteps: 500 });
    expect(stateful.states).toBeLessThan(10); // the state after the iret is the one before the fault
    expect(stateful.violations.map((v) => v.kind)).toEqual(['step-bound']);
    expect(explore(build, { strategy: 'exhaustive', maxSteps: 500 }).violations.map((v) => v.kind)).toEqual([
      'step-bound',
    ]);
    expect(replay(build, stateful.violations[0]!.schedule, { maxSteps: 500 }).kind).toBe('step-bound');
  });

  it('options that belong to the other search are refused', () => {
    const build = () => buildCounters(2, 1);
    expect(() => explore(build, { strategy: 'exhaustive', search: 'stateful', preemptions: 1 })).toThrow(InputError);
    expect(() => explore(build, { strategy: 'exhaustive', invariant: () => true })).toThrow(/stateful/);
    expect(() => explore(build, { strategy: 'random', search: 'stateful' })).toThrow(/exhaustive/);
  });
});

describe('fingerprints', () => {
  /** Two CPUs storing to their own pages: the order of their first steps does not matter to the state. */
  function independent() {
    const m = Machine.create({ cpus: 2, trace: false });
    const a = m.map(FLAG, { writable: true });
    const b = m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.store(a, 8, 1);
      yield x.store(a, 8, 2);
    });
    m.load(1, function* (x) {
      yield x.store(b, 8, 1);
      yield x.store(b, 8, 2);
    });
    return m;
  }

  function fingerprintAfter(build: () => Machine, steps: readonly number[], change?: (m: Machine) => void): string {
    const m = build();
    const state = new MachineState(m, { drive: false });
    for (const id of steps) {
      m.step(id);
      state.afterChoice(id);
    }
    if (change) {
      change(m);
      state.afterChoice(-1);
      state.invalidate();
    }
    state.fingerprint(0);
    state.detach();
    return `${state.fpA}:${state.fpB}`;
  }

  it('the same state by two paths has one fingerprint; another state has another', () => {
    expect(fingerprintAfter(independent, [0, 1])).toBe(fingerprintAfter(independent, [1, 0]));
    expect(fingerprintAfter(independent, [0, 0, 1])).toBe(fingerprintAfter(independent, [1, 0, 0]));
    expect(fingerprintAfter(independent, [0, 1])).not.toBe(fingerprintAfter(independent, [0, 0]));
  });

  it('any single change of memory, register, TLB, APIC or history changes it', () => {
    const base = fingerprintAfter(independent, [0, 1]);
    const changes: Record<string, (m: Machine) => void> = {
      'a memory word': (m) => m.memory.write64(m.physicalAddress(DATA)! + 8, 1),
      'one bit of memory': (m) => m.memory.write8(m.physicalAddress(FLAG)! + 4095, 0x80),
      RSP: (m) => {
        m.cpus[0]!.regs.rsp += 8;
      },
      CR2: (m) => {
        m.cpus[1]!.regs.cr2 = 0x1000;
      },
      'a TLB entry dropped': (m) => m.evictTlb(1, DATA),
      'a global TLB entry filled': (m) => m.fillTlb(0, DATA),
      'an IRR bit': (m) => m.cpus[1]!.apic.raise(0x30),
      'an ISR bit': (m) => {
        m.cpus[0]!.apic.raise(0x20);
        m.cpus[0]!.apic.accept(0x20);
      },
      'the NMI latch': (m) => m.cpus[0]!.apic.raiseNmi(),
      'NMI blocking': (m) => {
        m.cpus[0]!.nmiBlocked = true;
      },
      'the STI shadow': (m) => {
        m.cpus[1]!.interruptShadow = true;
      },
    };
    for (const [what, change] of Object.entries(changes)) {
      expect(fingerprintAfter(independent, [0, 1], change), what).not.toBe(base);
    }
  });

  it('the history counts values, not only how many: a load that read another value is another state', () => {
    const reader = (value: number) => () => {
      const m = Machine.create({ cpus: 1, trace: false });
      const a = m.map(FLAG, { writable: true });
      m.memory.write64(m.physicalAddress(FLAG)!, value);
      m.load(0, function* (x) {
        yield x.load(a, 8);
        yield x.store(a, 8, 0); // memory ends the same either way
      });
      return m;
    };
    expect(fingerprintAfter(reader(1), [0, 0])).not.toBe(fingerprintAfter(reader(2), [0, 0]));
  });

  it('a spin woken by a write that does not meet its condition is one state with the spin not yet looked at', () => {
    const build = () => {
      const m = Machine.create({ cpus: 2, trace: false });
      const flag = m.map(FLAG, { writable: true });
      m.load(0, function* (x) {
        yield x.load(flag, 8);
        yield x.spinUntil(flag, 8, (v) => v === 2);
      });
      m.load(1, function* (x) {
        yield x.store(flag, 8, 1);
      });
      return m;
    };
    // CPU0 looks (the flag is 0: it blocks), CPU1's store wakes it with the spin pending; or CPU1 stores first.
    expect(fingerprintAfter(build, [0, 0, 1])).toBe(fingerprintAfter(build, [0, 1]));
    expect(fingerprintAfter(build, [0, 0])).not.toBe(fingerprintAfter(build, [0]));
  });

  it('a wait-until keeps no value in the history: a counter met at 2 or at 3 is one state; a spin-until two', () => {
    const waiter = (value: number, wait: boolean) => () => {
      const m = Machine.create({ cpus: 1, trace: false });
      const a = m.map(FLAG, { writable: true });
      m.memory.write64(m.physicalAddress(FLAG)!, value);
      m.load(0, function* (x) {
        yield wait ? x.waitUntil(a, 8, (v) => v >= 2) : x.spinUntil(a, 8, (v) => v >= 2);
        yield x.store(a, 8, 0); // memory ends the same either way
      });
      return m;
    };
    expect(fingerprintAfter(waiter(2, true), [0, 0])).toBe(fingerprintAfter(waiter(3, true), [0, 0]));
    expect(fingerprintAfter(waiter(2, false), [0, 0])).not.toBe(fingerprintAfter(waiter(3, false), [0, 0]));
  });
});

/** CPU0 stores 1, 2, 3 to page `a`; CPU1 runs `program` with `a` and page `b`, both writable. */
function counterAndReader(program: Program<[number, number]>) {
  const m = Machine.create({ cpus: 2, trace: false });
  const a = m.map(FLAG, { writable: true });
  const b = m.map(DATA, { writable: true });
  m.load(0, function* (x) {
    for (let k = 0; k < 3; k++) yield x.store(a, 8, k + 1);
  });
  m.load(1, program, a, b);
  return m;
}

describe('the program contract', () => {
  it('a program whose yields depend on JS state shared across runs is refused, naming the CPU and the step', () => {
    let runs = 0; // shared by every machine built: the second run of a program yields differently
    const build = () => {
      const m = Machine.create({ cpus: 2, trace: false });
      const a = m.map(FLAG, { writable: true });
      const b = m.map(DATA, { writable: true });
      m.load(0, function* (x) {
        for (let k = 0; k < 20; k++) yield x.store(a, 8, k);
      });
      m.load(1, function* (x) {
        runs++;
        for (let k = 0; k < 20; k++) yield x.store(b, 8, runs);
      });
      return m;
    };
    expect(() => explore(build, { strategy: 'exhaustive', search: 'stateful' })).toThrow(
      /program contract is broken: run again from the start, step \d+ \(CPU 1 steps\)[\s\S]*memory/,
    );
  });

  it('a program that decides by JS state its own atomic action changed is refused when its generator is made again', () => {
    // The pattern compaction's program had (src/mm/compaction.ts keeps its compact_control in a JS object its
    // atomic actions change): a generator made again and fast-forwarded does not run the actions, so it decides
    // otherwise. This once crashed the search with a TypeError; it must be the contract's error, naming the CPU.
    const build = () =>
      counterAndReader(function* (x: Assembler, a: number, b: number) {
        const control = { left: 2 };
        yield x.atomic('control', () => {
          control.left = 0;
          return 0;
        });
        while (control.left > 0) yield x.store(b, 8, control.left--);
        // What CPU0 stored so far branches CPU1's history here: for each new value, its generator is made again
        // and fast-forwarded past the action, which does not run, so the loop above stores where it did not.
        const seen: number = yield x.load(a, 8);
        yield x.store(b, 8, seen);
      });
    expect(() => explore(build, { strategy: 'exhaustive', search: 'stateful' })).toThrow(
      /CPU 1's program .* at its instruction \d+ when run again with the same results[\s\S]*program contract/,
    );
  });

  it('a callee a program makes once and calls twice keeps its identity, even when its generator is made again', () => {
    // CPU1 calls `inc` twice with what it read of CPU0's counter: its history branches, so its generator is made
    // again and fast-forwarded; the second call must still be to the first `inc` (one code address), as in a run.
    const build = () =>
      counterAndReader(function* (x: Assembler, a: number, b: number) {
        const inc = function* (y: Assembler, by: number) {
          const v: number = yield y.load(b, 8);
          yield y.store(b, 8, v + by);
        };
        yield x.call(inc, yield x.load(a, 8));
        yield x.call(inc, yield x.load(a, 8));
      });
    const { stateful, stateless } = bothWays(build);
    expect(stateful.result.complete).toBe(true);
    expect(stateful.finals).toEqual(stateless.finals);
  });

  it('a machine that has run already is refused', () => {
    const build = () => {
      const m = buildCounters(2, 1);
      m.step(0);
      return m;
    };
    expect(() => explore(build, { strategy: 'exhaustive', search: 'stateful' })).toThrow(/has not run/);
  });
});
