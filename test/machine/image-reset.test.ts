import { describe, expect, it } from 'vitest';
import { finalStateKey } from '../../src/explore/state-key.ts';
import { MachineImage } from '../../src/machine/image.ts';
import { Machine } from '../../src/machine/machine.ts';
import { InputError } from '../../src/mmu/input-error.ts';

const DATA = 0xffffc90001000000n;
const FLAG = 0xffffc90001001000n;

/** Two CPUs: one stores and sends an IPI, the other spins on a flag, faults on an unmapped page, then halts. */
function busyMachine(): Machine {
  const m = Machine.create({ cpus: 2, trace: false, ipiDelivery: 'scheduled' });
  const data = m.map(DATA, { writable: true });
  const flag = m.map(FLAG, { writable: true });
  m.load(0, function* (x) {
    for (let i = 0; i < 20; i++) yield x.store(data + 8 * i, 8, i * 3);
    yield x.sendIpi(1, 0xf0);
    yield x.store(flag, 8, 1);
  });
  m.load(1, function* (x) {
    yield x.spinUntil(flag, 8, (v) => v === 1);
    const v: number = yield x.load(data + 8, 8);
    yield x.store(data + 0x800, 8, v + 1);
    yield x.push(v);
    yield x.pop();
  });
  return m;
}

/** What a run leaves: final state, every CPU's state and registers, the trace as text. */
function runAndDescribe(m: Machine, seed: number) {
  const result = m.run({ schedule: 'random', seed, maxSteps: 500 });
  return {
    result,
    state: finalStateKey(m),
    snapshot: m.snapshot(),
    trace: m.trace.map((e) => JSON.stringify(e)),
    addresses: [...m.programAddresses.values()],
  };
}

/** A CPU's own fields as plain data: typed arrays and maps as arrays, other objects by their own fields, once deep. */
function fieldsOf(value: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'memory' || key === 'bus' || key === 'asm') continue; // shared with the machine, or code
    // The memory port's walk records and page cache are scratch, rewritten before each read: compare what a step
    // leaves behind, and the TLB by its entries.
    if (key === 'port') {
      out[key] = { lastHit: (v as { lastHit: boolean }).lastHit, lastPa: (v as { lastPa: number }).lastPa };
      continue;
    }
    if (key === 'tlb') {
      out[key] = (v as { entries(): unknown[] }).entries();
      continue;
    }
    if (ArrayBuffer.isView(v)) out[key] = Array.from(v as unknown as ArrayLike<number>);
    else if (v instanceof Map) out[key] = [...v.entries()];
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      out[key] = Object.fromEntries(
        Object.entries(v).map(([k, w]) => [
          k,
          ArrayBuffer.isView(w) ? Array.from(w as unknown as ArrayLike<number>) : w,
        ]),
      );
    } else out[key] = v;
  }
  return out;
}

describe('MachineImage.reset: the next execution without building a machine', () => {
  it.each([1, 2, 3, 4])('a reset instance runs exactly as a new instance does (seed %i)', (seed) => {
    const image = MachineImage.capture(busyMachine());
    const reused = image.instantiate({ trace: true });
    runAndDescribe(reused, seed + 100); // a different run first, so the reset has something to undo
    image.reset(reused);
    const again = runAndDescribe(reused, seed);
    const fresh = runAndDescribe(image.instantiate({ trace: true }), seed);
    expect(again).toEqual(fresh);
  });

  it('every field of a reset CPU equals a new instance CPU', () => {
    const image = MachineImage.capture(busyMachine());
    const reused = image.instantiate({ trace: false });
    reused.run({ schedule: 'random', seed: 9, maxSteps: 500 });
    image.reset(reused);
    const fresh = image.instantiate({ trace: false });
    for (const id of [0, 1]) {
      const a = fieldsOf(reused.cpus[id]!);
      const b = fieldsOf(fresh.cpus[id]!);
      // The task's generator is a new object either way; compare the rest.
      expect({ ...a, activations: undefined, current: undefined, task: undefined }).toEqual({
        ...b,
        activations: undefined,
        current: undefined,
        task: undefined,
      });
      expect(reused.cpus[id]!.rip).toBe(fresh.cpus[id]!.rip);
      expect(reused.cpus[id]!.depth).toBe(fresh.cpus[id]!.depth);
    }
    expect(reused.memory.ownFrameCount).toBe(0);
    expect(reused.stepCount).toBe(0);
    expect(reused.firstStop).toBeUndefined();
  });

  it('refuses a machine the image did not make', () => {
    const image = MachineImage.capture(busyMachine());
    expect(() => image.reset(busyMachine())).toThrow(InputError);
    expect(() => image.reset(MachineImage.capture(busyMachine()).instantiate())).toThrow(/not made by this image/);
  });
});
