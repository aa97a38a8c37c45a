import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { explore } from '../../src/explore/explore.ts';
import { Machine } from '../../src/machine/machine.ts';
import type { Kernel } from '../../src/mm/kernel.ts';
import type { KernelProgram } from '../../src/mm/kernel-program.ts';
import {
  holdTask,
  isCurrentOn,
  LOCAL_TIMER_VECTOR,
  releaseTask,
  type SchedSetup,
  type SchedTaskSpec,
  type Scheduler,
  schedReady,
  schedSetup,
  taskCpu,
} from '../../src/mm/sched.ts';
import { lockWord } from '../../src/mm/smp.ts';

const MiB = 1024 * 1024;

/** A booted kernel machine (IPIs in flight until delivered) whose `cpus` run the scheduler `setup` describes. */
function schedMachine(cpus: number, setup: (kernel: Kernel) => SchedSetup, trace = false) {
  const machine = Machine.create({ cpus, trace, memory: 16 * MiB, kernel: {}, ipiDelivery: 'scheduled' });
  const kernel = machine.kernel!;
  const sched = schedSetup(kernel, machine.boot!.taskStacks, setup(kernel));
  for (const c of sched.cpus) machine.load(c, sched.idle);
  return { machine, kernel, sched };
}

function read(m: Machine, va: number): number {
  return m.memory.read64(m.physicalAddress(va)!);
}

/** A word the tasks write (lock words 12.. of the SMP area). */
const out = (kernel: Kernel, n: number) => lockWord(kernel, 12 + n);

/** Steps the CPUs round-robin, delivering nothing, until `done` holds (or every CPU is stuck). */
function runUntil(m: Machine, done: () => boolean, limit = 50_000): void {
  const ids = m.cpus.map((c) => c.id);
  for (let n = 0; n < limit && !done(); ) {
    let moved = false;
    for (const id of ids) {
      if (done()) return;
      if (!m.runnable(id)) continue;
      m.step(id);
      moved = true;
      n++;
    }
    if (!moved) throw new Error('no CPU can move before the condition holds');
  }
  if (!done()) throw new Error('the condition did not hold within the step limit');
}

/** A step that pushes two values, stores `mark` at word `at`, then pops and checks them (its frames are on its stack). */
function pushPop(kernel: Kernel, at: number, mark: number, between?: (x: Assembler) => KernelProgram<void>) {
  return function* pushPopStep(x: Assembler) {
    yield x.push(mark * 2 + 1);
    yield x.push(mark * 2 + 2);
    yield x.store(out(kernel, at), 8, mark);
    if (between) yield* between(x);
    const b: number = yield x.pop();
    const a: number = yield x.pop();
    yield x.assert(a === mark * 2 + 1 && b === mark * 2 + 2, `the stack holds ${a}, ${b} for mark ${mark}`);
  };
}

/** A step that stores the CPU it runs on (x.cpuId) at word `at`, plus 100 (so 0 means "never ran"). */
function noteCpu(kernel: Kernel, at: number) {
  return function* noteCpuStep(x: Assembler) {
    yield x.store(out(kernel, at), 8, 100 + x.cpuId);
  };
}

describe('scheduler set-up', () => {
  it('refuses an unknown policy, too many tasks or CPUs, and a task on a CPU outside the scheduler', () => {
    const m = Machine.create({ cpus: 2, memory: 16 * MiB, kernel: {} });
    const kernel = m.kernel!;
    const stacks = m.boot!.taskStacks;
    const step = function* (x: Assembler) {
      yield x.pause();
    };
    const task = (cpu: number): SchedTaskSpec => ({ name: 't', cpu, steps: [step] });
    expect(() => schedSetup(kernel, stacks, { policy: 'fifo' as 'pinned', tasks: [task(0)] })).toThrow(
      /scheduler policy 'fifo'.*'pinned', 'preempt', 'migrate'/,
    );
    expect(() => schedSetup(kernel, stacks, { policy: 'pinned', tasks: [0, 1, 0, 1, 0].map(task) })).toThrow(
      /scheduler tasks an array of length 5 must be an array of 1..4 tasks/,
    );
    expect(() => schedSetup(kernel, stacks, { policy: 'pinned', tasks: [task(1)], cpus: [0] })).toThrow(
      /task t cpu 1 is not a scheduler CPU \(0\)/,
    );
    const big = Machine.create({ cpus: 5, memory: 16 * MiB, kernel: {} });
    expect(() => schedSetup(big.kernel!, big.boot!.taskStacks, { policy: 'pinned', tasks: [task(0)] })).toThrow(
      /the kernel has 5 CPUs, more than 4/,
    );
  });
});

