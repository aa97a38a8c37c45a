import { describe, expect, it } from 'vitest';
import { type Buildable, explore, replay } from '../../src/explore/explore.ts';
import { finalStateKey } from '../../src/explore/state-key.ts';
import { MachineImage } from '../../src/machine/image.ts';
import { Machine } from '../../src/machine/machine.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { findScenario } from '../../src/scenarios/catalogue.ts';
import { type ParamValue, resolveParams } from '../../src/scenarios/scenario.ts';
import { buildCounters, COUNTER } from './fixtures/counters.ts';

function scenario(name: string, params: Record<string, ParamValue> = {}) {
  const s = findScenario(name);
  const resolved = resolveParams(s, params);
  return () => s.build(resolved, { trace: false }).machine;
}

const SCRATCH = 0xffffc90001001000n;

/**
 * `cpus` CPUs each increment a shared counter `rounds` times with a plain load and store (lost updates possible),
 * storing to a private slot first (independent of every other CPU's steps: what DPOR need not reorder). As an
 * image: each execution resets one machine.
 */
function counters(cpus: number, rounds: number): MachineImage {
  return MachineImage.capture(buildCounters(cpus, rounds));
}

/** Runs an exhaustive exploration and collects the final state of every execution through the check. */
function finalStates(build: Buildable, reduction: 'dpor' | 'none') {
  const states = new Set<string>();
  const result = explore(build, {
    strategy: 'exhaustive',
    reduction,
    check: (m) => {
      states.add(finalStateKey(m));
      return true;
    },
  });
  return { result, states };
}

