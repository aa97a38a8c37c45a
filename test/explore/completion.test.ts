import { describe, expect, it } from 'vitest';
import { explore, replay, type Strategy } from '../../src/explore/explore.ts';
import { Machine } from '../../src/machine/machine.ts';
import { findScenario } from '../../src/scenarios/catalogue.ts';
import { type ParamValue, resolveParams } from '../../src/scenarios/scenario.ts';
import { machineFactory } from '../../src/scenarios/scenario-module.ts';

// How replay completes a run after the schedule's entries (docs/checker.md): the CPU that moved last keeps running
// until it cannot, then the lowest-numbered CPU that can move, and so on; an IPI in flight is delivered only when
// no CPU can move. Every switch away from a CPU that can still move is an entry of the schedule.

const FLAG = 0xffffc90001000000n;
const X = 0xffffc90001000008n;
const SEEN = 0xffffc90001000010n;

/** CPU0 waits for CPU1's flag, then records the x it sees; CPU1 raises the flag, then writes x = 1, then x = 2. */
function flagThenWrites() {
  const m = Machine.create({ cpus: 2, trace: false });
  m.map(FLAG, { writable: true });
  m.load(0, function* (x) {
    yield x.spinUntil(FLAG, 8, (v) => v === 1);
    const seen: number = yield x.load(X, 8);
    yield x.store(SEEN, 8, seen + 100);
  });
  m.load(1, function* (x) {
    yield x.store(FLAG, 8, 1);
    yield x.store(X, 8, 1);
    yield x.store(X, 8, 2);
  });
  return m;
}
const seen = (m: Machine) => m.memory.read64(m.physicalAddress(SEEN)!) - 100;

/** Two CPUs increment one counter with a plain load and store. */
function racyCounter() {
  const m = Machine.create({ cpus: 2, trace: false });
  const counter = m.map(FLAG, { writable: true });
  for (const id of [0, 1]) {
    m.load(id, function* (x) {
      const v: number = yield x.load(counter, 8);
      yield x.store(counter, 8, v + 1);
    });
  }
  return m;
}
const bothCounted = (m: Machine) => {
  const count = m.memory.read64(m.physicalAddress(FLAG)!);
  return count === 2 || `the counter is ${count}, not 2`;
};

describe('replay completes a run the least interleaved way', () => {
  it('a CPU that becomes able to move does not take over from the running one', () => {
    // CPU0 spins; CPU1 raises the flag, which lets CPU0 move, and CPU1 runs on to its end: CPU0 sees x = 2.
    expect(seen(replay(flagThenWrites, '').machine)).toBe(2);
    // Taking over is a switch the schedule names: CPU0 blocks, CPU1 raises the flag, CPU0 runs and sees x = 0.
    expect(seen(replay(flagThenWrites, '0,1,0').machine)).toBe(0);
    expect(seen(replay(flagThenWrites, '0,1*2,0').machine)).toBe(1);
  });

  it('the CPU that moved last runs on after the schedule: "1" runs CPU1 to its end, "1,0" hands over', () => {
    expect(replay(racyCounter, '1', { check: bothCounted }).kind).toBeUndefined();
    expect(replay(racyCounter, '1,0', { check: bothCounted })).toMatchObject({
      kind: 'assertion',
      message: 'the counter is 1, not 2',
    });
  });

  it('a TLB event is not a move: the CPU that stepped before it runs on', () => {
    // CPU1 loads and drops its TLB entry for the counter; CPU1, not CPU0, takes the next step: no update is lost.
    expect(replay(racyCounter, '1,evict:1:0xffffc90001000000', { check: bothCounted }).kind).toBeUndefined();
    expect(replay(racyCounter, '1,evict:1:0xffffc90001000000,0', { check: bothCounted }).kind).toBe('assertion');
  });

  it('an IPI in flight is delivered only when no CPU can move', () => {
    // The naive stack migration: CPU0 sends the flush and waits; CPU1 runs its task to its end first, and only
    // then takes the IPI, whose handler irets onto the stack CPU0 unmapped.
    const s = findScenario('stack-migration');
    const build = machineFactory(s, resolveParams(s, { protocol: 'naive', rounds: 4 }), { trace: true });
    const run = replay(build, '');
    expect(run.kind).toBe('double-fault');
    const trace = run.machine.trace;
    const delivery = trace.findIndex((t) => t.op === 'deliver');
    const exit = trace.findIndex((t) => t.cpu === 1 && t.op === 'exit');
    expect(exit).toBeGreaterThan(0);
    expect(delivery).toBeGreaterThan(exit);
  });
});

/** A catalogue scenario's machine, as `x86slice explore` builds it. */
function scenario(name: string, params: Record<string, ParamValue> = {}) {
  const s = findScenario(name);
  return machineFactory(s, resolveParams(s, params));
}

describe('every violation explore reports replays exactly', () => {
  const cases = [
    ['racy counter', racyCounter, { check: bothCounted }],
    ['flag then writes', flagThenWrites, { check: (m: Machine) => seen(m) === 2 || `CPU0 saw x = ${seen(m)}` }],
    ['pf-in-pf', scenario('pf-in-pf'), {}],
    ['stack-migration naive', scenario('stack-migration', { protocol: 'naive', rounds: 4 }), { preemptions: 1 }],
    ['stack-migration no-wait', scenario('stack-migration', { protocol: 'no-wait', rounds: 4 }), { preemptions: 1 }],
  ] as const;
  for (const [name, build, options] of cases) {
    it.each(['exhaustive', 'random', 'pct'] as Strategy[])(
      `${name}, %s: the same kind and message`,
      (strategy) => {
        const { preemptions, ...rest } = options as { preemptions?: number; check?: (m: Machine) => boolean | string };
        const result = explore(build, {
          strategy,
          ...rest,
          ...(strategy === 'exhaustive' ? { budget: 2000, ...(preemptions === undefined ? {} : { preemptions }) } : {}),
          ...(strategy === 'exhaustive' ? {} : { budget: 60, seed: 3 }),
        });
        for (const v of result.violations) {
          const again = replay(build, v.schedule, rest.check ? { check: rest.check } : {});
          expect({ kind: again.kind, message: again.message }).toEqual({ kind: v.kind, message: v.message });
        }
      },
      60_000,
    );
  }
});
