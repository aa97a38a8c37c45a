import { describe, expect, it } from 'vitest';
import { explore, replay } from '../../src/explore/explore.ts';
import { Machine } from '../../src/machine/machine.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { findScenario } from '../../src/scenarios/catalogue.ts';
import { type ParamValue, resolveParams } from '../../src/scenarios/scenario.ts';

/** A builder for a catalogue scenario: the same machine, programs loaded, for every execution. */
function scenario(name: string, params: Record<string, ParamValue> = {}) {
  const s = findScenario(name);
  const resolved = resolveParams(s, params);
  return () => s.build(resolved, { trace: false }).machine;
}

/** Two CPUs increment one counter with a plain load and store: a lost update under some interleavings. */
function racyCounter() {
  const m = Machine.create({ cpus: 2, trace: false });
  const counter = m.map(0xffffc90001000000n, { writable: true });
  for (const id of [0, 1]) {
    m.load(id, function* (x) {
      const v: number = yield x.load(counter, 8);
      yield x.store(counter, 8, v + 1);
    });
  }
  return m;
}
const bothIncrements = (m: Machine) => m.memory.read64(m.physicalAddress(0xffffc90001000000n)!) === 2;

describe('explore: random and PCT', () => {
  it.each(['random', 'pct'] as const)('%s finds the pf-in-pf double fault, minimised, and it replays', (strategy) => {
    const build = scenario('pf-in-pf');
    const result = explore(build, { strategy, budget: 20 });
    expect(result.violations.map((v) => v.kind)).toEqual(['double-fault']);
    const v = result.violations[0]!;
    expect(v.message).toMatch(/^PANIC: double fault/);
    expect(replay(build, v.schedule).kind).toBe('double-fault');
  });

  it.each(['random', 'pct'] as const)('%s finds the df-triple triple fault', (strategy) => {
    const result = explore(scenario('df-triple'), { strategy, budget: 10 });
    expect(result.violations.map((v) => v.kind)).toEqual(['triple-fault']);
  });

  it('stale-tlb has no violation under any explored schedule', () => {
    const result = explore(scenario('stale-tlb'), { strategy: 'random', budget: 100 });
    expect(result.violations).toEqual([]);
    expect(result.executions).toBe(100);
    expect(result.complete).toBe(false);
  });

  it('a lost update is found, minimised to the two switches that lose it, and the schedule reproduces it', () => {
    const result = explore(racyCounter, { strategy: 'random', budget: 50, check: bothIncrements });
    expect(result.violations).toHaveLength(1);
    const v = result.violations[0]!;
    expect(v.kind).toBe('assertion');
    // CPU1 loads; CPU0 takes over and runs to its end (load, store); then CPU1 stores its stale value.
    expect(v.schedule).toBe('1,0');
    expect(replay(racyCounter, v.schedule, { check: bothIncrements }).kind).toBe('assertion');
  });

  it('a violation counts its schedule entries as scheduleLength (steps is its alias); the result counts machine steps', () => {
    const result = explore(racyCounter, { strategy: 'exhaustive', check: bothIncrements });
    const v = result.violations[0]!;
    expect(v).toMatchObject({ schedule: '1,0', scheduleLength: 2, steps: 2 });
    // Each CPU loads, stores and exits: the run takes 6 steps, going on after the schedule's 2 entries.
    expect(replay(racyCounter, v.schedule).machine.stepCount).toBe(6);
    expect(explore(racyCounter, { strategy: 'random', budget: 1, seed: 1 }).steps).toBe(6);
  });

  it('the same seed gives the same result; the counterexample is a schedule string a test can paste', () => {
    const a = explore(racyCounter, { strategy: 'pct', budget: 40, seed: 7, check: bothIncrements });
    const b = explore(racyCounter, { strategy: 'pct', budget: 40, seed: 7, check: bothIncrements });
    expect(a).toEqual(b);
    expect(a.violations[0]?.schedule).toMatch(/^[0-9*,]+$/);
  });

  it('the vmap-stack-switch double fault is found under exploration, and not with the stack sync', () => {
    expect(explore(scenario('vmap-stack-switch'), { budget: 3 }).violations.map((v) => v.kind)).toEqual([
      'double-fault',
    ]);
    expect(explore(scenario('vmap-stack-switch', { 'sync-stack': true }), { budget: 3 }).violations).toEqual([]);
  });

  it('bad options are refused, naming the value', () => {
    expect(() => explore(racyCounter, { strategy: 'dfs' as never })).toThrow(InputError);
    expect(() => explore(racyCounter, { budget: 0 })).toThrow(/explore budget 0 must be an integer/);
    expect(() => explore('pf-in-pf' as never)).toThrow(/build 'pf-in-pf' must be a function/);
    expect(() => explore(racyCounter, { check: true as never })).toThrow(
      /^explore check true must be a function \(machine\) => boolean \| string$/,
    );
  });

  it('bad replay options and schedule arrays are refused before any step, naming the value', () => {
    expect(() => replay(racyCounter, '0', { maxSteps: 1.5 })).toThrow(/^replay maxSteps 1\.5 must be an integer/);
    expect(() => replay(racyCounter, '0', { check: 'yes' as never })).toThrow(/^replay check 'yes' must be a function/);
    expect(() => replay(racyCounter, '0', { seed: 1 } as never)).toThrow(
      /^replay options has an unknown option 'seed'/,
    );
    expect(() => replay(5 as never, '0')).toThrow(/^replay: build 5 must be a function/);
    expect(() => replay(racyCounter, [0, null] as never)).toThrow(/^schedule entry 1 is null/);
    expect(() => replay(racyCounter, [0, 9])).toThrow(/^schedule entry 1 names CPU 9, which does not exist/);
  });

  it('a schedule that does not apply is refused, naming the entry', () => {
    expect(() => replay(racyCounter, '0,0,0,0,0')).toThrow(
      /^schedule entry 3 names CPU 0, which cannot move there \(halted\)$/,
    );
    // A TLB event naming nothing: no entry to drop, a page already held, a page with no translation, no CPU.
    expect(() => replay(racyCounter, 'evict:1:0xffffc90001000000')).toThrow(
      /^schedule entry 0 \(evict:1:0xffffc90001000000\): CPU 1's TLB holds no entry for that page$/,
    );
    expect(() => replay(racyCounter, '0,fill:0:0xffffc90001000000')).toThrow(
      /^schedule entry 1 \(fill:0:0xffffc90001000000\): CPU 0's TLB already holds that page$/,
    );
    expect(() => replay(racyCounter, 'fill:0:0xffffc90005000000')).toThrow(/finds no translation/);
    expect(() => replay(racyCounter, 'evict:7:0xffffc90001000000')).toThrow(/names CPU 7, which does not exist/);
    expect(() => replay(racyCounter, 'deliver:1')).toThrow(/^schedule entry 0 \(deliver:1\): no such IPI/);
    // The same events where they apply: CPU0's load cached the page, so it can drop it; CPU1 can fill it.
    expect(replay(racyCounter, '0,evict:0:0xffffc90001000000,fill:1:0xffffc90001000000').kind).toBeUndefined();
  });
});

