import { type Cpu, STATUS } from '../cpu/cpu.ts';
import type { InFlightIpi, IpiBus } from '../cpu/ipi-bus.ts';
import { InputError } from '../mmu/input-error.ts';
import { type CostModel, stepCost } from './cost-model.ts';
import { formatEvent, isStepRun, type Prng, type PscEntryKind, type ScheduleRun } from './schedule.ts';

// Machine.run's loops, one per schedule policy. They are the hot path: each decides the run's recording mode once
// and steps through the machine's stepRecording, which V8 inlines with the unrecorded step (a method, so the
// call's target is a constant of the machine's class); nothing here allocates per step.

const STATUS_RUNNING = STATUS.RUNNING;

/**
 * What the run loops need of a machine: its CPUs and IPI bus, a step recorded as the run says, delivery events,
 * the clocks of a timed run and a schedule's TLB events. Machine is one.
 */
export interface RunLoopMachine {
  readonly cpus: readonly Cpu[];
  readonly ipiBus: IpiBus;
  /** Steps taken since creation. */
  readonly stepCount: number;
  /** Set once a CPU stopped with an event: the run ends. */
  readonly firstStop: object | undefined;
  /** What the run's steps record (the trace, footprints, debug logs), decided once per run. */
  recordingMode(observe: boolean): number;
  /** Steps `cpu` (running, or able to move), recording what `mode` says. */
  stepRecording(cpu: Cpu, mode: number, observe: boolean): void;
  /** Each CPU's simulated clock in nanoseconds (the timed loop). */
  readonly clocks: Float64Array;
  /** When each IPI in flight was sent (its sender's clock), kept during a timed run. */
  readonly ipiSentAt: ReadonlyMap<InFlightIpi, number>;
  /** A delivery event: the in-flight IPI at `index` (to `cpu`) reaches its target, recorded in the trace. */
  deliverInFlight(cpu: Cpu, index: number): InFlightIpi;
  evictTlb(id: number, va: number): void;
  fillTlb(id: number, va: number): boolean;
  /** A store-buffer drain event: CPU `id`'s oldest buffered store reaches memory. */
  drainStoreBuffer(id: number): boolean;
  /** A paging-structure-cache eviction event. */
  evictPagingStructureEntry(id: number, kind: PscEntryKind, va: number): boolean;
  /** A paging-structure-cache fill event. */
  fillPagingStructureEntry(id: number, kind: PscEntryKind, va: number): boolean;
}

/** Follows checked schedule runs; returns whether maxSteps stopped it. */
export function runSchedule(
  m: RunLoopMachine,
  runs: readonly ScheduleRun[],
  maxSteps: number,
  observe: boolean,
): boolean {
  const start = m.stepCount;
  const mode = m.recordingMode(observe);
  let index = 0;
  for (const run of runs) {
    if (!isStepRun(run)) {
      if (m.firstStop) return false;
      if ('tlb' in run) {
        if (run.tlb === 'evict') m.evictTlb(run.cpu, run.va);
        else m.fillTlb(run.cpu, run.va);
      } else if ('drain' in run) {
        m.drainStoreBuffer(run.cpu);
      } else if ('psc' in run) {
        m.evictPagingStructureEntry(run.cpu, run.psc, run.va);
      } else if ('pscFill' in run) {
        m.fillPagingStructureEntry(run.cpu, run.pscFill, run.va);
      } else {
        const found = m.ipiBus.find(run.cpu, run.deliver);
        if (found < 0) {
          throw new InputError(
            `schedule entry ${index} (${formatEvent(run)}) delivers to CPU ${run.cpu}, but no such IPI is in flight`,
          );
        }
        m.deliverInFlight(m.cpus[run.cpu]!, found);
      }
      index++;
      continue;
    }
    const cpu = m.cpus[run.cpu]!;
    for (let k = 0; k < run.times; k++, index++) {
      if (m.firstStop) return false;
      if (m.stepCount - start >= maxSteps) return true;
      if (cpu.isStopped) throw new InputError(`schedule entry ${index} names CPU ${run.cpu}, which is ${cpu.state}`);
      // The CPUs were checked with the schedule (they exist and have programs): step as the run loops do.
      m.stepRecording(cpu, mode, observe);
    }
  }
  return false;
}

/**
 * Steps the next runnable CPU after the last one until none can move, one stops, or `maxSteps`. Returns the
 * steps taken, or -1 when the limit stopped it with CPUs still able to move. Kept small: it is the hot loop.
 */
export function runRoundRobin(m: RunLoopMachine, maxSteps: number, observe: boolean): number {
  const cpus = m.cpus;
  const n = cpus.length;
  let last = n - 1;
  let steps = 0;
  const mode = m.recordingMode(observe);
  while (m.firstStop === undefined) {
    let next: Cpu | undefined;
    for (let k = 1; k <= n; k++) {
      const c = last + k < n ? last + k : last + k - n;
      const cpu = cpus[c]!;
      if (cpu.status === STATUS_RUNNING || cpu.runnable) {
        next = cpu;
        last = c;
        break;
      }
    }
    if (next === undefined) return steps;
    if (steps >= maxSteps) return -1;
    m.stepRecording(next, mode, observe);
    steps++;
  }
  return steps;
}

/** The first CPU (from `from`, wrapping) whose store buffer holds a store, or -1. */
export function bufferedCpu(cpus: readonly Cpu[], from = 0): number {
  for (let k = 0; k < cpus.length; k++) {
    const c = (from + k) % cpus.length;
    const sb = cpus[c]!.port.storeBuffer;
    if (sb !== undefined && sb.length !== 0) return c;
  }
  return -1;
}

