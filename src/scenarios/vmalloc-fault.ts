import type { Assembler } from '../cpu/assembler.ts';
import { Machine } from '../machine/machine.ts';
import type { Kernel, VmallocSync } from '../mm/kernel.ts';
import { mmCreate } from '../mm/mm.ts';
import { vmalloc } from '../mm/vmalloc.ts';
import { LAYOUT } from '../mmu/address.ts';
import { VMALLOC_FAULT } from './listing.ts';
import type { Scenario } from './scenario.ts';

// The vmalloc family (docs/scenarios/vmalloc.md): a process's mm is made (its kernel half a copy of init_mm's),
// then vmalloc creates an area under a top-level entry init_mm did not have yet. With sync 'lazy-fault' (pre-5.8)
// the process's PGD lacks that entry: the first access faults, vmalloc_fault copies init_mm's entry, and the access
// is retried. With 'preallocated' (5.9+) every vmalloc top-level entry existed at boot, so nothing faults.

/** One top-level entry (512 GiB) past the start of the vmalloc space, where the boot's stacks are. */
export const FRESH_SLOT = LAYOUT.vmallocStart + 2 ** 39;
export const VALUE = 42;

/**
 * A process on a CPU (fork, switch_mm, vmalloc, a store and a load through the area), as the scenario runs it on
 * each of its CPUs; vmap-stack-switch runs it beside its context switch.
 */
export function vmallocProcess(kernel: Kernel) {
  return function* process(x: Assembler) {
    const pgd = yield* mmCreate(x, kernel); // fork(): the process's mm, made now
    yield x.movToCr3(pgd); // switch_mm() to it; the kernel half is shared, so kernel code runs on
    const va = yield* vmalloc(x, kernel, 4096, { start: FRESH_SLOT, end: LAYOUT.vmallocEnd });
    yield x.assert(va !== 0, 'vmalloc succeeds');
    yield x.store(va, 8, VALUE); // lazy-fault: #PF, vmalloc_fault copies the entry, the store is retried
    const read: number = yield x.load(va, 8);
    yield x.assert(read === VALUE, 'the store reached the vmalloc page');
  };
}

export const vmallocFaultScenario: Scenario = {
  ...VMALLOC_FAULT,
  build(p, o) {
    const sync = p.sync as VmallocSync;
    const cpus = p.cpus as number;
    const machine = Machine.create({ cpus, trace: o.trace, kernel: { sync } });
    const process = vmallocProcess(machine.kernel!);
    for (let id = 0; id < cpus; id++) machine.load(id, process);
    return { machine, run: { schedule: 'round-robin', maxSteps: 100_000 } };
  },
};