describe('scheduler policies', () => {
  it('pinned: no tick is armed; two tasks on one CPU run one after the other to their end', () => {
    const { machine, kernel } = schedMachine(2, (k) => ({
      policy: 'pinned',
      tasks: [
        { name: 'A', cpu: 1, steps: [pushPop(k, 0, 1), noteCpu(k, 1)] },
        { name: 'B', cpu: 1, steps: [noteCpu(k, 2)] },
      ],
    }));
    const r = machine.run({ maxSteps: 20_000 });
    expect(r.outcome).toBe('ok');
    expect(machine.ipiBus.sentCount).toBe(0);
    expect([0, 1, 2].map((n) => read(machine, out(kernel, n)))).toEqual([1, 101, 101]);
    expect(machine.cpus.map((c) => c.state)).toEqual(['halted', 'halted']);
  });
});

describe('scheduler ticks', () => {
  it('preempt: a tick on CPU1 switches from A (mid-step, its values pushed) to B; A resumes where it was, its stack intact', () => {
    const { machine, kernel, sched } = schedMachine(2, (k) => ({
      policy: 'preempt',
      ticks: 1,
      tasks: [
        {
          name: 'A',
          cpu: 1,
          // Between its pushes and pops A spins until word 3 is set, and notes whether B had run (word 2) by then.
          steps: [
            pushPop(k, 0, 7, function* (x) {
              yield x.store(out(k, 3), 8, 1);
              yield x.pause();
              const b: number = yield x.load(out(k, 2));
              yield x.store(out(k, 4), 8, b);
            }),
          ],
        },
        { name: 'B', cpu: 1, steps: [noteCpu(k, 2)] },
      ],
    }));
    // A is inside its step, its two values on its stack; the one tick CPU1 armed is in flight.
    runUntil(machine, () => read(machine, out(kernel, 3)) === 1);
    expect(kernel.current[1]).toBe('A');
    expect(machine.inFlightIpis.filter((i) => i.to === 1)).toMatchObject([{ from: 1, vector: LOCAL_TIMER_VECTOR }]);
    machine.deliverIpi(1, LOCAL_TIMER_VECTOR);
    // The tick sets need_resched (B is queued) and preempt_schedule_irq switches to B, which runs to its end.
    runUntil(machine, () => read(machine, out(kernel, 2)) !== 0);
    expect(read(machine, out(kernel, 2))).toBe(101);
    expect(read(machine, out(kernel, 4))).toBe(0); // A has not got past its pause yet
    const r = machine.run({ maxSteps: 20_000 });
    expect(r.outcome).toBe('ok');
    // A resumed in the tick handler, iret'd to its step, and saw B's word: B ran between A's pushes and pops.
    expect(read(machine, out(kernel, 4))).toBe(101);
    expect(read(machine, out(kernel, 0))).toBe(7);
    expect(read(machine, sched.taskWord(1, 'DEAD'))).toBe(1);
  });

  it('migrate: a task that starts on CPU1 moves at a tick and finishes on CPU2, on its own stack', () => {
    const { machine, kernel, sched } = schedMachine(3, (k) => ({
      policy: 'migrate',
      ticks: 1,
      cpus: [0, 1, 2],
      tasks: [
        {
          name: 'A',
          cpu: 1,
          steps: [
            pushPop(k, 0, 3, function* (x) {
              yield x.store(out(k, 3), 8, 1);
              yield x.pause();
            }),
            noteCpu(k, 1),
            pushPop(k, 2, 5),
          ],
        },
      ],
    }));
    runUntil(machine, () => read(machine, out(kernel, 3)) === 1);
    expect(kernel.current[1]).toBe('A');
    machine.deliverIpi(1, LOCAL_TIMER_VECTOR);
    // The tick asks A to move to CPU2; at the end of its step A puts itself on CPU2's queue and switches away.
    runUntil(machine, () => read(machine, out(kernel, 1)) !== 0);
    expect(read(machine, out(kernel, 1))).toBe(102);
    expect(kernel.current[1]).toBe('swapper/1');
    expect(kernel.current[2]).toBe('A');
    expect(read(machine, sched.taskWord(1, 'CPU'))).toBe(2);
    // The #DF handler's view: CPU2 runs on A's stack now, CPU1 on its boot stack.
    expect(kernel.currentStack.slice(2, 6)).toEqual([
      machine.boot!.taskStacks[1]!.bottom,
      machine.boot!.taskStacks[1]!.top,
      sched.stacks[1]!.bottom,
      sched.stacks[1]!.top,
    ]);
    const r = machine.run({ maxSteps: 20_000 });
    expect(r.outcome).toBe('ok');
    expect(read(machine, out(kernel, 2))).toBe(5);
  });
});

