import { IPI_DELIVERY_MODES, type IpiDelivery } from '../cpu/ipi-bus.ts';
import { MachineImage } from '../machine/image.ts';
import type { Machine } from '../machine/machine.ts';
import { bufferedCpu } from '../machine/run-loops.ts';
import {
  checkScheduleArray,
  formatEvent,
  formatSchedule,
  type HardwareEvent,
  parseSchedule,
  type ScheduleEntry,
} from '../machine/schedule.ts';
import { describeValue, InputError, requireInteger, requireOneOf, requireOptions } from '../mmu/input-error.ts';
import { classify, type Execution, type FinalCheck, type StateInvariant, type ViolationKind } from './execution.ts';
import { holdsTranslation } from './hardware-choices.ts';
import type { Violation } from './options.ts';

// Replaying a schedule, as a counterexample is reproduced, and shrinking one while its violation persists.

export interface ReplayOptions {
  /** A check of the final machine: true (ok), false or a non-empty reason string (an `assertion`); see FinalCheck. */
  readonly check?: FinalCheck;
  /** Steps before the run counts as a `step-bound` violation. Default 10,000. */
  readonly maxSteps?: number;
  /** IPI delivery for the run, whatever the machine was made with: `scheduled` (default, as explore) or `immediate`. */
  readonly ipiDelivery?: IpiDelivery;
  /** A predicate on every state the run passes through; false is an `invariant` violation (the run stops there). */
  readonly invariant?: StateInvariant;
}

export interface ReplayResult {
  readonly machine: Machine;
  readonly kind: ViolationKind | undefined;
  readonly message: string | undefined;
}

/**
 * What exploration runs: a function that builds the machine (programs loaded), or a MachineImage of it. An image
 * is the fast way (an instance costs microseconds, not a boot) when the programs keep no per-machine state outside
 * emulated memory: a kernel's bookkeeping closed over by its programs is per machine, so build those afresh.
 */
export type Buildable = (() => Machine) | MachineImage;

/**
 * The build function for `build`. With `reuse`, an image's builder resets one machine for every call instead of
 * making one (MachineImage.reset): for the checker's own executions, whose machines no caller keeps.
 */
export function requireBuild(build: unknown, what: string, reuse = false): () => Machine {
  if (build instanceof MachineImage) {
    if (!reuse) return () => build.instantiate({ trace: false });
    let machine: Machine | undefined;
    return () => {
      if (machine === undefined) machine = build.instantiate({ trace: false });
      else build.reset(machine);
      return machine;
    };
  }
  if (typeof build !== 'function') {
    throw new InputError(`${what}: build ${describeValue(build)} must be a function or a MachineImage`);
  }
  return build as () => Machine;
}

/**
 * The final-state check is a function of the machine, or absent. What it returns is checked at every call (see
 * FinalCheck): true, false or a non-empty string, else an InputError naming the value and the rule.
 */
export function requireCheck(check: unknown, what: string): FinalCheck | undefined {
  if (check === undefined) return undefined;
  if (typeof check !== 'function') {
    throw new InputError(`${what} check ${describeValue(check)} must be a function (machine) => boolean | string`);
  }
  const user = check as (machine: Machine) => unknown;
  return (machine) => {
    const verdict = user(machine);
    if (typeof verdict === 'boolean') return verdict;
    if (typeof verdict === 'string' && verdict.trim() !== '') return verdict;
    const why =
      typeof verdict === 'string'
        ? 'a reason must say something: return true when the state is fine'
        : verdict instanceof Promise
          ? 'the check must be synchronous'
          : 'return true when the state is fine';
    throw new InputError(
      `${what} check returned ${describeValue(verdict)}; it must return true (ok), false (a violation) or a ` +
        `non-empty string (a violation, with that string as its message): ${why}`,
    );
  };
}

/** Where a schedule's entries left the run: steps taken (events are not steps), and the CPU that stepped last. */
interface Applied {
  readonly steps: number;
  /** -1 when no entry was a step. */
  readonly last: number;
  /** The state invariant became false during the entries: the run stopped there. */
  readonly broken: boolean;
}

/**
 * After a schedule's entries, the run is completed the least interleaved way: the CPU that moved last keeps
 * running until it cannot; then the lowest-numbered CPU that can move runs until it cannot, and so on; an IPI in
 * flight is delivered (the oldest first) only when no CPU can move, and then a buffered store drains. A completion
 * never switches away from a CPU that can still move, so every switch that matters is an entry of the schedule: a
 * counterexample needs only the choices that make the difference, and a short schedule still ends where the
 * program ends. This is also the path the exhaustive search takes first from any point (exhaustive.ts: the last
 * CPU if it can move, else the first).
 */
