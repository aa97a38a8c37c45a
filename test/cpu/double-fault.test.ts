import { describe, expect, it } from 'vitest';
import type { Program } from '../../src/cpu/assembler.ts';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import { type HandlerContext, RFLAGS, SELECTOR } from '../../src/cpu/registers.ts';
import { Machine } from '../../src/machine/machine.ts';
import { formatVirtual, InputError, PAGE_SIZE } from '../../src/mmu/address.ts';
import { DATA, readFrame } from './fixtures.ts';

const PF_ERR_WRITE = 0x2;

/** A booted machine whose CPU 0 task stack has its top page unmapped (no TLB holds it yet). */
function withUnmappedStackTop(cpus = 1) {
  const m = Machine.create({ cpus });
  const stack = m.boot!.taskStacks[0]!;
  const df = m.boot!.doubleFaultStacks[0]!;
  m.boot!.pageTables.clearPresent(stack.top - PAGE_SIZE);
  return { m, stack, df };
}

describe('#PF during #PF delivery', () => {
  it('a #PF while pushing the #PF frame raises #DF on IST1 with CR2 of the second fault', () => {
    const { m, stack, df } = withUnmappedStackTop();
    // RSP not 16-aligned: the push faults at top-16, the #PF frame (aligned down to top-16) faults at its SS slot,
    // top-24. The two CR2 values differ, and the #DF must report the second.
    m.cpu(0).regs.rsp = stack.top - 8;
    m.load(0, function* (x) {
      yield x.push(0x1234);
    });
    const result = m.run({ maxSteps: 10 });

    const push = m.trace[0]!;
    expect(push.op).toBe('push');
    expect(push.exceptions).toEqual([
      { vector: 14, name: '#PF', errorCode: PF_ERR_WRITE, cr2: stack.top - 16, outcome: 'frame-fault' },
      { vector: 14, name: '#PF', errorCode: PF_ERR_WRITE, cr2: stack.top - 24, during: 14, outcome: 'double-fault' },
      { vector: 8, name: '#DF', errorCode: 0, during: 14, outcome: 'delivered', stack: 'ist1', rsp: df.top - 48 },
    ]);
    const cpu = m.cpu(0);
    expect(cpu.regs.cr2).toBe(stack.top - 24);
    expect(cpu.lastException).toEqual({ vector: VECTOR.DF, errorCode: 0, cr2: stack.top - 24 });

    expect(result.outcome).toBe('double-fault');
    expect(result.stop).toMatchObject({
      cpu: 0,
      outcome: 'double-fault',
      // The report names the chain: the second #PF (its CR2) while delivering the first.
      message:
        'PANIC: double fault, error_code: 0x0\n' +
        `#PF at ${formatVirtual(stack.top - 24)} while delivering #PF at ${formatVirtual(stack.top - 16)}`,
    });
    expect(cpu.state).toBe('stopped');
  });

  it('the #DF frame sits on the IST1 stack with error code 0 and the interrupted RSP, RIP and RFLAGS', () => {
    const { m, stack, df } = withUnmappedStackTop();
    m.cpu(0).regs.rsp = stack.top - 8;
    m.load(0, function* (x) {
      yield x.push(0x1234);
    });
    m.step(0);
    const cpu = m.cpu(0);
    expect(cpu.regs.rsp).toBeGreaterThanOrEqual(df.bottom);
    expect(cpu.regs.rsp).toBeLessThan(df.top);
    expect(readFrame(m, cpu.regs.rsp, true)).toEqual({
      errorCode: 0,
      rip: m.trace[0]!.rip,
      cs: SELECTOR.KERNEL_CS,
      rflags: RFLAGS.FIXED | RFLAGS.IF,
      // The faulting push had no effect: the saved RSP is the one before it.
      rsp: stack.top - 8,
      ss: SELECTOR.KERNEL_SS,
    });
    // An interrupt gate: the #DF handler runs with IF clear.
    expect(cpu.interruptsEnabled).toBe(false);
    expect(cpu.controlStack().map((a) => a.kind)).toEqual(['task', 'handler']);
  });

  it('the #DF handler sees vector 8, error code 0 and the stack address as CR2, not the data address', () => {
    const { m, stack } = withUnmappedStackTop();
    const seen: HandlerContext[] = [];
    m.cpu(0).setGate(VECTOR.DF, {
      handler: function* (x, ctx) {
        seen.push(ctx);
        yield x.die('double-fault', 'seen');
      },
      ist: 1,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      yield x.load(DATA, 8);
    });
    m.run({ maxSteps: 10 });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ vector: 8, errorCode: 0, cr2: stack.top - 8, external: false });
    expect(seen[0]!.cr2).not.toBe(DATA);
    expect(m.trace[0]!.exceptions![0]).toMatchObject({ vector: 14, errorCode: 0, cr2: DATA });
  });

  it('unbounded recursion runs into the stack guard page: #DF reports a kernel stack overflow', () => {
    const m = Machine.create({ cpus: 1 });
    const stack = m.boot!.taskStacks[0]!;
    const recurse: Program = function* recurse(x) {
      yield x.call(recurse);
    };
    m.load(0, recurse);
    const result = m.run({ maxSteps: 5000 });
    // 16 KiB of 8-byte return addresses, then the call that pushes into the guard page.
    const calls = m.trace.filter((e) => e.op === 'call');
    expect(calls).toHaveLength(THREAD_SIZE_SLOTS + 1);
    expect(calls.at(-1)!.exceptions![0]).toMatchObject({ vector: 14, cr2: stack.bottom - 8 });
    expect(result.outcome).toBe('double-fault');
    expect(result.stop!.message).toBe(
      'kernel stack overflow (double-fault)\n' +
        `BUG: stack guard page was hit at ${formatVirtual(stack.bottom - 8)} ` +
        `(stack is ${formatVirtual(stack.bottom)}..${formatVirtual(stack.top - 1)})\n` +
        `#PF at ${formatVirtual(stack.bottom - 8)} while delivering #PF at ${formatVirtual(stack.bottom - 8)}`,
    );
    expect(stack.guard).toBe(stack.bottom - PAGE_SIZE);
  });
});

