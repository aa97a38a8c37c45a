import type { Outcome } from '../cpu/instruction.ts';
import type { DeliverySelector } from '../cpu/ipi-bus.ts';
import type { Machine } from '../machine/machine.ts';
import { checkScheduleArray, formatSchedule, Prng, parseSchedule, type ScheduleEntry } from '../machine/schedule.ts';
import { describeValue, InputError, requireInteger, requireOneOf, requireOptions } from '../mmu/input-error.ts';

// Exploring a machine's interleavings (DESIGN.md "Checking"). Programs are generators, which cannot be copied
// mid-run, so exploration is stateless: every execution builds the machine afresh from `build` and runs it under a
// strategy's choices. At each point the choices are the CPUs that can move and the IPIs in flight (a delivery is
// a choice like any other). Every execution's choices are recorded as a schedule string that `replay` runs again
// step for step; a violating schedule is minimised before it is reported.
//
// This is the first slice of the checker: the seeded `random` and `pct` strategies, the built-in invariants, and
// minimised, replayable counterexamples. Exhaustive exploration with DPOR, TLB events as choices, parallel workers
// and the CLI come next.

/** What a violation is: any outcome but ok, or the step bound reached with CPUs still able to move. */
export type ViolationKind = Exclude<Outcome, 'ok'> | 'step-bound';

export interface Violation {
  readonly kind: ViolationKind;
  /** The shortest schedule found for this kind, minimised: `replay(build, schedule)` reproduces it. */
  readonly schedule: string;
  /** Entries (steps and events) in the schedule. */
  readonly steps: number;
  /** The stop event's message, when a CPU stopped. */
  readonly message?: string;
}

export interface ExploreResult {
  readonly strategy: Strategy;
  readonly executions: number;
  /** Steps taken over all executions. */
  readonly steps: number;
  /** Whether every interleaving within the bounds was run (never, for the sampling strategies). */
  readonly complete: boolean;
  /** One per kind found, shortest first. */
  readonly violations: readonly Violation[];
}

export type Strategy = 'random' | 'pct';
const STRATEGIES: readonly Strategy[] = ['random', 'pct'];

export interface ExploreOptions {
  /** `random` (uniform choice) or `pct` (Burckhardt et al.: random priorities with d - 1 change points). */
  readonly strategy?: Strategy;
  /** Executions to run. Default 200. */
  readonly budget?: number;
  /** PRNG seed: the same seed, the same executions. Default 1. */
  readonly seed?: number;
  /** Steps an execution may take before it counts as a `step-bound` violation. Default 10,000. */
  readonly maxSteps?: number;
  /** PCT's depth d (bug depth it targets). Default 3. */
  readonly depth?: number;
  /** A predicate on the final machine; false is an `assertion` violation. */
  readonly check?: (machine: Machine) => boolean;
  /** TLB evictions and speculative fills an execution may choose (the hardware's freedom). Default 0. */
  readonly tlbEvents?: number;
}

/** A choice at one point of an execution: step a CPU, or deliver an IPI in flight to one. */
type Choice =
  | { readonly cpu: number }
  | { readonly cpu: number; readonly deliver: DeliverySelector }
  | { readonly cpu: number; readonly tlb: 'evict' | 'fill'; readonly va: number };

/**
 * The choices at this point. TLB events, while the execution has some left (`tlbEvents`), are the hardware's own
 * freedom (SDM §4.10.2): any CPU may drop any entry it holds, and may fill, speculatively, a page some other CPU
 * holds (a page in use, so the candidates stay few).
 */
function choicesOf(m: Machine, tlbEventsLeft: number): Choice[] {
  const out: Choice[] = [];
  for (const cpu of m.cpus) if (cpu.runnable && cpu.started) out.push({ cpu: cpu.id });
  for (const ipi of m.inFlightIpis) out.push({ cpu: ipi.to, deliver: ipi.nmi ? 'nmi' : ipi.vector });
  if (tlbEventsLeft > 0 && out.length > 0) {
    const held = m.cpus.map(
      (c) =>
        new Set(
          c.tlb
            .entries()
            .filter((e) => e.pageSize === 4096)
            .map((e) => e.va),
        ),
    );
    const inUse = new Set(held.flatMap((s) => [...s]));
    for (const cpu of m.cpus) {
      if (!cpu.started) continue;
      for (const va of held[cpu.id]!) out.push({ cpu: cpu.id, tlb: 'evict', va });
      for (const va of inUse) if (!held[cpu.id]!.has(va)) out.push({ cpu: cpu.id, tlb: 'fill', va });
    }
  }
  return out;
}

function apply(m: Machine, c: Choice): ScheduleEntry {
  if ('deliver' in c) {
    m.deliverIpi(c.cpu, c.deliver);
    return { cpu: c.cpu, deliver: c.deliver };
  }
  if ('tlb' in c) {
    if (c.tlb === 'evict') m.evictTlb(c.cpu, c.va);
    else m.fillTlb(c.cpu, c.va);
    return { cpu: c.cpu, tlb: c.tlb, va: c.va };
  }
  m.step(c.cpu);
  return c.cpu;
}