/**
 * Round-robin with the interrupt bus as one more participant: CPU 0, 1, ..., n-1, then the bus, which delivers
 * the oldest IPI in flight (a delivery is an event, not a step). So an IPI waits at most one round, deterministically.
 * With store buffers, the bus's turn with no IPI in flight drains one store: the oldest of the next CPU (round
 * robin) that has one.
 */
export function runRoundRobinWithBus(m: RunLoopMachine, maxSteps: number, observe: boolean): number {
  const cpus = m.cpus;
  const n = cpus.length;
  let last = n; // the bus went last: CPU 0 moves first
  let steps = 0;
  let drainNext = 0;
  const mode = m.recordingMode(observe);
  while (m.firstStop === undefined) {
    let picked = -1;
    for (let k = 1; k <= n + 1 && picked < 0; k++) {
      const t = (last + k) % (n + 1);
      if (t === n ? m.ipiBus.inFlight.length > 0 || bufferedCpu(cpus) >= 0 : cpus[t]!.runnable) picked = t;
    }
    if (picked < 0) return steps;
    // The limit ends the run before anything else happens, deliveries included.
    if (steps >= maxSteps) return -1;
    last = picked;
    if (picked === n) {
      if (m.ipiBus.inFlight.length > 0) {
        const oldest = m.ipiBus.inFlight[0]!;
        m.deliverInFlight(cpus[oldest.to]!, 0);
      } else {
        const c = bufferedCpu(cpus, drainNext);
        m.drainStoreBuffer(c);
        drainNext = (c + 1) % n;
      }
      continue;
    }
    m.stepRecording(cpus[picked]!, mode, observe);
    steps++;
  }
  return steps;
}

/**
 * As runRoundRobin, picking uniformly with the seeded PRNG among the runnable CPUs, the IPIs in flight (a picked
 * IPI is delivered, an event that takes no step) and the CPUs with buffered stores (a picked one drains its oldest).
 */
export function runRandom(m: RunLoopMachine, prng: Prng, maxSteps: number, observe: boolean): number {
  const cpus = m.cpus;
  // The CPUs that can move, collected by one scan per step into this list (made once per run).
  const runnable: Cpu[] = [];
  let steps = 0;
  const mode = m.recordingMode(observe);
  while (!m.firstStop) {
    let count = 0;
    for (const c of cpus) if (c.runnable) runnable[count++] = c;
    const inFlight = m.ipiBus.inFlight.length;
    let buffered = 0;
    for (const c of cpus) if (c.port.storeBuffer !== undefined && c.port.storeBuffer.length !== 0) buffered++;
    if (count + inFlight + buffered === 0) return steps;
    if (steps >= maxSteps) return -1;
    const pick = prng.below(count + inFlight + buffered);
    if (pick >= count + inFlight) {
      let k = pick - count - inFlight;
      let c = bufferedCpu(cpus);
      while (k-- > 0) c = bufferedCpu(cpus, c + 1);
      m.drainStoreBuffer(c);
      continue;
    }
    if (pick >= count) {
      m.deliverInFlight(cpus[m.ipiBus.inFlight[pick - count]!.to]!, pick - count);
      continue;
    }
    m.stepRecording(runnable[pick]!, mode, observe);
    steps++;
  }
  return steps;
}

/**
 * The timed schedule: the CPU whose clock is lowest (the lowest id among equals) takes the next step, and its
 * clock advances by what the step cost (cost-model.ts). An IPI in flight is delivered once its sender's clock at
 * the send plus the delivery latency is reached. A CPU that could not move and can now (its spin condition
 * written, an interrupt delivered) has waited until then: its clock moves up to the time that woke it.
 */
export function runTimed(m: RunLoopMachine, costs: CostModel, maxSteps: number, observe: boolean): number {
  const cpus = m.cpus;
  const clocks = m.clocks;
  const mode = m.recordingMode(observe);
  let steps = 0;
  // Which CPUs could move before the last event (a CPU that can move now and could not then was woken by it).
  const couldMove = new Uint8Array(cpus.length);
  for (const c of cpus) couldMove[c.id] = c.runnable ? 1 : 0;
  const catchUp = (time: number) => {
    for (const c of cpus) {
      const can = c.runnable ? 1 : 0;
      if (can && !couldMove[c.id] && clocks[c.id]! < time) clocks[c.id] = time;
      couldMove[c.id] = can;
    }
  };
  while (m.firstStop === undefined) {
    let next: Cpu | undefined;
    for (const c of cpus) if (c.runnable && (next === undefined || clocks[c.id]! < clocks[next.id]!)) next = c;
    const now = next === undefined ? Number.POSITIVE_INFINITY : clocks[next.id]!;
    // The IPI in flight due first, if it is due before the next step (or nothing else can happen).
    let due = -1;
    let dueAt = Number.POSITIVE_INFINITY;
    const inFlight = m.ipiBus.inFlight;
    for (let i = 0; i < inFlight.length; i++) {
      const at = (m.ipiSentAt.get(inFlight[i]!) ?? 0) + costs.ipiDelivery;
      if (at < dueAt) {
        dueAt = at;
        due = i;
      }
    }
    if (due >= 0 && dueAt <= now) {
      m.deliverInFlight(cpus[inFlight[due]!.to]!, due);
      catchUp(dueAt);
      continue;
    }
    if (next === undefined) return steps;
    if (steps >= maxSteps) return -1;
    m.stepRecording(next, mode, observe);
    // The cost model gives a store buffer no latency: what the step buffered drains as the step completes.
    if (next.port.storeBuffer !== undefined) while (m.drainStoreBuffer(next.id));
    clocks[next.id] = now + stepCost(next, costs);
    steps++;
    catchUp(clocks[next.id]!);
  }
  return steps;
}
