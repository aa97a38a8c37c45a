import { describe, expect, it } from 'vitest';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import { CR4 } from '../../src/cpu/registers.ts';
import { Machine } from '../../src/machine/machine.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';
import { clearPresent, DATA, FLAGS, pteLow, useIstStack } from './fixtures.ts';

const VALUE = 42;
const FAULTED = 99;

function cached(m: Machine, cpu: number, va: number) {
  return m.snapshot().cpus[cpu]!.tlb.find((e) => e.va === va);
}

describe('stale translations after a PTE is cleared', () => {
  function staleTlbMachine() {
    const m = Machine.create({ cpus: 2 });
    m.map(DATA, { writable: true });
    m.map(FLAGS, { writable: true });
    m.memory.write64(m.physicalAddress(DATA)!, VALUE);
    const results: Record<string, number> = {};
    const readerCached = FLAGS;
    const pteCleared = FLAGS + 8;
    m.load(0, function* clearer(x) {
      yield x.spinUntil(readerCached, 8, (v) => v === 1);
      yield* clearPresent(x, m, DATA);
      yield x.store(pteCleared, 8, 1);
      results.cpu0 = yield x.load(DATA, 8, { fixup: FAULTED });
    });
    m.load(1, function* reader(x) {
      results.before = yield x.load(DATA, 8);
      yield x.store(readerCached, 8, 1);
      yield x.spinUntil(pteCleared, 8, (v) => v === 1);
      results.stale = yield x.load(DATA, 8);
      results.staleAgain = yield x.load(DATA, 8);
      yield x.invlpg(DATA);
      results.after = yield x.load(DATA, 8, { fixup: FAULTED });
    });
    return { m, results };
  }

  it.each(['round-robin', 1, 2, 3, 4, 5] as const)(
    'CPU1 keeps reading through its stale TLB entry until its own INVLPG; CPU0 faults at once (schedule %s)',
    (how) => {
      const { m, results } = staleTlbMachine();
      const run = m.run(how === 'round-robin' ? {} : { schedule: 'random', seed: how });
      expect(run.outcome).toBe('ok');
      expect(results).toEqual({ before: VALUE, stale: VALUE, staleAgain: VALUE, cpu0: FAULTED, after: FAULTED });
    },
  );

  it('after INVLPG the load faults with #PF error code 0 (read, not present) and CR2 = the address', () => {
    const { m } = staleTlbMachine();
    m.run();
    const cpu1Faults = m.trace.filter((e) => e.cpu === 1 && e.exceptions);
    expect(cpu1Faults).toHaveLength(1);
    expect(cpu1Faults[0]!.op).toBe('load');
    expect(cpu1Faults[0]!.exceptions![0]).toMatchObject({ vector: VECTOR.PF, errorCode: 0, cr2: DATA });
    expect(m.cpu(1).lastException).toEqual({ vector: VECTOR.PF, errorCode: 0, cr2: DATA });
    expect(m.cpu(1).regs.cr2).toBe(DATA);
    // The stale reads were TLB hits on the old frame.
    const stale = m.trace.filter((e) => e.cpu === 1 && e.op === 'load' && e.va === DATA && !e.exceptions);
    expect(stale.map((e) => e.tlb)).toEqual(['miss', 'hit', 'hit']);
    expect(new Set(stale.map((e) => e.pa))).toEqual(new Set([m.boot!.pageTables.lookup(DATA)!.pte.address]));
  });

  it("CPU0's PTE store leaves CPU1's TLB entry in place; only CPU1's own INVLPG removes it", () => {
    const m = Machine.create({ cpus: 2 });
    m.map(DATA, { writable: true });
    m.map(FLAGS, { writable: true });
    const seen: Record<string, boolean> = {};
    m.load(0, function* (x) {
      yield x.spinUntil(FLAGS, 8, (v) => v === 1);
      yield* clearPresent(x, m, DATA);
      yield x.store(FLAGS + 8, 8, 1);
    });
    m.load(1, function* (x) {
      yield x.load(DATA, 8);
      yield x.store(FLAGS, 8, 1);
      yield x.spinUntil(FLAGS + 8, 8, (v) => v === 1);
      // Generator code between yields runs after the previous instruction completed.
      seen.afterClear = cached(m, 1, DATA) !== undefined;
      yield x.invlpg(DATA);
      seen.afterInvlpg = cached(m, 1, DATA) !== undefined;
    });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual({ afterClear: true, afterInvlpg: false });
    expect(cached(m, 0, DATA)).toBeUndefined();
  });

  it('a not-present entry is never cached: a fault leaves no TLB entry, and setting P again needs no flush', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    m.boot!.pageTables.clearPresent(DATA);
    const results: number[] = [];
    m.load(0, function* (x) {
      results.push(yield x.load(DATA, 8, { fixup: FAULTED }));
      const pte = m.directMap(m.pteAddress(DATA));
      const low = yield x.load(pte, 4);
      yield x.store(pte, 4, (low | PTE_LO.P) >>> 0);
      results.push(yield x.load(DATA, 8, { fixup: FAULTED }));
    });
    expect(m.run().outcome).toBe('ok');
    expect(results).toEqual([FAULTED, 0]);
  });

  it('a protection #PF drops the stale read-only entry: the handler makes the PTE writable and the store succeeds', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: false });
    const pte = m.directMap(m.pteAddress(DATA));
    useIstStack(m, 0, 3);
    const errorCodes: number[] = [];
    m.cpu(0).setGate(VECTOR.PF, {
      handler: function* (x, ctx) {
        errorCodes.push(ctx.errorCode);
        const low = yield x.load(pte, 4);
        yield x.store(pte, 4, (low | PTE_LO.RW) >>> 0);
        // No INVLPG: the #PF itself invalidated the entry for the faulting address (SDM §4.10.4.1).
      },
      ist: 3,
      type: 'interrupt',
    });
    let read = -1;
    m.load(0, function* (x) {
      yield x.load(DATA, 8); // caches a read-only translation
      yield x.store(DATA, 8, 7);
      read = yield x.load(DATA, 8);
    });
    expect(m.run({ maxSteps: 50 }).outcome).toBe('ok');
    expect(errorCodes).toEqual([0x3]); // P | W: a protection violation on a supervisor write
    expect(read).toBe(7);
  });
});

