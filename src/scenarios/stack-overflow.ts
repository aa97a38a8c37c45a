import type { Program } from '../cpu/assembler.ts';
import { Machine } from '../machine/machine.ts';
import { STACK_OVERFLOW } from './listing.ts';
import type { Scenario } from './scenario.ts';

// The double-fault family (docs/scenarios/double-fault.md): unbounded recursion on a VMAP stack. Each call pushes
// a return address; the call after 16 KiB of them pushes into the unmapped guard page below the stack: #PF, whose
// frame cannot be pushed on that stack either: #DF on IST1, whose handler finds CR2 in the guard page and reports
// a kernel stack overflow (arch/x86/kernel/traps.c exc_double_fault).

export const stackOverflow: Scenario = {
  ...STACK_OVERFLOW,
  build(_p, o) {
    const machine = Machine.create({ cpus: 1, trace: o.trace, kernel: {} });
    const recurse: Program = function* recurse(x) {
      yield x.call(recurse);
    };
    machine.load(0, recurse);
    return { machine, run: { schedule: 'round-robin', maxSteps: 10_000 } };
  },
};
