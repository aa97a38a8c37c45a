import { describe, expect, it } from 'vitest';
import { Checkpoint } from '../../src/explore/checkpoint.ts';
import { MachineState } from '../../src/explore/machine-state.ts';
import { takeChoice } from '../../src/explore/state-transition.ts';
import { Machine } from '../../src/machine/machine.ts';

// The stateful search's state covers each CPU's store buffer and paging-structure caches (issue 19): two states
// that differ only there have different fingerprints, and going back to a checkpoint puts them back.

const X = 0xffffc90001000000n;

function machine() {
  const m = Machine.create({ cpus: 1, trace: false, storeBuffer: 2, pagingStructureCaches: 2 });
  const x = m.map(X, { writable: true });
  m.load(0, function* (a) {
    yield a.store(x, 8, 1);
    yield a.pause();
  });
  return m;
}

describe('store buffers and paging-structure caches in the stateful search’s state', () => {
  it('a buffered store changes the fingerprint, not memory, and a checkpoint puts the empty buffer back', () => {
    const m = machine();
    const state = new MachineState(m, { drive: true });
    try {
      state.fingerprint(0);
      const before = [state.fpA, state.fpB];
      const memory = [state.memory.sumA, state.memory.sumB];
      const c = new Checkpoint(1);
      state.save(c);
      takeChoice(m, state, { cpu: 0 }, true);
      state.fingerprint(0);
      expect(m.cpus[0]!.port.storeBuffer!.length).toBe(1);
      expect(m.cpus[0]!.port.psc!.size).toBe(3); // the store's walk cached its PML4E, PDPTE and PDE
      expect([state.memory.sumA, state.memory.sumB]).toEqual(memory); // nothing reached memory
      expect([state.fpA, state.fpB]).not.toEqual(before);
      expect(state.describeDifference(c.parts)).toMatch(/CPU 0's store buffer or paging-structure caches/);

      state.restore(c);
      expect(m.cpus[0]!.port.storeBuffer!.length).toBe(0);
      expect(m.cpus[0]!.port.psc!.size).toBe(0);
      state.fingerprint(0);
      expect([state.fpA, state.fpB]).toEqual(before);
    } finally {
      state.detach();
    }
  });

  it('the drain that follows reaches memory, and leaves a state of its own', () => {
    const m = machine();
    const state = new MachineState(m, { drive: true });
    try {
      takeChoice(m, state, { cpu: 0 }, true);
      state.fingerprint(0);
      const buffered = [state.fpA, state.fpB];
      const c = new Checkpoint(1);
      state.save(c);
      takeChoice(m, state, { cpu: 0, drain: true }, true);
      state.fingerprint(0);
      expect(m.memory.read64(m.physicalAddress(X)!)).toBe(1);
      expect([state.fpA, state.fpB]).not.toEqual(buffered);
      state.restore(c);
      expect(m.memory.read64(m.physicalAddress(X)!)).toBe(0);
      expect(m.cpus[0]!.port.storeBuffer!.length).toBe(1);
      state.fingerprint(0);
      expect([state.fpA, state.fpB]).toEqual(buffered);
    } finally {
      state.detach();
    }
  });
});
