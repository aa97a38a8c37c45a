import { describe, expect, it } from 'vitest';
import { runScenario } from '../../src/scenarios/catalogue.ts';

describe('pf-in-pf', () => {
  it('a #PF whose frame push faults is escalated to #DF, delivered on IST1, and the kernel panics', () => {
    const { machine, result } = runScenario('pf-in-pf');
    expect(result.outcome).toBe('double-fault');
    expect(result.stop?.message).toBe(
      'PANIC: double fault, error_code: 0x0\n#PF at 0xffffc90000007fe8 while delivering #PF at 0xffffc90000007ff0',
    );
    const boot = machine.boot!;
    const stack = boot.taskStacks[0]!;
    const faulting = machine.trace.find((e) => e.exceptions)!;
    expect(faulting.op).toBe('push');
    const [first, second, df] = faulting.exceptions!;
    // The push at RSP-8 faults (not present, write), then the #PF frame's first slot faults too.
    expect(first).toMatchObject({ name: '#PF', errorCode: 2, cr2: stack.top - 16, outcome: 'frame-fault' });
    expect(second).toMatchObject({ name: '#PF', errorCode: 2, cr2: stack.top - 24, outcome: 'double-fault' });
    expect(df).toMatchObject({ name: '#DF', errorCode: 0, outcome: 'delivered', stack: 'ist1' });
    const dfStack = boot.doubleFaultStacks[0]!;
    expect(df!.rsp).toBeGreaterThanOrEqual(dfStack.bottom);
    expect(df!.rsp).toBeLessThan(dfStack.top);
    // CR2 holds the second fault's address, as after a real #PF-during-#PF.
    expect(machine.cpu(0).regs.cr2).toBe(stack.top - 24);
  });

  it('without an IST for #DF, the #DF frame goes on the same unmapped stack and the CPU triple-faults', () => {
    const { machine, result } = runScenario('pf-in-pf', { 'df-ist': '0' });
    expect(result.outcome).toBe('triple-fault');
    expect(machine.cpu(0).state).toBe('shutdown');
  });

  it('the other CPUs idle and do not change the outcome', () => {
    expect(runScenario('pf-in-pf', { cpus: '4' }).result.outcome).toBe('double-fault');
  });
});

describe('df-triple', () => {
  it('a fault while delivering #DF (its IST stack is unmapped) shuts the CPU down: triple fault', () => {
    const { machine, result } = runScenario('df-triple');
    expect(result.outcome).toBe('triple-fault');
    const cpu = machine.cpu(0);
    expect(cpu.state).toBe('shutdown');
    const last = machine.trace.at(-1)!;
    expect(last.exceptions?.map((e) => `${e.name}:${e.outcome}`)).toEqual([
      '#PF:frame-fault',
      '#PF:double-fault',
      '#DF:frame-fault',
      '#PF:triple-fault',
    ]);
    expect(cpu.regs.cr2).toBe(machine.boot!.doubleFaultStacks[0]!.top - 8);
  });
});