describe('exhaustive exploration (DPOR with sleep sets)', () => {
  it.each([
    [2, 2],
    [3, 1],
  ])(
    'DPOR runs fewer executions than naive enumeration and reaches the same final states (%i CPUs, %i rounds)',
    (cpus, rounds) => {
      const dpor = finalStates(counters(cpus, rounds), 'dpor');
      const naive = finalStates(counters(cpus, rounds), 'none');
      expect(dpor.result.complete).toBe(true);
      expect(naive.result.complete).toBe(true);
      expect(dpor.result.executions).toBeLessThan(naive.result.executions / 5);
      expect([...dpor.states].sort()).toEqual([...naive.states].sort());
      expect(dpor.result.distinctStates).toBe(naive.result.distinctStates);
      // Every lost update the program allows is a distinct final counter value: 2 rounds on 2 CPUs end at 2, 3 or 4.
      expect(dpor.states.size).toBe(cpus === 2 ? 3 : 3);
    },
  );

  it('finds the lost update with a check, and its schedule replays', () => {
    const build = counters(2, 1);
    const both = (m: Machine) => m.memory.read64(m.physicalAddress(COUNTER)!) === 2;
    const result = explore(build, { strategy: 'exhaustive', check: both });
    expect(result.complete).toBe(true);
    expect(result.violations.map((v) => v.kind)).toEqual(['assertion']);
    expect(replay(build, result.violations[0]!.schedule, { check: both }).kind).toBe('assertion');
  });

  it('independent CPUs need one execution per first choice', () => {
    const build = () => {
      const m = Machine.create({ cpus: 2, trace: false });
      const a = m.map(COUNTER, { writable: true });
      const b = m.map(SCRATCH, { writable: true });
      m.load(0, function* (x) {
        for (let k = 0; k < 5; k++) yield x.store(a, 8, k);
      });
      m.load(1, function* (x) {
        for (let k = 0; k < 5; k++) yield x.store(b, 8, k);
      });
      return m;
    };
    const result = explore(build, { strategy: 'exhaustive' });
    expect(result).toMatchObject({ complete: true, distinctStates: 1, violations: [] });
    // The first point is always split (parts); below it, sleep sets cut every reordering of independent steps.
    expect(result.executions).toBeLessThanOrEqual(3);
  });

  it.each(['pf-in-pf', 'df-triple'])('finds the %s counterexample, and it replays', (name) => {
    const build = scenario(name);
    const result = explore(build, { strategy: 'exhaustive' });
    expect(result.complete).toBe(true);
    const kinds = result.violations.map((v) => v.kind);
    expect(kinds).toEqual([name === 'pf-in-pf' ? 'double-fault' : 'triple-fault']);
    expect(replay(build, result.violations[0]!.schedule).kind).toBe(kinds[0]);
  });

  it('stale-tlb explores completely with no violation', () => {
    const result = explore(scenario('stale-tlb'), { strategy: 'exhaustive' });
    expect(result).toMatchObject({ complete: true, violations: [] });
    expect(result.executions).toBeGreaterThan(1);
  });

  it('a preemption bound is searched upward and stops when no choice needed more', () => {
    const build = counters(2, 2);
    const bounded = explore(build, { strategy: 'exhaustive', preemptions: 1 });
    expect(bounded.preemptionBound).toBe(1);
    expect(bounded.complete).toBe(true);
    const unbounded = explore(build, { strategy: 'exhaustive' });
    // Bound 0 runs each CPU to its end in turn: counter 4 only; bound 1 already reaches a lost update.
    const zero = explore(build, { strategy: 'exhaustive', preemptions: 0 });
    expect(zero.distinctStates).toBe(1);
    expect(bounded.distinctStates).toBeGreaterThan(1);
    expect(bounded.distinctStates).toBeLessThanOrEqual(unbounded.distinctStates);
    const big = explore(build, { strategy: 'exhaustive', preemptions: 50 });
    expect(big.preemptionBound).toBeLessThan(50); // stopped early: no execution needed that many
    expect(big.distinctStates).toBe(unbounded.distinctStates);
  });

  it('naive enumeration keeps the preemption bound at a new point too: bound 0 runs each CPU to its end in turn', () => {
    // Two CPUs, one increment each: with no preemption, one CPU runs to its end, then the other. Naive enumeration
    // used to take the first CPU at every new point whatever the bound (5 executions, 2 final states at bound 0).
    const zero = explore(counters(2, 1), { strategy: 'exhaustive', reduction: 'none', preemptions: 0 });
    expect(zero).toMatchObject({ executions: 2, complete: true, distinctStates: 1, preemptionBound: 0 });
    const one = explore(counters(2, 1), { strategy: 'exhaustive', reduction: 'none', preemptions: 1 });
    expect(one.distinctStates).toBeGreaterThan(1);
  });

  it('a stop does not end the search of what other CPUs do after it: their own violations are found', () => {
    // CPU0 stores, then gives up (an assertion stops it). CPU1 loads the word and, if it saw the store, stops with
    // an oops. The oops needs CPU1's load between CPU0's store and CPU0's stop. The search used to end every run at
    // its first stop, so CPU1's load never ran after the store in any explored run, and the oops was never found.
    const build = () => {
      const m = Machine.create({ cpus: 2, trace: false });
      const word = m.map(COUNTER, { writable: true });
      m.load(0, function* (x) {
        yield x.store(word, 8, 1);
        yield x.assert(false, 'CPU0 gives up');
      });
      m.load(1, function* (x) {
        const v: number = yield x.load(word, 8);
        if (v === 1) yield x.die('oops', 'CPU1 saw the store');
      });
      return m;
    };
    const dpor = explore(build, { strategy: 'exhaustive' });
    const naive = explore(build, { strategy: 'exhaustive', reduction: 'none' });
    expect(dpor.violations.map((v) => v.kind)).toEqual(['assertion', 'oops']);
    expect(naive.violations.map((v) => v.kind)).toEqual(['assertion', 'oops']);
    expect(dpor.distinctStates).toBe(naive.distinctStates);
    const oops = dpor.violations.find((v) => v.kind === 'oops')!;
    expect(oops.schedule).toBe('0,1'); // CPU0 stores, CPU1 (running on as the last to move) loads and stops
    expect(replay(build, oops.schedule).kind).toBe('oops');
  });

  it('a budget cuts the search, and the result says it is not complete', () => {
    const result = explore(counters(2, 2), { strategy: 'exhaustive', budget: 5 });
    expect(result).toMatchObject({ executions: 5, complete: false });
  });

  it('the same inputs give the same result', () => {
    const a = explore(counters(2, 2), { strategy: 'exhaustive' });
    const b = explore(counters(2, 2), { strategy: 'exhaustive' });
    expect(a).toEqual(b);
  });

  it('explores a MachineImage the same way as a build function', () => {
    const build = () => buildCounters(2, 2);
    const image = MachineImage.capture(build());
    expect(explore(image, { strategy: 'exhaustive' })).toEqual(explore(build, { strategy: 'exhaustive' }));
  });

  it('options that belong to another strategy are refused, naming them', () => {
    expect(() => explore(counters(2, 1), { strategy: 'random', preemptions: 1 })).toThrow(
      /preemptions applies to strategy exhaustive, not random/,
    );
    expect(() => explore(counters(2, 1), { strategy: 'exhaustive', depth: 2 })).toThrow(InputError);
    expect(() => explore(counters(2, 1), { strategy: 'exhaustive', reduction: 'some' as never })).toThrow(/reduction/);
    expect(() => explore(counters(2, 1), { strategy: 'exhaustive', preemptions: -1 })).toThrow(/preemptions/);
  });

  describe('kernel scenarios with 2 CPUs (preemption bound 1)', () => {
    it('vmalloc-fault: two processes vmalloc and fault at once; every interleaving within the bound is ok', () => {
      const result = explore(scenario('vmalloc-fault', { cpus: 2 }), { strategy: 'exhaustive', preemptions: 1 });
      expect(result).toMatchObject({ complete: true, preemptionBound: 1, violations: [] });
      expect(result.distinctStates).toBeGreaterThan(1); // the areas and frames each CPU gets depend on the order
    });

    it('vmap-stack-switch double-faults under exploration, and the reported schedule replays it', () => {
      const build = scenario('vmap-stack-switch', { cpus: 2 });
      const result = explore(build, { strategy: 'exhaustive', preemptions: 1 });
      expect(result.violations.map((v) => v.kind)).toEqual(['double-fault']);
      const v = result.violations[0]!;
      expect(v.message).toMatch(/^PANIC: double fault/);
      expect(replay(build, v.schedule).kind).toBe('double-fault');
    });

    it('vmap-stack-switch with the stack sync has no violation within the bound', () => {
      const build = scenario('vmap-stack-switch', { cpus: 2, 'sync-stack': true });
      expect(explore(build, { strategy: 'exhaustive', preemptions: 1 })).toMatchObject({
        complete: true,
        violations: [],
      });
    });
  });
});
