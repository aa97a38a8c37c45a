import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { explore } from '../../src/explore/explore.ts';
import { MachineState } from '../../src/explore/machine-state.ts';
import { takeChoice } from '../../src/explore/state-transition.ts';
import { stutterKind } from '../../src/explore/stutter-step.ts';
import { Machine } from '../../src/machine/machine.ts';

// Stutter steps (src/explore/stutter-step.ts): a spin-until that will find its condition false through a plain TLB
// hit, and the return of a CPU's task program, are offered alone. The random-program differential test
// (soundness.test.ts) checks that nothing is lost; these check which steps count, and that the search is smaller.

const FLAG = 0xffffc90001000000n;
const DATA = 0xffffc90001001000n;

/** CPU `id` steps as the search steps it: its program fed from the outcome cache. */
function step(m: Machine, state: MachineState, id: number): void {
  takeChoice(m, state, { cpu: id }, true);
}

/** What stutterKind says of CPU 0 after each of its steps (before the first, and after each). */
function kindsAlong(build: () => Machine, steps: number, change?: (m: Machine) => void) {
  const m = build();
  const state = new MachineState(m, { drive: true });
  const kinds: (string | undefined)[] = [stutterKind(m.cpu(0), state.programs)];
  for (let i = 0; i < steps; i++) {
    step(m, state, 0);
    change?.(m);
    kinds.push(stutterKind(m.cpu(0), state.programs));
  }
  state.detach();
  return kinds;
}

/** One CPU: `warm` loads the flag first (its TLB then holds the page), then a spin-until the flag is 1. */
function spinner(warm: boolean) {
  return () => {
    const m = Machine.create({ cpus: 1, trace: false });
    const flag = m.map(FLAG, { writable: true });
    m.load(0, function* (x: Assembler) {
      if (warm) yield x.load(flag, 8);
      yield x.spinUntil(flag, 8, (v) => v === 1);
    });
    return m;
  };
}

describe('which steps are stutter steps', () => {
  it('a spin-until that reads its unset flag through a TLB hit is one; a load is not; a spin through a miss is not', () => {
    expect(kindsAlong(spinner(true), 1)).toEqual([undefined, 'spin']);
    // Through a miss the read walks the page tables (setting A bits, filling the TLB): a step others can see.
    expect(kindsAlong(spinner(false), 0)).toEqual([undefined]);
  });

  it('a spin-until whose flag is already set is not one: the step completes the spin', () => {
    const set = (m: Machine) => m.memory.write64(m.physicalAddress(FLAG)!, 1);
    expect(kindsAlong(spinner(true), 1, set)).toEqual([undefined, undefined]);
  });

  it("the return of a CPU's task program is one; a called program's return (a RET, a pop) is not", () => {
    const build = () => {
      const m = Machine.create({ cpus: 1, trace: false });
      const data = m.map(DATA, { writable: true });
      const callee = function* callee(x: Assembler) {
        yield x.store(data, 8, 1);
      };
      m.load(0, function* (x: Assembler) {
        yield x.call(callee);
        yield x.store(data + 8, 8, 2);
      });
      return m;
    };
    // call; the callee's store; its return (a RET); the task's store; then the task's return.
    expect(kindsAlong(build, 4)).toEqual([undefined, undefined, undefined, undefined, 'return']);
  });

  it('a CPU with an interrupt waiting to be taken has none: its next step takes the interrupt', () => {
    const build = () => {
      const m = Machine.create({ cpus: 2, trace: false });
      const flag = m.map(FLAG, { writable: true });
      m.cpu(0).setGate(0xf0, {
        ist: 0,
        type: 'interrupt',
        handler: function* (x) {
          yield x.eoi();
        },
      });
      m.load(0, function* (x: Assembler) {
        yield x.sti();
        yield x.load(flag, 8);
        yield x.spinUntil(flag, 8, (v) => v === 1);
      });
      m.load(1, function* (x: Assembler) {
        yield x.sendIpi(0, 0xf0);
      });
      return m;
    };
    const m = build();
    m.ipiDelivery = 'immediate';
    const state = new MachineState(m, { drive: true });
    step(m, state, 0);
    step(m, state, 0);
    expect(stutterKind(m.cpu(0), state.programs)).toBe('spin');
    step(m, state, 1);
    expect(m.cpu(0).apic.pendingCount).toBe(1);
    expect(stutterKind(m.cpu(0), state.programs)).toBeUndefined();
    state.detach();
  });
});

/** CPU0 waits for the flag and then writes; CPU1 writes three words, then the flag. */
function flagHandOver() {
  const m = Machine.create({ cpus: 2, trace: false });
  const flag = m.map(FLAG, { writable: true });
  const data = m.map(DATA, { writable: true });
  m.load(0, function* (x: Assembler) {
    yield x.load(flag, 8);
    yield x.spinUntil(flag, 8, (v) => v === 1);
    yield x.store(data, 8, 1);
  });
  m.load(1, function* (x: Assembler) {
    for (let i = 1; i <= 3; i++) yield x.store(data + 8 * i, 8, i);
    yield x.store(flag, 8, 1);
  });
  return m;
}

describe('the stateful search with stutter steps', () => {
  it('stores fewer states than the search without reductions, and ends in the same final states', () => {
    const run = (reduction: 'tlb-events' | 'none') => {
      const finals = new Set<string>();
      const r = explore(flagHandOver, {
        strategy: 'exhaustive',
        search: 'stateful',
        reduction,
        check: (m) => {
          const words = [0, 8, 16, 24].map((o) => m.memory.read64(m.physicalAddress(DATA)! + o));
          finals.add(`${m.cpus.map((c) => c.state).join()}|${words.join()}`);
          return true;
        },
      });
      return { complete: r.complete, states: r.states!, finals: [...finals].sort() };
    };
    const reduced = run('tlb-events');
    const full = run('none');
    expect([reduced.complete, full.complete]).toEqual([true, true]);
    expect(reduced.finals).toEqual(full.finals);
    expect(reduced.finals).toEqual(['halted,halted|1,1,2,3']);
    // CPU0 about to find the flag unset, beside each of CPU1's steps; each CPU about to return, beside the other's.
    expect(reduced.states).toBeLessThan(full.states);
  });
});