describe('global pages, CR3 and CR4.PGE', () => {
  const LOCAL = FLAGS; // a non-global mapping

  function tlbMachine() {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true }); // global by default (kernel mappings)
    m.map(LOCAL, { writable: true, global: false });
    m.memory.write64(m.physicalAddress(DATA)!, VALUE);
    m.memory.write64(m.physicalAddress(LOCAL)!, VALUE + 1);
    return m;
  }

  it('a global entry survives MOV to CR3; a non-global one does not', () => {
    const m = tlbMachine();
    const cr3 = m.cpu(0).regs.cr3;
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.load(LOCAL, 8);
      yield x.movToCr3(cr3);
    });
    m.run({ schedule: '0,0' });
    expect(cached(m, 0, DATA)).toMatchObject({ global: true });
    expect(cached(m, 0, LOCAL)).toMatchObject({ global: false });
    m.run({ schedule: '0' });
    expect(m.trace.at(-1)!.op).toBe('mov-to-cr3');
    expect(cached(m, 0, DATA)).toMatchObject({ global: true });
    expect(cached(m, 0, LOCAL)).toBeUndefined();
  });

  it('a cleared global PTE still translates after a CR3 write, until INVLPG', () => {
    const m = tlbMachine();
    const cr3 = m.cpu(0).regs.cr3;
    const reads: number[] = [];
    m.load(0, function* (x) {
      reads.push(yield x.load(DATA, 8));
      reads.push(yield x.load(LOCAL, 8));
      yield* clearPresent(x, m, DATA);
      yield* clearPresent(x, m, LOCAL);
      yield x.movToCr3(cr3);
      reads.push(yield x.load(DATA, 8, { fixup: FAULTED })); // stale global entry
      reads.push(yield x.load(LOCAL, 8, { fixup: FAULTED })); // flushed: faults
      yield x.invlpg(DATA);
      reads.push(yield x.load(DATA, 8, { fixup: FAULTED }));
    });
    expect(m.run().outcome).toBe('ok');
    expect(reads).toEqual([VALUE, VALUE + 1, VALUE, FAULTED, FAULTED]);
  });

  it('INVLPG removes a global entry', () => {
    const m = tlbMachine();
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.invlpg(DATA);
    });
    m.run({ schedule: '0' });
    expect(cached(m, 0, DATA)).toBeDefined();
    m.run({ schedule: '0' });
    expect(cached(m, 0, DATA)).toBeUndefined();
  });

  it('toggling CR4.PGE flushes global entries too; entries filled with PGE clear are not global', () => {
    const m = tlbMachine();
    const cr4 = m.cpu(0).regs.cr4;
    const cr3 = m.cpu(0).regs.cr3;
    expect(cr4 & CR4.PGE).toBe(CR4.PGE);
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.movToCr4(cr4 & ~CR4.PGE); // flush everything
      yield x.load(DATA, 8); // refill with PGE=0: not global
      yield x.movToCr3(cr3); // so a CR3 write drops it
      yield x.load(DATA, 8);
      yield x.movToCr4(cr4); // PGE back on: flush again
      yield x.movToCr4(cr4); // no change of PGE: no flush
    });
    const seen: (boolean | undefined)[] = [];
    for (let i = 0; i < 7; i++) {
      m.step(0);
      seen.push(cached(m, 0, DATA)?.global);
    }
    expect(seen).toEqual([true, undefined, false, undefined, false, undefined, undefined]);
    expect(m.cpu(0).regs.cr4).toBe(cr4);
  });

  it('writing CR4 without changing PGE keeps the TLB', () => {
    const m = tlbMachine();
    const cr4 = m.cpu(0).regs.cr4;
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.movToCr4(cr4);
    });
    m.run();
    expect(cached(m, 0, DATA)).toMatchObject({ global: true });
  });
});

