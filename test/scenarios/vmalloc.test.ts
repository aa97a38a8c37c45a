import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { Machine } from '../../src/machine/machine.ts';
import { mmCreate } from '../../src/mm/mm.ts';
import { contextSwitch, runningTask, taskCreate } from '../../src/mm/task.ts';
import { formatVirtual, LAYOUT } from '../../src/mmu/address.ts';
import { runScenario } from '../../src/scenarios/catalogue.ts';
import { FRESH_SLOT } from '../../src/scenarios/vmalloc-fault.ts';

describe('vmalloc-fault', () => {
  it("lazy-fault: the first store faults once, vmalloc_fault copies init_mm's entry into the PGD, the store retries", () => {
    const { machine, result } = runScenario('vmalloc-fault');
    expect(result.outcome).toBe('ok');
    const faulting = machine.trace.filter((e) => e.exceptions);
    expect(faulting).toHaveLength(1);
    expect(faulting[0]).toMatchObject({ op: 'store', va: FRESH_SLOT });
    // The handler read CR3 and wrote the process PGD's entry: the high half, then the low half with P.
    const handler = machine.trace.slice(machine.trace.indexOf(faulting[0]!) + 1);
    expect(handler[0]!.op).toBe('mov-from-cr');
    expect(handler.findIndex((e) => e.op === 'iret')).toBeGreaterThan(0);
    // The retried store then succeeds.
    const after = handler.slice(handler.findIndex((e) => e.op === 'iret') + 1);
    expect(after[0]).toMatchObject({ op: 'store', va: FRESH_SLOT, tlb: 'miss' });
  });

  it('preallocated: the entry was there from boot, nothing faults', () => {
    const { machine, result } = runScenario('vmalloc-fault', { sync: 'preallocated' });
    expect(result.outcome).toBe('ok');
    expect(machine.trace.some((e) => e.exceptions)).toBe(false);
  });
});

