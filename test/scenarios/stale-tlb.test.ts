import { describe, expect, it } from 'vitest';
import { runScenario } from '../../src/scenarios/catalogue.ts';
import { DATA_VA, FAULTED } from '../../src/scenarios/stale-tlb.ts';

describe('stale-tlb', () => {
  it('CPU1 reads through its stale entry after CPU0 cleared the PTE, and faults only after its own INVLPG', () => {
    const { machine, result } = runScenario('stale-tlb');
    expect(result.outcome).toBe('ok');
    const reads = machine.trace.filter((e) => e.op === 'load' && e.va === DATA_VA);
    const cpu1 = reads.filter((e) => e.cpu === 1);
    // Before the clear (a TLB miss that fills), through the stale entry (a hit), then after INVLPG: a #PF.
    expect(cpu1.map((e) => [e.tlb, e.value])).toEqual([
      ['miss', 42],
      ['hit', 42],
      [undefined, undefined],
    ]);
    expect(cpu1[2]!.exceptions?.[0]).toMatchObject({ name: '#PF', errorCode: 0, cr2: DATA_VA });
    // CPU0 never cached the page: its first read faults.
    const cpu0 = reads.filter((e) => e.cpu === 0);
    expect(cpu0).toHaveLength(1);
    expect(cpu0[0]!.exceptions?.[0]).toMatchObject({ name: '#PF', errorCode: 0 });
    // The fixup completed both faulting reads with FAULTED (the programs assert it; a failed assert is outcome
    // 'assertion'), and both CPUs' #PF handlers returned through iret.
    expect(machine.trace.filter((e) => e.op === 'iret').map((e) => e.cpu)).toEqual([0, 1]);
    expect(FAULTED).toBe(0xdead);
  });

  it('the stale entry keeps translating for as many reads as CPU1 makes', () => {
    const { machine, result } = runScenario('stale-tlb', { reads: '5' });
    expect(result.outcome).toBe('ok');
    const hits = machine.trace.filter((e) => e.cpu === 1 && e.op === 'load' && e.tlb === 'hit');
    expect(hits).toHaveLength(5);
  });

  it('the same scenario replays the same trace, bit for bit', () => {
    const a = runScenario('stale-tlb').machine.trace;
    const b = runScenario('stale-tlb').machine.trace;
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });
});
