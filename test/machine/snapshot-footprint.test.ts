import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/machine/machine.ts';
import { PAGE_SIZE } from '../../src/mmu/address.ts';
import { DATA, IPI_VECTOR } from '../cpu/fixtures.ts';

function deeplyFrozen(value: unknown, path = 'snapshot'): string[] {
  if (value === null || typeof value !== 'object') return [];
  const bad = Object.isFrozen(value) ? [] : [path];
  for (const [key, child] of Object.entries(value)) bad.push(...deeplyFrozen(child, `${path}.${key}`));
  return bad;
}

describe('snapshot()', () => {
  function pusher() {
    const m = Machine.create({ cpus: 2 });
    m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.push(1);
      yield x.push(2);
    });
    return m;
  }

  it('is deeply frozen: no object in it can be changed', () => {
    const m = pusher();
    m.step(0);
    const snap = m.snapshot();
    expect(deeplyFrozen(snap)).toEqual([]);
    expect(snap.cpus[0]!.tlb.length).toBeGreaterThan(0);
    expect(() => {
      (snap.cpus[0]!.registers as { rsp: number }).rsp = 0;
    }).toThrow(TypeError);
  });

  it('does not change after further steps; a new snapshot shows the new state', () => {
    const m = pusher();
    m.step(0);
    const before = m.snapshot();
    const copy = structuredClone(before);
    m.step(0);
    m.step(0);
    expect(before).toEqual(copy);
    const after = m.snapshot();
    expect(after.step).toBe(3);
    expect(before.step).toBe(1);
    expect(after.cpus[0]!.registers.rsp).toBe(before.cpus[0]!.registers.rsp - 16);
  });

  it('shows registers, the control stack, the APIC and the last exception of each CPU', () => {
    const m = Machine.create({ cpus: 2 });
    m.load(0, function* (x) {
      yield x.load(DATA, 8, { fixup: 1 }); // DATA is not mapped: #PF, fixed up by the boot handler
    });
    m.step(0);
    const cpu0 = m.snapshot().cpus[0]!;
    expect(cpu0.controlStack.map((a) => a.kind)).toEqual(['task', 'handler']);
    expect(cpu0.controlStack[0]!.pending).toBe('load');
    expect(cpu0.controlStack[1]!.vector).toBe(14);
    expect(cpu0.lastException).toEqual({ vector: 14, errorCode: 0, cr2: DATA });
    expect(cpu0.registers.cr2).toBe(DATA);
    expect(cpu0.interruptsEnabled).toBe(false);
    expect(cpu0.tss.ist[1]).toBe(m.boot!.doubleFaultStacks[0]!.top);
    expect(m.snapshot().cpus[1]).toMatchObject({ id: 1, state: 'halted', controlStack: [] });
  });
});

describe('footprints', () => {
  function recorded() {
    const m = Machine.create({ cpus: 2, footprint: true });
    m.map(DATA, { writable: true, accessed: false, dirty: false }); // clean, so the walks update it
    m.cpu(1).setGate(IPI_VECTOR, {
      handler: function* (x) {
        yield x.eoi();
      },
      ist: 0,
      type: 'interrupt',
    });
    return m;
  }

  it('a first store records its physical write, the A/D update of its PTE and the TLB fill', () => {
    const m = recorded();
    m.load(0, function* (x) {
      yield x.store(DATA + 16, 8, 7);
    });
    m.step(0);
    const fp = m.footprint!.copy();
    expect(fp.writes).toEqual([m.physicalAddress(DATA + 16), 8]);
    expect(fp.pteWrites).toContain(m.pteAddress(DATA));
    expect(fp.pteReads).toHaveLength(4);
    expect(fp.pteReads.at(-1)).toBe(m.pteAddress(DATA));
    expect(fp.tlbFills).toEqual([DATA / PAGE_SIZE]);
    expect(fp.reads).toEqual([]);
  });

  it('a load that hits the TLB records only its read; a store through a clean entry records the D update', () => {
    const m = recorded();
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.load(DATA, 4);
      yield x.store(DATA, 8, 1);
      yield x.store(DATA, 8, 2);
    });
    m.step(0);
    expect(m.footprint!.tlbFills).toEqual([DATA / PAGE_SIZE]);
    m.step(0);
    expect(m.footprint!.copy()).toMatchObject({
      reads: [m.physicalAddress(DATA), 4],
      pteReads: [],
      pteWrites: [],
      tlbFills: [],
    });
    m.step(0);
    expect(m.footprint!.pteWrites).toEqual([m.pteAddress(DATA)]);
    m.step(0);
    expect(m.footprint!.pteWrites).toEqual([]);
    expect(m.footprint!.writes).toEqual([m.physicalAddress(DATA), 8]);
  });

  it('send-IPI records its targets and vector; the acceptance records the vector and the frame writes', () => {
    const m = recorded();
    m.load(0, function* (x) {
      yield x.sendIpi(1, IPI_VECTOR);
    });
    m.load(1, function* (x) {
      yield x.pause();
    });
    m.step(0);
    expect(m.footprint!.ipisSent).toEqual([1, IPI_VECTOR]);
    m.step(1);
    const fp = m.footprint!.copy();
    expect(fp.accepted).toEqual([IPI_VECTOR]);
    expect(fp.writes).toHaveLength(2 * 5); // SS, RSP, RFLAGS, CS, RIP
    expect(fp.ipisSent).toEqual([]);
  });

  it('INVLPG and CR3 writes record TLB invalidations', () => {
    const m = recorded();
    const cr3 = m.cpu(0).regs.cr3;
    m.load(0, function* (x) {
      yield x.invlpg(DATA);
      yield x.movToCr3(cr3);
    });
    m.step(0);
    expect(m.footprint!.tlbInvalidations).toEqual([DATA / PAGE_SIZE]);
    m.step(0);
    expect(m.footprint!.tlbInvalidations).toEqual([-1]);
  });

  it('is off by default', () => {
    expect(Machine.create({ cpus: 1 }).footprint).toBeUndefined();
  });
});