/** Chooses among the choices at each point of one execution. */
interface Chooser {
  pick(choices: readonly Choice[], step: number): number;
}

function randomChooser(prng: Prng): Chooser {
  return { pick: (choices) => prng.below(choices.length) };
}

/**
 * PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010): each CPU (and the interrupt bus) gets a random
 * distinct priority; d - 1 change points are drawn among the first k steps; the highest-priority choice runs, and at
 * the i-th change point the running one drops to priority i (below all initial ones). A bug of depth d is found with
 * probability at least 1 / (n k^(d-1)).
 */
function pctChooser(prng: Prng, cpus: number, depth: number, k: number): Chooser {
  const priority = Array.from({ length: cpus + 1 }, (_, i) => i + depth);
  for (let i = priority.length - 1; i > 0; i--) {
    const j = prng.below(i + 1);
    [priority[i], priority[j]] = [priority[j]!, priority[i]!];
  }
  const changes = Array.from({ length: depth - 1 }, () => prng.below(Math.max(1, k)));
  return {
    pick(choices, step) {
      const owner = (c: Choice) => ('deliver' in c || 'tlb' in c ? cpus : c.cpu);
      let best = 0;
      for (let i = 1; i < choices.length; i++) {
        if (priority[owner(choices[i]!)]! > priority[owner(choices[best]!)]!) best = i;
      }
      const change = changes.indexOf(step);
      if (change >= 0) priority[owner(choices[best]!)] = change;
      return best;
    },
  };
}

interface Execution {
  readonly schedule: ScheduleEntry[];
  readonly kind: ViolationKind | undefined;
  readonly message: string | undefined;
}

function classify(m: Machine, limitReached: boolean, check: ExploreOptions['check']): Omit<Execution, 'schedule'> {
  const outcome = m.outcome;
  if (outcome !== 'ok') return { kind: outcome, message: m.firstStop?.message };
  if (limitReached) return { kind: 'step-bound', message: undefined };
  if (check && !check(m)) return { kind: 'assertion', message: 'the final-state check failed' };
  return { kind: undefined, message: undefined };
}

function execute(
  build: () => Machine,
  chooser: Chooser,
  maxSteps: number,
  check: ExploreOptions['check'],
  tlbEvents: number,
): Execution {
  const m = build();
  const schedule: ScheduleEntry[] = [];
  let limitReached = false;
  let eventsLeft = tlbEvents;
  for (let step = 0; m.firstStop === undefined; step++) {
    const choices = choicesOf(m, eventsLeft);
    if (choices.length === 0) break;
    if (schedule.length >= maxSteps) {
      limitReached = true;
      break;
    }
    const choice = choices[chooser.pick(choices, step)]!;
    if ('tlb' in choice) eventsLeft--;
    schedule.push(apply(m, choice));
  }
  return { schedule, ...classify(m, limitReached, check) };
}

/**
 * After a schedule's entries, the run is completed the least interleaved way: the lowest-numbered CPU that can move
 * runs until it cannot, and so on; an IPI in flight is delivered when no CPU can move. So a counterexample only
 * needs the choices that make the difference, and a short schedule still ends where the program ends.
 */
function complete(m: Machine, maxSteps: number, taken: number): boolean {
  let steps = taken;
  while (m.firstStop === undefined) {
    const cpu = m.cpus.find((c) => c.started && c.runnable);
    if (cpu) {
      if (steps++ >= maxSteps) return true;
      m.step(cpu.id);
      continue;
    }
    const ipi = m.inFlightIpis[0];
    if (!ipi) return false;
    m.deliverIpi(ipi.to, ipi.nmi ? 'nmi' : ipi.vector);
  }
  return false;
}

function requireBuild(build: unknown, what: string): void {
  if (typeof build !== 'function') throw new InputError(`${what}: build ${describeValue(build)} must be a function`);
}

/** The final-state check is a function of the machine, or absent. */
function requireCheck(check: unknown, what: string): ExploreOptions['check'] {
  if (check !== undefined && typeof check !== 'function') {
    throw new InputError(`${what} check ${describeValue(check)} must be a function (machine) => boolean`);
  }
  return check as ExploreOptions['check'];
}

/**
 * Runs `schedule` (a string or entries, as `Machine.run` takes) on a fresh machine from `build`, completes the run
 * (see complete()), and classifies the result as exploration does: what a counterexample reproduces, step for step.
 * A schedule that does not apply (a CPU that cannot move at that point, a delivery with nothing in flight) is an
 * InputError naming the entry and why.
 */