describe('IPI delivery under the checker', () => {
  /**
   * CPU0 sends CPU1 an IPI whose handler sets a flag, then checks the flag is still clear: true only while the
   * IPI is in flight. CPU1 has nothing else to do (halted, interrupts on).
   */
  function sendThenLook() {
    const m = Machine.create({ cpus: 2, trace: false }); // made with immediate delivery, the machine's default
    const flag = m.map(0xffffc90001000000n, { writable: true });
    m.cpu(1).setGate(0xf0, {
      ist: 0,
      type: 'interrupt',
      handler: function* (x) {
        yield x.store(flag, 8, 1);
        yield x.eoi();
      },
    });
    m.load(0, function* (x) {
      yield x.sendIpi(1, 0xf0);
      const seen: number = yield x.load(flag, 8);
      yield x.assert(seen === 1, 'the IPI had not arrived');
    });
    m.load(1, function* () {});
    return m;
  }

  it('explore holds IPIs in flight by default, whatever the machine was made with; immediate is an option', () => {
    const scheduled = explore(sendThenLook, { strategy: 'exhaustive' });
    expect(scheduled.violations.map((v) => v.kind)).toEqual(['assertion']);
    expect(scheduled.violations[0]!.schedule).toBe(''); // in flight until no CPU can move: CPU0 looks first
    expect(replay(sendThenLook, scheduled.violations[0]!.schedule).kind).toBe('assertion');
    // Delivered in the sending step, the IPI is taken before CPU0 can look... unless CPU0 looks before CPU1 moves.
    const immediate = explore(sendThenLook, { strategy: 'exhaustive', ipiDelivery: 'immediate' });
    expect(immediate.violations.map((v) => v.kind)).toEqual(['assertion']);
    expect(replay(sendThenLook, '', { ipiDelivery: 'immediate' }).kind).toBe('assertion');
    expect(replay(sendThenLook, '0,1*4', { ipiDelivery: 'immediate' }).kind).toBeUndefined();
    expect(() => replay(sendThenLook, '0,1*4')).toThrow(/cannot move/); // scheduled: CPU1 has nothing to take yet
    for (const strategy of ['random', 'pct'] as const) {
      expect(explore(sendThenLook, { strategy, budget: 5, ipiDelivery: 'immediate' }).executions).toBe(5);
    }
  });

  it('a bad ipiDelivery is refused, naming the value', () => {
    expect(() => explore(sendThenLook, { ipiDelivery: 'later' as never })).toThrow(/explore ipiDelivery 'later'/);
    expect(() => replay(sendThenLook, '', { ipiDelivery: 'later' as never })).toThrow(/replay ipiDelivery 'later'/);
  });
});