function complete(m: Machine, maxSteps: number, from: Applied, invariant: StateInvariant | undefined): number {
  let steps = from.steps;
  let current = from.last;
  while (m.firstStop === undefined) {
    const last = current >= 0 ? m.cpus[current] : undefined;
    const cpu = last?.started && last.runnable ? last : m.cpus.find((c) => c.started && c.runnable);
    if (cpu) {
      if (steps++ >= maxSteps) return LIMIT;
      m.step(cpu.id);
      current = cpu.id;
    } else {
      const ipi = m.ipiBus.inFlight[0];
      const buffered = ipi ? -1 : bufferedCpu(m.cpus);
      if (!ipi && buffered < 0) return ENDED;
      if (ipi) m.deliverIpi(ipi.to, ipi.nmi ? 'nmi' : ipi.vector);
      else m.drainStoreBuffer(buffered);
    }
    if (broken(m, invariant)) return BROKEN;
  }
  return ENDED;
}

/** How complete() stopped: the run ended, the step limit stopped it, or the invariant became false. */
const ENDED = 0;
const LIMIT = 1;
const BROKEN = 2;

/** The invariant, if given and false now: the run stops with an `invariant` violation. */
function broken(m: Machine, invariant: StateInvariant | undefined): boolean {
  return invariant !== undefined && !invariant(m);
}

const INVARIANT_BROKEN = { kind: 'invariant', message: 'the state invariant is false' } as const;

/**
 * Runs `schedule` (a string or entries, as `Machine.run` takes) on a fresh machine from `build`, completes the run
 * (see complete()), and classifies the result as exploration does: what a counterexample reproduces, step for step.
 * A schedule that does not apply (a CPU that cannot move at that point, a delivery with nothing in flight) is an
 * InputError naming the entry and why.
 */
export function replay(
  source: Buildable,
  schedule: string | readonly ScheduleEntry[],
  options: ReplayOptions = {},
): ReplayResult {
  const build = requireBuild(source, 'replay');
  const o = requireOptions<ReplayOptions>(options, 'replay options', ['check', 'maxSteps', 'ipiDelivery', 'invariant']);
  const maxSteps = o.maxSteps === undefined ? 10_000 : requireInteger(o.maxSteps, 'replay maxSteps', 1, 10_000_000);
  const delivery =
    o.ipiDelivery === undefined ? 'scheduled' : requireOneOf(o.ipiDelivery, 'replay ipiDelivery', IPI_DELIVERY_MODES);
  const check = requireCheck(o.check, 'replay');
  const invariant = requireInvariant(o.invariant);
  const m = build();
  m.ipiDelivery = delivery;
  return replayOn(m, schedule, maxSteps, check, invariant);
}

/** The per-state invariant is a function of the machine, or absent. */
export function requireInvariant(invariant: unknown): StateInvariant | undefined {
  if (invariant !== undefined && typeof invariant !== 'function') {
    throw new InputError(`invariant ${describeValue(invariant)} must be a function (machine) => boolean`);
  }
  return invariant as StateInvariant | undefined;
}

/** replay() on a machine just built (options checked). */
function replayOn(
  m: Machine,
  schedule: string | readonly ScheduleEntry[],
  maxSteps: number,
  check: FinalCheck | undefined,
  invariant?: StateInvariant,
): ReplayResult {
  const applied = applySchedule(m, schedule, invariant);
  return { machine: m, ...completeAndClassify(m, applied, maxSteps, check, invariant) };
}

/** Runs the schedule's entries on `m`, refusing one that does not apply (an InputError naming the entry). */
function applySchedule(m: Machine, schedule: string | readonly ScheduleEntry[], invariant?: StateInvariant): Applied {
  // An array is checked whole (shape, CPUs that exist) before the first step, as Machine.run checks it.
  if (typeof schedule !== 'string') checkScheduleArray(schedule, m.cpus.length);
  const entries = typeof schedule === 'string' ? parseSchedule(schedule) : schedule;
  let steps = 0;
  let last = -1;
  if (broken(m, invariant)) return { steps, last, broken: true };
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
      last = entry;
    } else {
      applyEvent(m, entry, index);
    }
    if (broken(m, invariant)) return { steps, last, broken: true };
  }
  return { steps, last, broken: false };
}

/** The run completed (see complete()) after a schedule's entries, and what it shows. */
function completeAndClassify(
  m: Machine,
  applied: Applied,
  maxSteps: number,
  check: FinalCheck | undefined,
  invariant?: StateInvariant,
): { readonly kind: ViolationKind | undefined; readonly message: string | undefined } {
  if (applied.broken) return INVARIANT_BROKEN;
  const ended = complete(m, maxSteps, applied, invariant);
  if (ended === BROKEN) return INVARIANT_BROKEN;
  return classify(m, ended === LIMIT, check);
}