/** The two searches take 4 s each on their own, more beside the rest of the suite. */
describe('holding a task off every CPU', { timeout: 30_000 }, () => {
  /**
   * CPU1 schedules A and B (preempt, one tick the checker may deliver at any point); CPU0, outside the scheduler,
   * holds B (retrying while B runs), says so in word 5, clears it, and releases B. Each of B's two steps checks that
   * word: B never runs while held.
   */
  function heldMachine(hold: 'holdTask' | 'flag only' = 'holdTask') {
    const checkNotHeld = function* checkNotHeld(x: Assembler, _task: number, step: number) {
      const holding: number = yield x.load(out(kernel, 5));
      yield x.assert(holding === 0, `B runs (step ${step}) while CPU0 holds it`);
      yield x.store(out(kernel, 1 + step), 8, 1);
    };
    const { machine, kernel, sched } = schedMachine(2, (k) => ({
      policy: 'preempt',
      ticks: 1,
      cpus: [1],
      tasks: [
        { name: 'A', cpu: 1, steps: [pushPop(k, 0, 1)] },
        {
          name: 'B',
          cpu: 1,
          // One program for both steps: a step knows which it is by its argument (the checker tells programs apart
          // by source text and arguments, not by what a closure captured).
          steps: [checkNotHeld, checkNotHeld],
        },
      ],
    }));
    machine.load(0, function* holder(x: Assembler) {
      yield* schedReady(x, kernel);
      for (;;) {
        if (hold === 'flag only') {
          // A mutant: the held word alone, without the rq lock, the on_cpu check or the dequeue.
          yield x.store(sched.taskWord(2, 'HELD'), 8, 1);
          break;
        }
        const held: number = yield* holdTask(x, kernel, 2);
        if (held === 1) break;
        yield x.spinUntil(sched.taskWord(2, 'ON_CPU'), 8, (v) => v === 0); // B runs: wait until it is off
      }
      yield x.store(out(kernel, 5), 8, 1);
      const cpu: number = yield* taskCpu(x, kernel, 2);
      yield x.assert(cpu === 1, `B is on CPU1's queue (task_cpu ${cpu})`);
      yield x.store(out(kernel, 5), 8, 0);
      yield* releaseTask(x, kernel, 2);
    });
    return machine;
  }

  it('a held task is never picked until released, in every interleaving and tick time (stateful, exhaustive)', () => {
    const probe = heldMachine();
    const sched = probe.kernel!.scheduler as Scheduler;
    const word = (m: Machine, va: number) => read(m, va);
    const result = explore(heldMachine, {
      strategy: 'exhaustive',
      search: 'stateful',
      maxSteps: 20_000,
      // Held means off every CPU: not claimed (on_cpu), not current, not queued, whenever the rq lock is free.
      invariant: (m) =>
        word(m, sched.rqLock(1)) !== 0 ||
        word(m, sched.taskWord(2, 'HELD')) === 0 ||
        (word(m, sched.taskWord(2, 'ON_CPU')) === 0 &&
          word(m, sched.cpuWord(1, 'CURR')) !== 2 &&
          (word(m, sched.cpuWord(1, 'RQ')) & 4) === 0),
      check: (m) =>
        (word(m, out(m.kernel!, 0)) === 1 && word(m, out(m.kernel!, 1)) === 1 && word(m, out(m.kernel!, 2)) === 1) ||
        'A or B did not finish',
    });
    expect(result).toMatchObject({ complete: true, violations: [] });
  });

  it('the hold needs its lock, on_cpu check and dequeue: a bare held flag lets B run while held', () => {
    const result = explore(() => heldMachine('flag only'), {
      strategy: 'exhaustive',
      search: 'stateful',
      maxSteps: 20_000,
    });
    expect(result.violations.map((v) => v.kind)).toContain('assertion');
    expect(result.violations.find((v) => v.kind === 'assertion')!.message).toMatch(
      /B runs \(step \d\) while CPU0 holds it/,
    );
  });
});

describe('queries for a switcheroo handler', () => {
  it('isCurrentOn and taskCpu read rq->curr and task_cpu: A, running on CPU1, is current there and B is queued there', () => {
    const ask = (k: Kernel) =>
      function* ask(x: Assembler) {
        const aCurrent: number = yield* isCurrentOn(x, k, 1);
        const bCurrent: number = yield* isCurrentOn(x, k, 2);
        const bCpu: number = yield* taskCpu(x, k, 2);
        yield x.store(out(k, 0), 8, 100 * aCurrent + 10 * bCurrent + bCpu);
      };
    const { machine, kernel } = schedMachine(2, (k) => ({
      policy: 'pinned',
      tasks: [
        { name: 'A', cpu: 1, steps: [ask(k)] },
        { name: 'B', cpu: 1, steps: [noteCpu(k, 1)] },
      ],
    }));
    expect(machine.run({ maxSteps: 20_000 }).outcome).toBe('ok');
    expect(read(machine, out(kernel, 0))).toBe(101);
    expect(read(machine, out(kernel, 1))).toBe(101);
  });
});
