import { Machine } from '../machine/machine.ts';
import { toVirtual } from '../mmu/address.ts';
import { PTE_LO } from '../mmu/pte.ts';
import { STALE_TLB } from './listing.ts';
import type { Scenario } from './scenario.ts';

// The TLB-coherence family (docs/scenarios/tlb-coherence.md): clearing a PTE does not reach other CPUs' TLBs.
// CPU1 caches a translation; CPU0 clears the PTE; CPU1 keeps reading the old frame through its stale entry until
// it executes INVLPG itself (SDM Vol. 3 §4.10.4), after which its next read faults. CPU0, which never cached the
// page, faults at once. Both faulting reads carry an exception-table fixup (like get_kernel_nofault()), so the
// #PF handler completes them with FAULTED instead of oopsing and the run ends ok.

export const DATA_VA = toVirtual(0xffff_c900_0100_0000n);
export const FLAGS_VA = toVirtual(0xffff_c900_0100_1000n);
/** The value a faulting read is completed with by the exception-table fixup. */
export const FAULTED = 0xdead;
const VALUE = 42;

export const staleTlb: Scenario = {
  ...STALE_TLB,
  build(p, o) {
    // The minimal boot, not a kernel: its #PF handler takes the fixup at once, so the trace holds the TLB story
    // alone (the kernel's fault path would first walk init_mm for vmalloc_fault, adding its loads to CPU1's lane).
    const machine = Machine.create({ cpus: 2, trace: o.trace });
    machine.map(DATA_VA, { writable: true });
    machine.map(FLAGS_VA, { writable: true });
    // The data is there before the run (a physical write at set-up), so neither TLB starts with the page.
    machine.memory.write64(machine.physicalAddress(DATA_VA)!, VALUE);
    const pte = machine.directMap(machine.pteAddress(DATA_VA));
    const cached = FLAGS_VA; // CPU1 -> CPU0: "my TLB holds the translation"
    const cleared = FLAGS_VA + 8; // CPU0 -> CPU1: "the PTE is cleared"
    const reads = p.reads as number;
    machine.load(0, function* clearer(x) {
      yield x.waitUntil(cached, 8, (v) => v === 1);
      const low = yield x.load(pte, 4);
      yield x.store(pte, 4, low & ~PTE_LO.P);
      yield x.store(cleared, 8, 1);
      // CPU0 never cached DATA_VA: its walk sees the cleared PTE and faults.
      const mine = yield x.load(DATA_VA, 8, { fixup: FAULTED });
      yield x.assert(mine === FAULTED, 'CPU0 faults on the cleared PTE');
    });
    machine.load(1, function* reader(x) {
      const before = yield x.load(DATA_VA, 8);
      yield x.assert(before === VALUE, `CPU1 reads ${VALUE} before the PTE is cleared`);
      yield x.store(cached, 8, 1);
      yield x.waitUntil(cleared, 8, (v) => v === 1);
      for (let i = 0; i < reads; i++) {
        const stale = yield x.load(DATA_VA, 8);
        yield x.assert(stale === VALUE, 'CPU1 still reads through its stale TLB entry');
      }
      yield x.invlpg(DATA_VA);
      const after = yield x.load(DATA_VA, 8, { fixup: FAULTED });
      yield x.assert(after === FAULTED, 'after INVLPG, CPU1 faults too');
    });
    return { machine, run: { schedule: 'round-robin', maxSteps: 10_000 } };
  },
};
