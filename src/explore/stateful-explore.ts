import type { Machine } from '../machine/machine.ts';
import { formatSchedule } from '../machine/schedule.ts';
import { checkContract } from './contract-check.ts';
import type { ExploreResult, Violation } from './explore.ts';
import type { Resolved } from './parts.ts';
import { minimise, replay } from './replay.ts';
import { StatefulSearch } from './stateful.ts';
import { collisionProbability } from './visited-set.ts';

// explore() with `search: 'stateful'`: the search on one machine from `build`, then the contract check on a sample
// of its paths, then each violation's schedule minimised and replayed for its message, as the stateless search's are.

/** How many paths the contract check runs again at most (taken at 64, 128, 256, ... states). */
const CONTRACT_SAMPLES = 16;

export function exploreStateful(build: () => Machine, r: Resolved): ExploreResult {
  const search = new StatefulSearch(build, {
    maxSteps: r.maxSteps,
    tlbEvents: r.tlbEvents,
    check: r.check,
    invariant: r.invariant,
    maxStates: r.budget,
    samples: CONTRACT_SAMPLES,
    ...(r.onProgress ? { progress: (states: number) => r.onProgress!(states, r.budget) } : {}),
  });
  const result = search.run();
  checkContract(build, result.samples);
  const o = {
    maxSteps: r.maxSteps,
    ...(r.check ? { check: r.check } : {}),
    ...(r.invariant ? { invariant: r.invariant } : {}),
  };
  const violations = result.violations
    .map((v): Violation => {
      const entries = minimise(build, v.schedule, v.kind!, o);
      const again = replay(build, entries, o);
      return {
        kind: v.kind!,
        schedule: formatSchedule(entries),
        steps: entries.length,
        ...(again.message === undefined ? {} : { message: again.message }),
      };
    })
    .sort((a, b) => a.steps - b.steps || a.kind.localeCompare(b.kind));
  return {
    strategy: 'exhaustive',
    search: 'stateful',
    executions: result.finalStates,
    steps: result.transitions,
    complete: result.complete,
    distinctStates: result.finalStates,
    violations,
    states: result.states,
    transitions: result.transitions,
    depth: result.depth,
    visitedBytes: result.visitedBytes,
    collisionProbability: collisionProbability(result.states),
  };
}