describe('TLB events as choices', () => {
  /**
   * Once CPU1's first push has cached its stack page, CPU0 clears the page's present bit (a naive migration's first
   * move, with no flush and no IPI); CPU1 pushes twice more. Its TLB holds the page, so those pushes go through the
   * stale entry whatever the order of CPU steps: no schedule of steps alone faults. Only the hardware
   * dropping that entry (an eviction, legal at any time) makes the next push fault, and the #PF frame cannot be
   * pushed on that stack: a double fault.
   */
  function staleStack() {
    const m = Machine.create({ cpus: 2, trace: false });
    const stack = m.boot!.taskStacks[1]!;
    const page = stack.top - 4096;
    const pte = m.directMap(m.pteAddress(page));
    const flag = m.map(0xffffc90001000000n, { writable: true });
    m.load(1, function* (x) {
      yield x.push(1); // fills CPU1's TLB with the stack page (dirty)
      yield x.store(flag, 8, 1); // ...and says so
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

  it('no schedule of CPU steps alone reaches the double fault', () => {
    for (const strategy of ['random', 'pct'] as const) {
      expect(explore(staleStack, { strategy, budget: 200 }).violations).toEqual([]);
    }
    // The exhaustive search proves it: every interleaving of steps, no violation.
    expect(explore(staleStack, { strategy: 'exhaustive' })).toMatchObject({ complete: true, violations: [] });
  });

  it('the exhaustive search with one TLB event finds it, and the shortest schedule names the eviction', () => {
    const result = explore(staleStack, { strategy: 'exhaustive', tlbEvents: 1 });
    expect(result.complete).toBe(true);
    expect(result.violations.map((v) => v.kind)).toEqual(['double-fault']);
    const v = result.violations[0]!;
    expect(v.schedule).toMatch(/evict:1:0xffffc9000001[0-9a-f]{4}/);
    expect(replay(staleStack, v.schedule).kind).toBe('double-fault');
  });

  it('with one TLB event allowed, exploration finds it: the counterexample names the eviction', () => {
    const result = explore(staleStack, { strategy: 'random', budget: 300, tlbEvents: 1 });
    expect(result.violations.map((v) => v.kind)).toEqual(['double-fault']);
    const v = result.violations[0]!;
    expect(v.schedule).toMatch(/evict:1:0xffffc9000001[0-9a-f]{4}/);
    expect(replay(staleStack, v.schedule).kind).toBe('double-fault');
  });
});