const THREAD_SIZE_SLOTS = (16 * 1024) / 8;

describe('a fault while delivering #DF', () => {
  it('with the #DF stack page unmapped too, the #PF frame fault escalates to a triple fault: CPU shutdown', () => {
    const { m, stack, df } = withUnmappedStackTop(2);
    m.boot!.pageTables.clearPresent(df.top - PAGE_SIZE);
    m.load(0, function* (x) {
      yield x.push(1);
    });
    m.load(1, function* (x) {
      for (let i = 0; i < 5; i++) yield x.pause();
    });
    const result = m.run({ maxSteps: 100 });

    expect(result.outcome).toBe('triple-fault');
    expect(result.stop).toMatchObject({ cpu: 0, step: 0, outcome: 'triple-fault' });
    expect(result.stop!.message).toBe(
      `triple fault: #PF (error code 2) while delivering #DF (CR2 ${formatVirtual(df.top - 8)})`,
    );
    expect(m.cpu(0).state).toBe('shutdown');
    expect(m.snapshot().cpus[0]!.state).toBe('shutdown');
    expect(m.trace[0]!.exceptions!.map((e) => `${e.name}:${e.outcome}`)).toEqual([
      '#PF:frame-fault',
      '#PF:double-fault',
      '#DF:frame-fault',
      '#PF:triple-fault',
    ]);
    // CR2 holds the last #PF's address; the task's RSP is untouched (nothing was pushed anywhere).
    expect(m.cpu(0).regs.cr2).toBe(df.top - 8);
    expect(m.cpu(0).regs.rsp).toBe(stack.top);
    expect(m.cpu(0).lastException).toEqual({ vector: VECTOR.PF, errorCode: PF_ERR_WRITE, cr2: df.top - 8 });
  });

  it('a CPU in shutdown cannot be stepped; the other CPUs still can', () => {
    const { m, df } = withUnmappedStackTop(2);
    m.boot!.pageTables.clearPresent(df.top - PAGE_SIZE);
    m.load(0, function* (x) {
      yield x.push(1);
    });
    m.load(1, function* (x) {
      yield x.pause();
    });
    m.step(0);
    expect(m.cpu(0).state).toBe('shutdown');
    expect(m.runnable(0)).toBe(false);
    expect(() => m.step(0)).toThrow(InputError);
    expect(() => m.step(0)).toThrow(/CPU 0 cannot step: it is shutdown \(triple-fault: triple fault: #PF/);
    expect(m.step(1)?.op).toBe('pause');
  });
});
