import { describe, expect, it } from 'vitest';
import { explore, replay } from '../../src/explore/explore.ts';
import { findScenario, runScenario } from '../../src/scenarios/catalogue.ts';
import { type ParamValue, resolveParams } from '../../src/scenarios/scenario.ts';
import { machineFactory } from '../../src/scenarios/scenario-module.ts';

/**
 * A catalogue scenario's machine, as `x86slice explore` builds it (these scenarios: an image, reset per run), or
 * as `x86slice replay` does (`trace`: built afresh, with its trace).
 */
function scenario(name: string, params: Record<string, ParamValue> = {}, trace = false) {
  const s = findScenario(name);
  return machineFactory(s, resolveParams(s, params), { trace });
}

describe('stack-migration, default schedule (round-robin, IPIs delivered once a round)', () => {
  it.each(['naive', 'migration-entry'])(
    '%s: the flush leaves the task stack unmapped under CPU1: #PF, then #DF',
    (protocol) => {
      const run = runScenario('stack-migration', { protocol }, { trace: false });
      expect(run.result.outcome).toBe('double-fault');
      expect(run.result.stop?.cpu).toBe(1);
      expect(run.result.stop?.message).toMatch(/^PANIC: double fault[\s\S]*#PF at 0xffffc9/);
    },
  );

  it('ipi-switcheroo: the task runs on, its values intact, on the new frame; the old one is freed', () => {
    const run = runScenario('stack-migration', { protocol: 'ipi-switcheroo' }, { trace: false });
    expect(run.result.outcome).toBe('ok');
    expect(run.report).toMatchObject({ oldFrameFreed: true });
    expect(run.report!.frameAfter).not.toBe(run.report!.frameBefore);
  });

  it('no-wait: the schedule that copies before CPU1 takes the flush IPI shows the lost write', () => {
    // CPU1 runs the task for two rounds and more; CPU0 migrates through the copy; CPU1 pushes on its stale entry.
    const run = runScenario('stack-migration', { protocol: 'no-wait', schedule: '1*68,0*38,1' }, { trace: false });
    expect(run.result.outcome).toBe('lost-write');
    expect(run.result.stop?.message).toMatch(/^lost write: CPU 1 stores to 0xffffc9[0-9a-f]+ in frame 0x[0-9a-f]+/);
  });

  it('runs with 3 to 8 CPUs (the others idle, taking the flush IPIs)', () => {
    for (const cpus of [3, 8]) {
      expect(
        runScenario('stack-migration', { protocol: 'ipi-switcheroo', cpus }, { trace: false }).result.outcome,
      ).toBe('ok');
      expect(runScenario('stack-migration', { protocol: 'naive', cpus }, { trace: false }).result.outcome).toBe(
        'double-fault',
      );
    }
  });
});

describe('data-migration and ipi-irqs-off-deadlock, default schedule', () => {
  it.each(['naive', 'migration-entry', 'ipi-switcheroo', 'no-wait'])(
    'data page, %s: ok, both words intact',
    (protocol) => {
      const run = runScenario('data-migration', { protocol }, { trace: false });
      expect(run.result.outcome).toBe('ok');
      expect(run.report).toMatchObject({ oldFrameFreed: true });
    },
  );

  it('ipi-irqs-off-deadlock: deadlock, naming who waits on what', () => {
    const run = runScenario('ipi-irqs-off-deadlock', {}, { trace: false });
    expect(run.result.outcome).toBe('deadlock');
    expect(run.result.deadlock).toMatch(/CPU0 spins on csd CPU0->CPU1/);
    expect(run.result.deadlock).toMatch(/CPU1 spins on pgd_lock .* with interrupts off, IPI 0xfb pending/);
  });
});

describe('the protocols under the checker (2 CPUs; 3 where stated)', () => {
  it('exploring from an image gives what building every execution gives', () => {
    const s = findScenario('stack-migration');
    const params = resolveParams(s, { protocol: 'no-wait', rounds: 4 });
    const fresh = () => s.build(params, { trace: false }).machine;
    const options = { strategy: 'exhaustive', preemptions: 1 } as const;
    expect(explore(machineFactory(s, params), options)).toEqual(explore(fresh, options));
  }, 30_000);

  it('naive: the least interleaved run double-faults, CPU1 returning from the flush IPI onto its unmapped stack', () => {
    const build = scenario('stack-migration', { protocol: 'naive', rounds: 4 });
    const result = explore(build, { strategy: 'exhaustive', preemptions: 1 });
    // The shortest schedule is empty: the completion keeps CPU1 in the flush handler once its ack lets CPU0 move,
    // so CPU1 irets onto the stack page CPU0 unmapped before CPU0 installs the new PTE.
    expect(result.violations).toMatchObject([{ kind: 'double-fault', schedule: '' }]);
    const run = replay(scenario('stack-migration', { protocol: 'naive', rounds: 4 }, true), '');
    expect(run.kind).toBe('double-fault');
    expect(run.machine.trace.some((t) => t.op === 'deliver')).toBe(true);
  });

  it('naive with a TLB drop: CPU1 double-faults before the flush IPI is delivered', () => {
    // CPU1 runs two rounds and more; CPU0 clears the PTE and sends the flush, then waits; CPU1's TLB drops its
    // stack entry; CPU1 runs on, and its next push walks the cleared PTE: #PF, then #DF, with the IPI in flight.
    const traced = scenario('stack-migration', { protocol: 'naive', rounds: 4 }, true);
    const run = replay(traced, '1*67,0,evict:1:0xffffc9000000f000');
    expect(run.kind).toBe('double-fault');
    expect(run.machine.trace.some((t) => t.op === 'deliver')).toBe(false);
    expect(run.machine.ipiBus.inFlight).toHaveLength(1);
  });

  it('no-wait: a lost write (preemption bound 2), and the schedule replays', () => {
    const build = scenario('stack-migration', { protocol: 'no-wait', rounds: 4 });
    const result = explore(build, { strategy: 'exhaustive', preemptions: 2 });
    expect(result.complete).toBe(true);
    const lost = result.violations.find((v) => v.kind === 'lost-write')!;
    expect(lost.message).toMatch(/^lost write: CPU 1/);
    expect(replay(build, lost.schedule).kind).toBe('lost-write');
  }, 30_000);

  it('migration-entry: a stack page double-faults; a data page is complete with no violation', () => {
    const stack = scenario('stack-migration', { protocol: 'migration-entry', rounds: 4 });
    const onStack = explore(stack, { strategy: 'exhaustive', preemptions: 1 });
    expect(onStack.violations.map((v) => v.kind)).toEqual(['double-fault']);
    expect(replay(stack, onStack.violations[0]!.schedule).kind).toBe('double-fault');

    const data = explore(scenario('data-migration', { protocol: 'migration-entry', rounds: 2 }), {
      strategy: 'exhaustive',
      preemptions: 1,
    });
    expect(data).toMatchObject({ complete: true, preemptionBound: 1, violations: [] });
  }, 60_000);

  // With 3 CPUs, bound 1 is clean too, but a sound bounded search (no sleep sets under a bound: docs/checker.md)
  // takes 114,877 executions for it (about a minute), too long for this suite; it proves bound 0 here, and the
  // bound-1 figure is in docs/scenarios/migration.md.
  it.each([
    [2, 1],
    [3, 0],
  ])(
    'ipi-switcheroo with %i CPUs: complete with no violation within preemption bound %i',
    (cpus, preemptions) => {
      const build = scenario('stack-migration', { protocol: 'ipi-switcheroo', cpus, rounds: 4 });
      expect(explore(build, { strategy: 'exhaustive', preemptions })).toMatchObject({
        complete: true,
        preemptionBound: preemptions,
        violations: [],
      });
    },
    60_000,
  );

  it('ipi-irqs-off-deadlock: deadlock in every strategy, and it replays', () => {
    const build = scenario('ipi-irqs-off-deadlock');
    for (const strategy of ['exhaustive', 'random', 'pct'] as const) {
      const result = explore(build, { strategy, ...(strategy === 'exhaustive' ? {} : { budget: 20 }) });
      expect(result.violations.map((v) => v.kind)).toEqual(['deadlock']);
      expect(replay(build, result.violations[0]!.schedule).kind).toBe('deadlock');
    }
  });
});
