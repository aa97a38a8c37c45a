import type { Machine } from '../machine/machine.ts';
import type { ScheduleEntry } from '../machine/schedule.ts';
import type { Choice } from './choices.ts';
import { applyHardwareChoice, isHardwareChoice } from './hardware-choices.ts';
import type { MachineState } from './machine-state.ts';

// A choice of the stateful search taken on the machine, with the search's state told (stateful.ts, and the
// contract check's re-runs), and the schedule entry it stands for.

/** The schedule entry of a choice (as applyChoice returns it). */
export function entryOf(c: Choice): ScheduleEntry {
  if (isHardwareChoice(c)) return c;
  if ('deliver' in c) return { cpu: c.cpu, deliver: c.deliver };
  if ('tlb' in c) return { cpu: c.cpu, tlb: c.tlb, va: c.va };
  return c.cpu;
}

/** Takes choice `c` on `m`, telling `state` before a step and after any choice. */
export function takeChoice(m: Machine, state: MachineState, c: Choice, drive: boolean): void {
  if ('deliver' in c) {
    m.deliverIpi(c.cpu, c.deliver);
    state.afterChoice(-1);
  } else if (isHardwareChoice(c)) {
    applyHardwareChoice(m, c);
    state.afterChoice(-1);
  } else if ('tlb' in c) {
    if (c.tlb === 'evict') m.evictTlb(c.cpu, c.va);
    else m.fillTlb(c.cpu, c.va);
    state.afterChoice(-1);
  } else {
    if (drive) state.beforeStep(c.cpu);
    m.step(c.cpu);
    state.afterChoice(c.cpu);
  }
}

/** Which of statesBy's counts a state reached by `c` goes to: step, delivery, eviction, fill, drain. */
export function stateKind(c: Choice): number {
  if ('deliver' in c) return 1;
  if ('tlb' in c) return c.tlb === 'evict' ? 2 : 3;
  if ('drain' in c) return 4;
  if ('psc' in c) return 2; // a paging-structure-cache eviction
  if ('pscFill' in c) return 3;
  return 0;
}
