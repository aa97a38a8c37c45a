import type { Cpu } from '../cpu/cpu.ts';
import type { Outcome } from '../cpu/instruction.ts';
import { IPI_DELIVERY_MODES, type IpiDelivery } from '../cpu/ipi-bus.ts';
import { formatVirtual } from '../mmu/address.ts';
import { describeValue, InputError, requireOneOf, requireOptions } from '../mmu/input-error.ts';
import { type CostModel, resolveCosts } from './cost-model.ts';
import {
  checkScheduleArray,
  checkScheduledCpus,
  Prng,
  parseScheduleRuns,
  type SchedulePolicy,
  type ScheduleRun,
} from './schedule.ts';
import type { FirstStop } from './step-recording.ts';

// What Machine.run takes and returns: its options, checked into a plan before the first step, and its result,
// with the report of a deadlock.

export interface RunOptions {
  /** Default 'round-robin'. An array or string is an explicit schedule (see parseSchedule). */
  readonly schedule?: SchedulePolicy;
  /** Seed for the 'random' policy. Default 1. */
  readonly seed?: number;
  /** Upper bound on steps in this run. Default 100000. */
  readonly maxSteps?: number;
  /** IPI delivery for this run only (see MachineConfig.ipiDelivery); the machine's setting is restored after. */
  readonly ipiDelivery?: IpiDelivery;
  /** Schedule 'timed' only: costs that differ from the defaults (see cost-model.ts), in nanoseconds. */
  readonly costs?: Partial<CostModel>;
}

export interface RunResult {
  readonly outcome: Outcome;
  /** Steps taken by this run. */
  readonly steps: number;
  /** The run hit maxSteps with CPUs still able to move. */
  readonly limitReached: boolean;
  /** The first CPU that stopped with an event, and why. */
  readonly stop?: FirstStop;
  /** With outcome `deadlock`: who waits on what (see Machine.deadlockReport). */
  readonly deadlock?: string;
  readonly cpus: readonly { readonly id: number; readonly state: Cpu['state'] }[];
}

/** A run's checked options: its loop is the first of prng, costs, runs that is set, else round-robin. */
export interface RunPlan {
  readonly maxSteps: number;
  /** The 'random' policy's PRNG. */
  readonly prng?: Prng;
  /** The 'timed' policy's costs. */
  readonly costs?: CostModel;
  /** An explicit schedule, checked against the machine's CPUs. */
  readonly runs?: readonly ScheduleRun[];
  /** IPI delivery for this run; undefined: the machine's. */
  readonly ipiDelivery?: IpiDelivery;
}

const RUN_KEYS = ['schedule', 'seed', 'maxSteps', 'ipiDelivery', 'costs'] as const;
/** No options: nothing to check (the checker runs a reset machine this way once per execution). */
const DEFAULT_PLAN: RunPlan = Object.freeze({ maxSteps: 100_000 });

/**
 * Checks `options` for a run on `cpus` (the whole schedule included; a schedule string is parsed into runs, its
 * repeats never expanded) and returns the plan. Throws InputError naming the first bad value.
 */
export function planRun(options: RunOptions | undefined, cpus: readonly Cpu[]): RunPlan {
  if (options === undefined) return DEFAULT_PLAN;
  const o = requireOptions<RunOptions>(options, 'run options', RUN_KEYS);
  const maxSteps = o.maxSteps === undefined ? 100_000 : o.maxSteps;
  if (typeof maxSteps !== 'number' || !Number.isSafeInteger(maxSteps) || maxSteps < 0) {
    throw new InputError(`maxSteps ${describeValue(maxSteps)} must be an integer >= 0`);
  }
  const policy = o.schedule === undefined ? 'round-robin' : o.schedule;
  const prng = policy === 'random' ? new Prng(o.seed === undefined ? 1 : o.seed) : undefined;
  const timed = policy === 'timed';
  if (!timed && o.costs !== undefined) {
    throw new InputError(`costs are used by schedule 'timed', not ${describeValue(policy)}`);
  }
  const costs = timed ? resolveCosts(o.costs) : undefined;
  if (policy !== 'random' && o.seed !== undefined) {
    throw new InputError(
      `seed ${describeValue(o.seed)} is only used by schedule 'random', not ${describeValue(policy)}`,
    );
  }
  const ipiDelivery =
    o.ipiDelivery === undefined ? undefined : requireOneOf(o.ipiDelivery, 'ipiDelivery', IPI_DELIVERY_MODES);
  let runs: ScheduleRun[] | undefined;
  if (policy !== 'round-robin' && !prng && !timed) {
    runs = typeof policy === 'string' ? parseScheduleRuns(policy) : checkScheduleArray(policy, cpus.length);
    checkScheduledCpus(
      runs,
      cpus.map((c) => c.started),
    );
  }
  return {
    maxSteps,
    ...(prng ? { prng } : {}),
    ...(costs ? { costs } : {}),
    ...(runs ? { runs } : {}),
    ...(ipiDelivery ? { ipiDelivery } : {}),
  };
}

/**
 * Who waits on what in a deadlock: each spinning CPU, the word it spins on (named when `nameOf` knows it: a lock
 * word, a csd), whether its interrupts are on, and the IPIs it has not accepted.
 */
export function describeDeadlock(cpus: readonly Cpu[], nameOf: (va: number) => string | undefined): string {
  const lines = ['deadlock: no CPU can move'];
  for (const cpu of cpus) {
    const va = cpu.spinningOn;
    if (va === undefined) continue;
    const name = nameOf(va);
    const what = name ? `${name} (${formatVirtual(va)})` : formatVirtual(va);
    const irqs = cpu.interruptsEnabled ? 'interrupts on' : 'interrupts off';
    const pending = cpu.apic.requested().map((v) => `0x${v.toString(16)}`);
    const waiting = pending.length ? `, IPI ${pending.join(', ')} pending` : '';
    lines.push(`  CPU${cpu.id} spins on ${what} with ${irqs}${waiting}`);
  }
  return lines.join('\n');
}
