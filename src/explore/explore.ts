import type { ExploreOptions, ExploreResult } from './options.ts';
import {
  deadlineOf,
  delivering,
  finish,
  Merged,
  plan,
  prepare,
  progressReporter,
  resolveOptions,
  runPart,
} from './parts.ts';
import { type Buildable, requireBuild } from './replay.ts';
import { exploreStateful } from './stateful-explore.ts';

// Exploring a machine's interleavings (DESIGN.md "Checking"). Programs are generators, which cannot be copied
// mid-run, so exploration is stateless: every execution builds the machine afresh from `build` and runs it under a
// strategy's choices: which CPU moves, which IPI in flight is delivered, and (within `tlbEvents`) a TLB entry
// dropped or filled by the hardware. Every execution's choices are a schedule string that `replay` runs again step
// for step; a violating schedule is minimised before it is reported.
//
// The work is split into parts (exhaustive: the subtree under each first choice, per preemption bound; sampling:
// ranges of executions), merged in order: so `workers` (parallel.ts) gives the same result as one process.

export type { FinalCheck, StateInvariant, ViolationKind } from './execution.ts';
export type { ExploreOptions, ExploreResult, StopReason, Strategy, Violation } from './options.ts';
export { type Buildable, type ReplayOptions, type ReplayResult, replay } from './replay.ts';
export type { SearchCounters, SearchSnapshot } from './search-snapshot.ts';
export { collisionProbability } from './visited-set.ts';

/**
 * Explores `build`'s machine under many schedules. `build` must make the same machine every time (same programs,
 * same set-up): exploration re-runs it from scratch for every execution.
 */
export function explore(source: Buildable, options: ExploreOptions = {}): ExploreResult {
  const build = requireBuild(source, 'explore', true);
  const r = resolveOptions(options);
  if (r.strategy === 'exhaustive' && r.search === 'stateful') return exploreStateful(delivering(build, r), r);
  const expired = deadlineOf(r);
  const shared = prepare(build, r);
  const merged = new Merged(r.budget);
  let bound: number | undefined;
  for (const parts of plan(r, shared, merged, 1)) {
    for (const spec of parts) {
      if (spec.kind === 'subtree') bound = spec.bound;
      if (expired?.()) {
        merged.cutByTime();
        break;
      }
      const part = runPart(build, r, shared, spec, r.budget - merged.runs, progressReporter(r, merged), expired);
      const more = merged.add(part);
      r.onProgress?.(merged.runs, r.budget);
      if (!more) break;
    }
  }
  return finish(build, r, merged, bound);
}
