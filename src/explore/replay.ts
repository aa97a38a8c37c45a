import { MachineImage } from '../machine/image.ts';
import type { Machine } from '../machine/machine.ts';
import {
  checkScheduleArray,
  formatEvent,
  type HardwareEvent,
  parseSchedule,
  type ScheduleEntry,
} from '../machine/schedule.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { describeValue, InputError, requireInteger, requireOptions } from '../mmu/input-error.ts';
import { classify, type FinalCheck, type StateInvariant, type ViolationKind } from './execution.ts';

// Replaying a schedule, as a counterexample is reproduced, and shrinking one while its violation persists.

export interface ReplayOptions {
  /** A predicate on the final machine; false is an `assertion` violation. */
  readonly check?: FinalCheck;
  /** Steps before the run counts as a `step-bound` violation. Default 10,000. */
  readonly maxSteps?: number;
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

/** The final-state check is a function of the machine, or absent. */
export function requireCheck(check: unknown, what: string): FinalCheck | undefined {
  if (check !== undefined && typeof check !== 'function') {
    throw new InputError(`${what} check ${describeValue(check)} must be a function (machine) => boolean`);
  }
  return check as FinalCheck | undefined;
}

/**
 * After a schedule's entries, the run is completed the least interleaved way: the lowest-numbered CPU that can move
 * runs until it cannot, and so on; an IPI in flight is delivered when no CPU can move. So a counterexample only
 * needs the choices that make the difference, and a short schedule still ends where the program ends.
 */
function complete(m: Machine, maxSteps: number, taken: number, invariant: StateInvariant | undefined): number {
  let steps = taken;
  while (m.firstStop === undefined) {
    const cpu = m.cpus.find((c) => c.started && c.runnable);
    if (cpu) {
      if (steps++ >= maxSteps) return LIMIT;
      m.step(cpu.id);
    } else {
      const ipi = m.ipiBus.inFlight[0];
      if (!ipi) return ENDED;
      m.deliverIpi(ipi.to, ipi.nmi ? 'nmi' : ipi.vector);
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
  const o = requireOptions<ReplayOptions>(options, 'replay options', ['check', 'maxSteps', 'invariant']);
  const maxSteps = o.maxSteps === undefined ? 10_000 : requireInteger(o.maxSteps, 'replay maxSteps', 1, 10_000_000);
  return replayOn(build(), schedule, maxSteps, requireCheck(o.check, 'replay'), requireInvariant(o.invariant));
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
  // An array is checked whole (shape, CPUs that exist) before the first step, as Machine.run checks it.
  if (typeof schedule !== 'string') checkScheduleArray(schedule, m.cpus.length);
  const entries = typeof schedule === 'string' ? parseSchedule(schedule) : schedule;
  if (broken(m, invariant)) return { machine: m, ...INVARIANT_BROKEN };
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
    } else {
      applyEvent(m, entry, index);
    }
    if (broken(m, invariant)) return { machine: m, ...INVARIANT_BROKEN };
  }
  const ended = complete(m, maxSteps, steps, invariant);
  if (ended === BROKEN) return { machine: m, ...INVARIANT_BROKEN };
  return { machine: m, ...classify(m, ended === LIMIT, check) };
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
  const page = entry.va - (entry.va % PAGE_SIZE);
  const held = cpu.tlb.probe(page) >= 0;
  if (entry.tlb === 'evict') {
    if (!held) throw new InputError(`${where}: CPU ${entry.cpu}'s TLB holds no 4 KiB entry for that page`);
    m.evictTlb(entry.cpu, entry.va);
    return;
  }
  if (held) throw new InputError(`${where}: CPU ${entry.cpu}'s TLB already holds that page`);
  if (!m.fillTlb(entry.cpu, entry.va)) {
    throw new InputError(`${where}: nothing to fill: CPU ${entry.cpu}'s walk for that page finds no 4 KiB translation`);
  }
}

/** Whether `entries` still produce a violation of `kind` (false when they no longer apply). */
function stillViolates(build: () => Machine, entries: readonly ScheduleEntry[], kind: ViolationKind, o: ReplayOptions) {
  try {
    return replayOn(build(), entries, o.maxSteps ?? 10_000, o.check, o.invariant).kind === kind;
  } catch {
    return false;
  }
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