/**
 * A schedule's hardware event, refused with the entry named when it does not apply: a CPU that does not exist, a
 * delivery with no such IPI in flight, an eviction of a page the CPU's TLB does not hold, a fill of a page that is
 * not mapped (or that the TLB holds already).
 */
function applyEvent(m: Machine, entry: HardwareEvent, index: number): void {
  const where = `schedule entry ${index} (${formatEvent(entry)})`;
  const cpu = m.cpus[entry.cpu];
  if (!cpu) throw new InputError(`${where} names CPU ${entry.cpu}, which does not exist`);
  if ('deliver' in entry) {
    if (m.ipiBus.find(entry.cpu, entry.deliver) < 0) {
      throw new InputError(`${where}: no such IPI is in flight to CPU ${entry.cpu}`);
    }
    m.deliverIpi(entry.cpu, entry.deliver);
    return;
  }
  if ('drain' in entry) {
    if (!m.drainStoreBuffer(entry.cpu)) throw new InputError(`${where}: CPU ${entry.cpu}'s store buffer is empty`);
    return;
  }
  if ('psc' in entry) {
    if (!m.evictPagingStructureEntry(entry.cpu, entry.psc, entry.va)) {
      throw new InputError(`${where}: CPU ${entry.cpu}'s paging-structure caches hold no such ${entry.psc} entry`);
    }
    return;
  }
  if ('pscFill' in entry) {
    if (!m.fillPagingStructureEntry(entry.cpu, entry.pscFill, entry.va)) {
      throw new InputError(
        `${where}: nothing to fill: CPU ${entry.cpu} has no paging-structure caches, holds that ${entry.pscFill} ` +
          'entry already, or its walk finds no present non-leaf entry there',
      );
    }
    return;
  }
  const held = holdsTranslation(cpu.tlb, entry.va);
  if (entry.tlb === 'evict') {
    if (!held) throw new InputError(`${where}: CPU ${entry.cpu}'s TLB holds no entry for that page`);
    m.evictTlb(entry.cpu, entry.va);
    return;
  }
  if (held) throw new InputError(`${where}: CPU ${entry.cpu}'s TLB already holds that page`);
  if (!m.fillTlb(entry.cpu, entry.va)) {
    throw new InputError(`${where}: nothing to fill: CPU ${entry.cpu}'s walk for that page finds no translation`);
  }
}

/**
 * Whether `entries` still produce a violation of `kind`: false when they no longer apply. Only the entries' own
 * refusal means that; an error from the check (a user's bug, or an answer it must not give) is the caller's.
 */
function stillViolates(build: () => Machine, entries: readonly ScheduleEntry[], kind: ViolationKind, o: ReplayOptions) {
  const m = build();
  let applied: Applied;
  try {
    applied = applySchedule(m, entries, o.invariant);
  } catch {
    return false;
  }
  return completeAndClassify(m, applied, o.maxSteps ?? 10_000, o.check, o.invariant).kind === kind;
}

/**
 * Drops entries (halves, then quarters, ... then single ones) while the violation persists (ddmin-style), and
 * repeats the single-entry pass until no entry can go: a dropped later entry can make an earlier one unneeded.
 */
export function minimise(
  build: () => Machine,
  entries: readonly ScheduleEntry[],
  kind: ViolationKind,
  o: ReplayOptions,
): readonly ScheduleEntry[] {
  let current = entries;
  for (let chunk = Math.max(1, current.length >> 1); chunk >= 1; chunk >>= 1) {
    let dropped = true;
    while (dropped) {
      dropped = false;
      for (let i = 0; i < current.length; ) {
        const candidate = [...current.slice(0, i), ...current.slice(i + chunk)];
        if (candidate.length < current.length && stillViolates(build, candidate, kind, o)) {
          current = candidate;
          dropped = true;
        } else i += chunk;
      }
      if (chunk > 1) break;
    }
  }
  return current;
}

/**
 * What a search reports of the violations it found (one per kind, the shortest path it took): each schedule
 * minimised, replayed for its message, shortest first (then by kind). Every search reports through this.
 */
export function reportViolations(build: () => Machine, found: readonly Execution[], o: ReplayOptions): Violation[] {
  return found
    .map((v): Violation => {
      const entries = minimise(build, v.schedule, v.kind!, o);
      const again = replay(build, entries, o);
      return {
        kind: v.kind!,
        schedule: formatSchedule(entries),
        scheduleLength: entries.length,
        steps: entries.length,
        ...(again.message === undefined ? {} : { message: again.message }),
      };
    })
    .sort((a, b) => a.scheduleLength - b.scheduleLength || a.kind.localeCompare(b.kind));
}
