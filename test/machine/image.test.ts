import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { MachineImage } from '../../src/machine/image.ts';
import { Machine } from '../../src/machine/machine.ts';
import { InputError } from '../../src/mmu/address.ts';
import { DATA, FLAGS, IPI_VECTOR } from '../cpu/fixtures.ts';

const OTHER = FLAGS + 0x1000;

/** A booted two-CPU machine with data mapped and a handshake loaded, not yet stepped. */
function baseMachine(): Machine {
  const m = Machine.create({ cpus: 2 });
  m.map(DATA, { writable: true });
  m.map(FLAGS, { writable: true });
  m.memory.write64(m.physicalAddress(DATA)!, 1);
  for (const cpu of m.cpus) {
    cpu.setGate(IPI_VECTOR, {
      handler: function* (x) {
        yield x.eoi();
      },
      ist: 0,
      type: 'interrupt',
    });
  }
  m.load(
    0,
    function* writer(x: Assembler, value: number) {
      yield x.store(DATA, 8, value);
      yield x.store(FLAGS, 8, 1);
      yield x.sendIpi(1, IPI_VECTOR);
    },
    2,
  );
  m.load(1, function* reader(x: Assembler) {
    const flag = yield x.spinUntil(FLAGS, 8, (v) => v === 1);
    const v = yield x.load(DATA, 8);
    yield x.store(DATA + 8, 8, v + flag);
  });
  return m;
}

const read = (m: Machine, va: number) => m.memory.read64(m.physicalAddress(va)!);

describe('MachineImage', () => {
  it('clones share frames copy-on-write: a write in one clone is seen neither by another nor by the image', () => {
    const image = MachineImage.capture(baseMachine());
    const a = image.instantiate();
    const b = image.instantiate();
    expect(a.run().outcome).toBe('ok');
    expect([read(a, DATA), read(a, DATA + 8)]).toEqual([2, 3]);
    expect([read(b, DATA), read(b, DATA + 8)]).toEqual([1, 0]);
    const c = image.instantiate();
    expect([read(c, DATA), read(c, DATA + 8)]).toEqual([1, 0]);
  });

  it('a clone owns only the frames it wrote', () => {
    const base = baseMachine();
    const image = MachineImage.capture(base);
    const clone = image.instantiate();
    expect(clone.memory.ownFrameCount).toBe(0);
    clone.run();
    const own = clone.memory.ownFrameCount;
    expect(own).toBeGreaterThan(0);
    // Data, flags, the frames of the stack the IPI frame was pushed on, and page tables whose A/D bits changed.
    expect(own).toBeLessThan(12);
    expect(clone.snapshot().memory.ownFrames).toBe(own);
    // Every frame the clone owns is one it wrote: its data frames are among them, untouched ones are shared.
    expect(image.instantiate().memory.ownFrameCount).toBe(0);
  });

  it('the captured machine keeps working on top of the image without affecting clones', () => {
    const base = baseMachine();
    const image = MachineImage.capture(base);
    expect(base.run().outcome).toBe('ok');
    expect(read(base, DATA)).toBe(2);
    expect(read(image.instantiate(), DATA)).toBe(1);
  });

  it('clones replay identical traces, equal to the original machine run with the same schedule', () => {
    const base = baseMachine();
    const image = MachineImage.capture(base);
    const traces = [base, image.instantiate(), image.instantiate()].map((m) => {
      m.run({ schedule: 'random', seed: 11 });
      return JSON.stringify(m.trace);
    });
    expect(traces[1]).toBe(traces[0]);
    expect(traces[2]).toBe(traces[0]);
  });

  it('clones restart the loaded programs with their arguments and keep the IDT, TSS and registers', () => {
    const base = baseMachine();
    const image = MachineImage.capture(base);
    const clone = image.instantiate();
    const a = base.snapshot().cpus;
    const b = clone.snapshot().cpus;
    expect(b.map((c) => c.registers)).toEqual(a.map((c) => c.registers));
    expect(b.map((c) => c.tss)).toEqual(a.map((c) => c.tss));
    expect(clone.cpu(1).idt[IPI_VECTOR]).toEqual(base.cpu(1).idt[IPI_VECTOR]);
    expect(clone.run().outcome).toBe('ok');
    expect(read(clone, DATA)).toBe(2); // the argument `2` given to load()
  });

  it("a clone's TLB starts as the image's and is its own afterwards", () => {
    const base = baseMachine();
    expect(base.fillTlb(1, DATA)).toBe(true);
    const image = MachineImage.capture(base);
    const a = image.instantiate();
    const b = image.instantiate();
    const hasData = (m: Machine) => m.snapshot().cpus[1]!.tlb.some((e) => e.va === DATA);
    expect(hasData(a) && hasData(b)).toBe(true);
    a.evictTlb(1, DATA);
    expect(hasData(a)).toBe(false);
    expect(hasData(b)).toBe(true);
  });

  it('a clone can map more pages: new frames come after the image frames, and other clones do not see them', () => {
    const image = MachineImage.capture(baseMachine());
    const a = image.instantiate();
    const b = image.instantiate();
    a.map(OTHER, { writable: true });
    expect(a.physicalAddress(OTHER)).not.toBe(a.physicalAddress(DATA));
    expect(a.physicalAddress(OTHER)).not.toBe(a.physicalAddress(FLAGS));
    expect(b.physicalAddress(OTHER)).toBeUndefined();
  });

  it('instantiate options turn tracing off or footprints on per clone', () => {
    const image = MachineImage.capture(baseMachine());
    const quiet = image.instantiate({ trace: false });
    quiet.run();
    expect(quiet.trace).toEqual([]);
    expect(quiet.stepCount).toBeGreaterThan(0);
    expect(image.instantiate({ footprint: true }).footprint).toBeDefined();
  });

  it('capturing a machine that has already stepped is refused with a clear error', () => {
    const m = baseMachine();
    m.step(0);
    expect(() => MachineImage.capture(m)).toThrow(InputError);
    expect(() => MachineImage.capture(m)).toThrow(/cannot image a machine that has run 1 steps/);
  });
});