describe('accessed and dirty bits', () => {
  it('a load sets A (not D) in the PTE in memory; a store then sets D', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true, accessed: false, dirty: false });
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.store(DATA, 8, 5);
    });
    expect(pteLow(m, DATA) & (PTE_LO.A | PTE_LO.D)).toBe(0);
    m.step(0);
    expect(pteLow(m, DATA) & (PTE_LO.A | PTE_LO.D)).toBe(PTE_LO.A);
    m.step(0);
    expect(pteLow(m, DATA) & (PTE_LO.A | PTE_LO.D)).toBe(PTE_LO.A | PTE_LO.D);
  });

  it('a store through a TLB entry cached with D=0 sets D in memory and caches D=1', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true, accessed: false, dirty: false });
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
      yield x.store(DATA, 8, 5);
    });
    m.step(0);
    expect(cached(m, 0, DATA)).toMatchObject({ dirty: false });
    const store = m.step(0)!;
    expect(store.op).toBe('store');
    expect(cached(m, 0, DATA)).toMatchObject({ dirty: true });
    expect(pteLow(m, DATA) & PTE_LO.D).toBe(PTE_LO.D);
  });

  it('a store as the first access sets both A and D', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.store(DATA, 4, 5);
    });
    m.run();
    expect(pteLow(m, DATA) & (PTE_LO.A | PTE_LO.D)).toBe(PTE_LO.A | PTE_LO.D);
  });

  it('the walk sets A on the upper-level entries it used', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    const pt = m.boot!.pageTables;
    // The PDE of DATA: the entry in the PD that points at DATA's page table.
    const pdeOf = (va: number) => {
      const pml4e = pt.pml4 + (Math.floor(va / 2 ** 39) % 512) * 8;
      const pdpt = m.memory.read32(pml4e) & PTE_LO.ADDR;
      const pdpte = pdpt + (Math.floor(va / 2 ** 30) % 512) * 8;
      const pd = m.memory.read32(pdpte) & PTE_LO.ADDR;
      return { pml4e, pdpte, pde: pd + (Math.floor(va / 2 ** 21) % 512) * 8 };
    };
    const { pml4e, pdpte, pde } = pdeOf(DATA);
    // Boot creates tables accessed (as Linux's _KERNPG_TABLE); clear A as a kernel building its own tables might.
    for (const entry of [pml4e, pdpte, pde]) m.memory.write32(entry, m.memory.read32(entry) & ~PTE_LO.A);
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
    });
    m.run();
    for (const entry of [pml4e, pdpte, pde]) expect(m.memory.read32(entry) & PTE_LO.A).toBe(PTE_LO.A);
  });
});
