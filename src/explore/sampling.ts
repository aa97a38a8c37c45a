import type { Machine } from '../machine/machine.ts';
import { Prng, type ScheduleEntry } from '../machine/schedule.ts';
import { applyChoice, type Choice, choicesInto, choicesOf, isStep, isTlbEvent } from './choices.ts';
import { classify, type Execution, type FinalCheck, Findings } from './execution.ts';
import type { PartResult } from './exhaustive.ts';
import type { CacheScope } from './hardware-choices.ts';
import { finalStateKey } from './state-key.ts';

// The sampling strategies: seeded random choice, and PCT. Execution e draws from its own PRNG, seeded from the
// run's seed and e, so that any range of executions can run anywhere (a worker) and give the same result.

/** Chooses among the choices at each point of one execution. */
interface Chooser {
  /** The index of the choice to make among the first `count` of `choices`. */
  pick(choices: readonly Choice[], count: number, step: number): number;
}

/** The choices array sampleOnce fills at each step (one for all executions: they run one at a time). */
const scratch: Choice[] = [];

function randomChooser(prng: Prng): Chooser {
  return { pick: (_choices, count) => prng.below(count) };
}

/**
 * PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010): each CPU (and the hardware's events, as one more
 * participant) gets a random distinct priority; d - 1 change points are drawn among the first k steps; the
 * highest-priority choice runs, and at the i-th change point the running one drops to priority i (below all
 * initial ones). A bug of depth d is found with probability at least 1 / (n k^(d-1)).
 */
function pctChooser(prng: Prng, cpus: number, depth: number, k: number): Chooser {
  const priority = Array.from({ length: cpus + 1 }, (_, i) => i + depth);
  for (let i = priority.length - 1; i > 0; i--) {
    const j = prng.below(i + 1);
    [priority[i], priority[j]] = [priority[j]!, priority[i]!];
  }
  const changes = Array.from({ length: depth - 1 }, () => prng.below(Math.max(1, k)));
  return {
    pick(choices, count, step) {
      const owner = (c: Choice) => (isStep(c) ? c.cpu : cpus);
      let best = 0;
      for (let i = 1; i < count; i++) {
        if (priority[owner(choices[i]!)]! > priority[owner(choices[best]!)]!) best = i;
      }
      const change = changes.indexOf(step);
      if (change >= 0) priority[owner(choices[best]!)] = change;
      return best;
    },
  };
}

export interface SamplingOptions {
  readonly strategy: 'random' | 'pct';
  readonly seed: number;
  readonly depth: number;
  /** PCT's k: the steps change points are drawn among (an estimate of an execution's length). */
  readonly length: number;
  readonly maxSteps: number;
  readonly tlbEvents: number;
  /** Which cache events are offered (hardware-choices.ts); default `held`. */
  readonly cacheEvents?: CacheScope;
  readonly check: FinalCheck | undefined;
}

/** The PRNG of execution `e`: a distinct stream per execution, the same for the same seed and e. */
function executionPrng(seed: number, e: number): Prng {
  return new Prng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(e + 1, 0x85ebca6b)) >>> 0);
}

export function sampleOnce(build: () => Machine, o: SamplingOptions, e: number): Execution & { state: string } {
  const prng = executionPrng(o.seed, e);
  const m = build();
  const chooser =
    o.strategy === 'random' ? randomChooser(prng) : pctChooser(prng, m.cpus.length, o.depth, Math.max(1, o.length));
  const schedule: ScheduleEntry[] = [];
  let limitReached = false;
  let eventsLeft = o.tlbEvents;
  const choices = scratch;
  for (let step = 0; m.firstStop === undefined; step++) {
    const count = choicesInto(m, eventsLeft, choices, o.cacheEvents);
    if (count === 0) break;
    if (schedule.length >= o.maxSteps) {
      limitReached = true;
      break;
    }
    const choice = choices[chooser.pick(choices, count, step)]!;
    if (isTlbEvent(choice)) eventsLeft--;
    schedule.push(applyChoice(m, choice));
  }
  return { schedule, ...classify(m, limitReached, o.check), state: finalStateKey(m) };
}

/**
 * Executions first..first+count-1, as a part (see PartResult); with `expired`, no execution starts once it is
 * true (the time limit), and the part is then not finished.
 */
export function samplePart(
  build: () => Machine,
  o: SamplingOptions,
  first: number,
  count: number,
  progress?: (runs: number) => void,
  expired?: () => boolean,
): PartResult & { readonly timedOut: boolean } {
  const steps: number[] = [];
  const states: string[] = [];
  const findings = new Findings();
  let runs = 0;
  while (runs < count && !expired?.()) {
    const run = sampleOnce(build, o, first + runs);
    steps.push(run.schedule.length);
    states.push(run.state);
    findings.note(runs, run);
    runs++;
    progress?.(runs);
  }
  const timedOut = runs < count;
  return { runs, steps, states, improvements: findings.improvements, finished: !timedOut, boundHit: false, timedOut };
}

/** Steps of the least interleaved execution (the first choice every time): PCT's estimate of k. */
export function probeLength(build: () => Machine, maxSteps: number): number {
  const m = build();
  let steps = 0;
  while (m.firstStop === undefined && steps < maxSteps) {
    const choices = choicesOf(m, 0);
    if (choices.length === 0) break;
    applyChoice(m, choices[0]!);
    steps++;
  }
  return steps;
}
