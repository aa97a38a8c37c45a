import type { Machine } from '../machine/machine.ts';
import { formatEvent, formatSchedule, type ScheduleEntry } from '../machine/schedule.ts';
import { InputError } from '../mmu/input-error.ts';
import { MachineState } from './machine-state.ts';
import type { Sample } from './stateful-result.ts';

// The program contract's check (docs/checker.md "The program contract"). The stateful search takes a program's
// state to be its identity and history, caches what it yields, and puts states back without running anything
// again: all of which holds only for programs that are deterministic functions of their instructions' results and
// share no mutable JS state. A violation would not crash: it would make the search explore states no run reaches.
// So a sample of the paths the search took (samples, every power of two of states reached) is run again on a
// machine just built, with the CPUs resuming the programs themselves, and the fingerprint compared at every depth.

function describeEntry(e: ScheduleEntry): string {
  return typeof e === 'number' ? `CPU ${e} steps` : formatEvent(e);
}

/** Runs entry `e` on `m` as the search took it, telling `state`. */
function apply(m: Machine, state: MachineState, e: ScheduleEntry): void {
  if (typeof e === 'number') {
    m.step(e);
    state.afterChoice(e);
  } else if ('deliver' in e) {
    m.deliverIpi(e.cpu, e.deliver);
    state.afterChoice(-1);
  } else if ('drain' in e) {
    m.drainStoreBuffer(e.cpu);
    state.afterChoice(-1);
  } else if ('psc' in e) {
    m.evictPagingStructureEntry(e.cpu, e.psc, e.va);
    state.afterChoice(-1);
  } else if ('pscFill' in e) {
    m.fillPagingStructureEntry(e.cpu, e.pscFill, e.va);
    state.afterChoice(-1);
  } else {
    if (e.tlb === 'evict') m.evictTlb(e.cpu, e.va);
    else m.fillTlb(e.cpu, e.va);
    state.afterChoice(-1);
  }
}

/**
 * Runs each sample again on a machine from `build`; a state whose fingerprint differs from the one the search had
 * at that depth is an InputError naming the step (the CPU that moved) and what differs.
 */
export function checkContract(
  build: () => Machine,
  samples: readonly Sample[],
  deadWords: boolean,
  copiedLive = false,
): void {
  for (const sample of samples) {
    const m = build();
    const state = new MachineState(m, { drive: false, deadWords, copiedLive });
    try {
      for (let k = 0; ; k++) {
        state.fingerprint(sample.tlbLeft[k]!);
        if (state.fpA !== sample.fingerprints[2 * k] || state.fpB !== sample.fingerprints[2 * k + 1]) {
          throw mismatch(sample.entries, k, state.describeDifference(sample.parts[k]!));
        }
        if (k === sample.entries.length) break;
        apply(m, state, sample.entries[k]!);
      }
    } finally {
      state.detach();
    }
  }
}

function mismatch(entries: readonly ScheduleEntry[], k: number, parts: string): InputError {
  if (k === 0) {
    return new InputError(
      'the stateful search found the machine built differently the second time (' +
        `${parts}): build must make the same machine every time`,
    );
  }
  const e = entries[k - 1]!;
  const schedule = formatSchedule(entries.slice(0, k));
  return new InputError(
    `the stateful search's program contract is broken: run again from the start, step ${k} (${describeEntry(e)}) of ` +
      `the path '${schedule}' reaches a state the search did not (its fingerprint differs). Programs must be ` +
      'deterministic functions of their instructions\u2019 results and share no mutable JS state with each other or ' +
      `across runs (docs/checker.md "The program contract"); use the stateless search for those that cannot be. ${parts}`,
  );
}