export function replay(
  build: () => Machine,
  schedule: string | readonly ScheduleEntry[],
  options: Pick<ExploreOptions, 'check' | 'maxSteps'> = {},
): { readonly machine: Machine; readonly kind: ViolationKind | undefined; readonly message: string | undefined } {
  requireBuild(build, 'replay');
  const o = requireOptions<ExploreOptions>(options, 'replay options', ['check', 'maxSteps']);
  const maxSteps = o.maxSteps === undefined ? 10_000 : requireInteger(o.maxSteps, 'replay maxSteps', 1, 10_000_000);
  const check = requireCheck(o.check, 'replay');
  const m = build();
  // An array is checked whole (shape, CPUs that exist) before the first step, as Machine.run checks it.
  if (typeof schedule !== 'string') checkScheduleArray(schedule, m.cpus.length);
  const entries = typeof schedule === 'string' ? parseSchedule(schedule) : schedule;
  let steps = 0;
  for (const [index, entry] of entries.entries()) {
    if (m.firstStop !== undefined) break;
    if (typeof entry === 'number') {
      const cpu = m.cpus[entry];
      if (!cpu?.started || !cpu.runnable) {
        const why = !cpu ? 'does not exist' : !cpu.started ? 'has no program' : `cannot move there (${cpu.state})`;
        throw new InputError(`schedule entry ${index} names CPU ${entry}, which ${why}`);
      }
      m.step(entry);
      steps++;
    } else if ('deliver' in entry) {
      m.deliverIpi(entry.cpu, entry.deliver);
    } else if (entry.tlb === 'evict') {
      m.evictTlb(entry.cpu, entry.va);
    } else {
      m.fillTlb(entry.cpu, entry.va);
    }
  }
  const limitReached = complete(m, maxSteps, steps);
  return { machine: m, ...classify(m, limitReached, check) };
}

/** Whether `entries` still produce a violation of `kind` (false when they no longer apply). */
function stillViolates(
  build: () => Machine,
  entries: readonly ScheduleEntry[],
  kind: ViolationKind,
  o: ExploreOptions,
) {
  try {
    return replay(build, entries, o).kind === kind;
  } catch {
    return false;
  }
}

/** Drops entries (halves, then quarters, ... then single ones) while the violation persists (ddmin-style). */
function minimise(build: () => Machine, entries: ScheduleEntry[], kind: ViolationKind, o: ExploreOptions) {
  let current = entries;
  for (let chunk = Math.max(1, current.length >> 1); chunk >= 1; chunk >>= 1) {
    for (let i = 0; i < current.length; ) {
      const candidate = [...current.slice(0, i), ...current.slice(i + chunk)];
      if (candidate.length < current.length && stillViolates(build, candidate, kind, o)) current = candidate;
      else i += chunk;
    }
  }
  return current;
}

/**
 * Explores `build`'s machine under many schedules. `build` must make the same machine every time (same programs,
 * same set-up): exploration re-runs it from scratch for every execution.
 */
export function explore(build: () => Machine, options: ExploreOptions = {}): ExploreResult {
  requireBuild(build, 'explore');
  const o = requireOptions<ExploreOptions>(options, 'explore options', [
    'strategy',
    'budget',
    'seed',
    'maxSteps',
    'depth',
    'check',
    'tlbEvents',
  ]);
  const tlbEvents = o.tlbEvents === undefined ? 0 : requireInteger(o.tlbEvents, 'explore tlbEvents', 0, 1000);
  const strategy = o.strategy === undefined ? 'random' : requireOneOf(o.strategy, 'explore strategy', STRATEGIES);
  const budget = o.budget === undefined ? 200 : requireInteger(o.budget, 'explore budget', 1, 10_000_000);
  const maxSteps = o.maxSteps === undefined ? 10_000 : requireInteger(o.maxSteps, 'explore maxSteps', 1, 10_000_000);
  const depth = o.depth === undefined ? 3 : requireInteger(o.depth, 'explore depth', 1, 100);
  requireCheck(o.check, 'explore');
  const prng = new Prng(o.seed === undefined ? 1 : o.seed);
  const cpus = build().cpus.length;
  const found = new Map<ViolationKind, Execution>();
  let steps = 0;
  let longest = 1;
  for (let e = 0; e < budget; e++) {
    const chooser = strategy === 'random' ? randomChooser(prng) : pctChooser(prng, cpus, depth, longest);
    const run = execute(build, chooser, maxSteps, o.check, tlbEvents);
    steps += run.schedule.length;
    longest = Math.max(longest, run.schedule.length);
    if (run.kind === undefined) continue;
    const best = found.get(run.kind);
    if (!best || run.schedule.length < best.schedule.length) found.set(run.kind, run);
  }
  const violations = [...found.values()]
    .map((v): Violation => {
      const entries = minimise(build, v.schedule, v.kind!, { maxSteps, ...(o.check ? { check: o.check } : {}) });
      const again = replay(build, entries, { maxSteps, ...(o.check ? { check: o.check } : {}) });
      return {
        kind: v.kind!,
        schedule: formatSchedule(entries),
        steps: entries.length,
        ...(again.message === undefined ? {} : { message: again.message }),
      };
    })
    .sort((a, b) => a.steps - b.steps);
  return { strategy, executions: budget, steps, complete: false, violations };
}
