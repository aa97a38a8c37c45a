import type { Assembler } from '../cpu/assembler.ts';
import type { Instruction } from '../cpu/instruction.ts';
import { Machine } from '../machine/machine.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { PTE_LO } from '../mmu/pte.ts';
import { DF_TRIPLE, PF_IN_PF } from './listing.ts';
import type { Scenario } from './scenario.ts';

// The double-fault family (docs/scenarios/double-fault.md): a #PF that cannot push its frame because the stack
// it would go on is unmapped. Linux x86-64 delivers #PF on the current stack (no IST), so losing the page under
// the running stack turns the next push into #PF -> #PF during delivery -> #DF, which has its own IST stack
// (IST1) so it can still run and report. If the #DF stack is unusable too, the CPU triple-faults (shutdown).

/** Clears the present bit of the leaf entry at `pte` through the direct map, then flushes `va` locally. */
function* unmapPage(x: Assembler, machine: Machine, pte: number, va: number): Generator<Instruction, void, number> {
  const entry = machine.directMap(pte);
  const low = yield x.load(entry, 4);
  yield x.store(entry, 4, low & ~PTE_LO.P);
  yield x.invlpg(va);
}

function buildStackLoss(cpus: number, trace: boolean, options: { dfIst: number; unmapDfStack: boolean }) {
  const machine = Machine.create({ cpus, trace, kernel: {} });
  const boot = machine.boot!;
  const stack = boot.taskStacks[0]!;
  const stackPage = stack.top - PAGE_SIZE;
  const stackPte = machine.pteAddress(stackPage);
  const dfStack = boot.doubleFaultStacks[0]!;
  const dfPte = machine.pteAddress(dfStack.bottom);
  const cpu0 = machine.cpu(0);
  cpu0.setGate(8, { ...cpu0.idt[8]!, ist: options.dfIst });
  machine.load(0, function* task(x) {
    // One push leaves RSP 8 bytes below a 16-byte boundary, so the faulting push (RSP-8) and the #PF frame's
    // first slot (aligned RSP-8) are different addresses: CR2 shows which fault it was.
    yield x.push(0x1111);
    // The page under the running stack loses its mapping, as in a naive migration of a VMAP stack page.
    yield* unmapPage(x, machine, stackPte, stackPage);
    if (options.unmapDfStack) yield* unmapPage(x, machine, dfPte, dfStack.bottom);
    yield x.push(0x2222);
  });
  return { machine, run: { schedule: 'round-robin' as const, maxSteps: 1000 } };
}

export const pfInPf: Scenario = {
  ...PF_IN_PF,
  build: (p, o) => buildStackLoss(p.cpus as number, o.trace, { dfIst: p['df-ist'] as number, unmapDfStack: false }),
};

export const dfTriple: Scenario = {
  ...DF_TRIPLE,
  build: (p, o) => buildStackLoss(p.cpus as number, o.trace, { dfIst: 1, unmapDfStack: true }),
};