describe('vmap-stack-switch', () => {
  it("without the stack sync, switch_to's first push after the CR3 load double-faults, and the report names the chain", () => {
    const { machine, result } = runScenario('vmap-stack-switch');
    expect(result.outcome).toBe('double-fault');
    const push = machine.trace.find((e) => e.exceptions)!;
    expect(machine.trace[machine.trace.indexOf(push) - 1]!.op).toBe('mov-to-cr3');
    expect(push.exceptions!.map((e) => `${e.name} ${e.outcome}`)).toEqual([
      '#PF frame-fault',
      '#PF double-fault',
      '#DF delivered',
    ]);
    expect(result.stop!.message).toMatch(/^PANIC: double fault, error_code: 0x0\n#PF at 0xffffc98000003ff8 while/);
  });

  it("with switch_mm copying the current stack's entry into the next mm, the switch completes and the process runs", () => {
    const { machine, result } = runScenario('vmap-stack-switch', { 'sync-stack': true });
    expect(result.outcome).toBe('ok');
    expect(machine.trace.some((e) => e.exceptions)).toBe(false);
    expect(machine.trace.slice(-3).map((e) => e.op)).toEqual(['push', 'pop', 'exit']);
  });
});

describe('context_switch to a task whose own mm lacks its stack (issue 20)', () => {
  /**
   * The boot task switches to a process whose mm was made before its VMAP stack's 512 GiB slot existed: switch_mm
   * syncs the current (boot) stack's entry, which the process's mm has, and nothing else; Linux then probes the
   * next stack after switch_mm (prepare_switch_to() in switch_to(), after context_switch()'s switch_mm_irqs_off(),
   * 4.15 to 5.7), in the new mm, so vmalloc_fault copies its entry while a #PF can still be delivered.
   */
  function switchToFreshStack(syncStack: boolean) {
    const machine = Machine.create({ cpus: 1, trace: true, kernel: { sync: 'lazy-fault' } });
    const kernel = machine.kernel!;
    const boot = runningTask('boot', kernel.initMm, machine.boot!.taskStacks[0]!);
    machine.load(0, function* bootMain(x: Assembler) {
      const pgd = yield* mmCreate(x, kernel); // before the stack's slot exists
      const main = function* processMain(y: Assembler) {
        yield y.push(1);
        yield y.pop();
      };
      const process = yield* taskCreate(x, kernel, 'process', pgd, main, [], {
        start: FRESH_SLOT,
        end: LAYOUT.vmallocEnd,
      });
      yield* contextSwitch(x, kernel, boot, process!, { syncStack });
    });
    return { machine, result: machine.run({ maxSteps: 100_000 }) };
  }

  it('with the stack sync, the probe of the next stack faults in the next mm, vmalloc_fault fixes it, the switch completes', () => {
    const { machine, result } = switchToFreshStack(true);
    expect(result.outcome).toBe('ok');
    const faults = machine.trace.filter((e) => e.exceptions);
    expect(faults).toHaveLength(1);
    // The probe, a load, after the CR3 load: a #PF delivered on the boot stack, which every mm maps.
    expect(faults[0]).toMatchObject({ op: 'load' });
    expect(faults[0]!.exceptions!.map((e) => `${e.name} ${e.outcome}`)).toEqual(['#PF delivered']);
    const cr3 = machine.trace.findIndex((e) => e.op === 'mov-to-cr3');
    expect(machine.trace.indexOf(faults[0]!)).toBeGreaterThan(cr3);
  });

  it('without it, the first access on the next stack double-faults', () => {
    expect(switchToFreshStack(false).result.outcome).toBe('double-fault');
  });
});

describe("the #DF handler reads the current task's stack (issue 20)", () => {
  it('a task made with the task API that overflows its VMAP stack is reported as a kernel stack overflow', () => {
    const machine = Machine.create({ cpus: 1, trace: false, kernel: { sync: 'lazy-fault' } });
    const kernel = machine.kernel!;
    const boot = runningTask('boot', kernel.initMm, machine.boot!.taskStacks[0]!);
    let stack = { bottom: 0, top: 0 };
    machine.load(0, function* bootMain(x: Assembler) {
      const recurse = function* recurse(y: Assembler) {
        for (;;) yield y.push(0); // unbounded recursion, a frame a push
      };
      const task = yield* taskCreate(x, kernel, 'recurser', kernel.initMm, recurse, []);
      stack = task!.stack;
      yield* contextSwitch(x, kernel, boot, task!, { syncStack: false });
    });
    const result = machine.run({ maxSteps: 100_000 });
    expect(result.outcome).toBe('double-fault');
    expect(result.stop!.message).toMatch(/^kernel stack overflow \(double-fault\)\nBUG: stack guard page was hit at /);
    expect(result.stop!.message).toContain(
      `(stack is ${formatVirtual(stack.bottom)}..${formatVirtual(stack.top - 1)})`,
    );
  });
});

describe('vmalloc-orders', () => {
  it('the same seed gives the same workload under each policy; high-order gets higher orders than order0', () => {
    const run = (policy: string) => runScenario('vmalloc-orders', { policy, ops: 60 }, { trace: false });
    const order0 = run('order0');
    const high = run('high-order');
    expect(order0.result.outcome).toBe('ok');
    expect(high.result.outcome).toBe('ok');
    const orders = (r: typeof order0) => Object.keys(r.report!['vmalloc blocks by order'] as object).map(Number);
    expect(orders(order0)).toEqual([0]);
    expect(Math.max(...orders(high))).toBeGreaterThan(0);
    // Deterministic: the same seed and policy, the same report.
    expect(run('high-order').report).toEqual(high.report);
  });

  it('huge maps areas of 2 MiB or more with order-9 blocks', () => {
    const huge = runScenario('vmalloc-orders', { policy: 'huge' }, { trace: false });
    expect(Object.keys(huge.report!['vmalloc blocks by order'] as object)).toContain('9');
  });
});

describe('stack-overflow', () => {
  it('recursion into the guard page below the VMAP stack is reported as a kernel stack overflow', () => {
    const { machine, result } = runScenario('stack-overflow');
    expect(result.outcome).toBe('double-fault');
    const stack = machine.boot!.taskStacks[0]!;
    expect(result.stop!.message).toContain('kernel stack overflow (double-fault)');
    expect(result.stop!.message).toContain(`stack guard page was hit at ${formatVirtual(stack.bottom - 8)}`);
  });
});
