import { describe, expect, it } from 'vitest';
import { formatVirtual } from '../../src/mmu/address.ts';
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
