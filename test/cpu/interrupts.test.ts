import { describe, expect, it } from 'vitest';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import { type Gate, type GateInit, type HandlerContext, RFLAGS } from '../../src/cpu/registers.ts';
import type { StepEvent } from '../../src/cpu/step-event.ts';
import { Machine } from '../../src/machine/machine.ts';
import { DATA, IPI_VECTOR, readFrame } from './fixtures.ts';

/** An IPI handler that records its context and EOIs; `pauses` instructions first (time in service). */
function ipiGate(seen: HandlerContext[], pauses = 0, type: Gate['type'] = 'interrupt'): GateInit {
  return {
    handler: function* (x, ctx) {
      seen.push(ctx);
      for (let i = 0; i < pauses; i++) yield x.pause();
      yield x.eoi();
    },
    ist: 0,
    type,
  };
}

const ops = (events: (StepEvent | undefined)[]) => events.map((e) => e?.op);

describe('interrupt acceptance and IF', () => {
  it('an IPI that arrives while IF=0 stays pending, and is accepted after the instruction following sti', () => {
    const m = Machine.create({ cpus: 2 });
    const seen: HandlerContext[] = [];
    m.cpu(0).setGate(IPI_VECTOR, ipiGate(seen));
    m.load(0, function* (x) {
      yield x.cli();
      yield x.pause();
      yield x.sti();
      yield x.pause(); // the STI shadow: this one still runs before the IPI
      yield x.pause();
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, IPI_VECTOR);
    });
    expect(m.step(0)!.op).toBe('cli');
    expect(m.step(1)!.ipi).toEqual({ to: [0], vector: IPI_VECTOR, mode: 'fixed' });
    const pending = () => m.snapshot().cpus[0]!.apic;
    expect(pending()).toMatchObject({ pending: [IPI_VECTOR], inService: [] });
    expect(m.snapshot().cpus[0]!.interruptsEnabled).toBe(false);

    expect(m.step(0)!.op).toBe('pause');
    expect(pending().pending).toEqual([IPI_VECTOR]);
    expect(m.step(0)!.op).toBe('sti');
    expect(pending().pending).toEqual([IPI_VECTOR]);
    const shadowed = m.step(0)!;
    expect(shadowed.op).toBe('pause');
    expect(seen).toHaveLength(0);

    const accepted = m.step(0)!;
    expect(accepted.op).toBe('interrupt');
    expect(accepted.accepted).toEqual({ vector: IPI_VECTOR, nmi: false });
    expect(accepted.rip).toBe(shadowed.rip + 4); // interrupted before the last pause
    expect(pending()).toMatchObject({ pending: [], inService: [IPI_VECTOR] });
    // Delivered on the current stack; the saved RIP is the next instruction, IF=1 in the saved RFLAGS.
    const frame = readFrame(m, m.cpu(0).regs.rsp, false);
    expect(frame.rip).toBe(accepted.rip);
    expect(frame.rflags & RFLAGS.IF).toBe(RFLAGS.IF);
    expect(m.cpu(0).interruptsEnabled).toBe(false);

    expect(ops([m.step(0), m.step(0), m.step(0)])).toEqual(['eoi', 'iret', 'pause']);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ vector: IPI_VECTOR, errorCode: 0, external: true, hasFixup: false });
    expect(pending()).toMatchObject({ pending: [], inService: [] });
    expect(m.cpu(0).interruptsEnabled).toBe(true);
  });

  it('sti; hlt with an IPI already pending: hlt executes (STI shadow) and the IPI wakes the CPU', () => {
    const m = Machine.create({ cpus: 2 });
    const seen: HandlerContext[] = [];
    m.cpu(0).setGate(IPI_VECTOR, ipiGate(seen));
    m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.cli();
      yield x.sti();
      yield x.hlt();
      yield x.store(DATA, 8, 1);
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, IPI_VECTOR);
    });
    m.step(0);
    m.step(1);
    expect(m.step(0)!.op).toBe('sti');
    const hlt = m.step(0)!;
    expect(hlt.op).toBe('hlt');
    expect(hlt.state).toBe('halted');
    expect(m.runnable(0)).toBe(true);
    expect(ops([m.step(0), m.step(0), m.step(0), m.step(0)])).toEqual(['interrupt', 'eoi', 'iret', 'store']);
    expect(seen).toHaveLength(1);
  });

  it('a CPU halted with IF=0 is not woken by an IPI: the IPI stays pending', () => {
    const m = Machine.create({ cpus: 2 });
    m.cpu(0).setGate(IPI_VECTOR, ipiGate([]));
    m.load(0, function* (x) {
      yield x.cli();
      yield x.hlt();
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, IPI_VECTOR);
    });
    const result = m.run();
    expect(result.outcome).toBe('ok');
    expect(m.cpu(0).state).toBe('halted');
    expect(m.runnable(0)).toBe(false);
    expect(m.snapshot().cpus[0]!.apic.pending).toEqual([IPI_VECTOR]);
  });

  it('a halted CPU with IF=1 is skipped until an IPI arrives, then resumes after hlt', () => {
    const m = Machine.create({ cpus: 2 });
    const seen: HandlerContext[] = [];
    m.cpu(0).setGate(IPI_VECTOR, ipiGate(seen));
    m.map(DATA, { writable: true });
    m.load(0, function* (x) {
      yield x.hlt();
      yield x.store(DATA, 8, 1);
    });
    m.load(1, function* (x) {
      for (let i = 0; i < 3; i++) yield x.pause();
      yield x.sendIpi(0, IPI_VECTOR);
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.trace.map((e) => `${e.cpu}:${e.op}`)).toEqual([
      '0:hlt',
      '1:pause',
      '1:pause',
      '1:pause',
      '1:send-ipi',
      '0:interrupt',
      '1:exit',
      '0:eoi',
      '0:iret',
      '0:store',
      '0:exit',
    ]);
    expect(seen).toHaveLength(1);
  });
});

describe('IPI coalescing and in-service priority', () => {
  it('two IPIs of one vector before acceptance coalesce: the handler runs once, coalesced counts 1', () => {
    const m = Machine.create({ cpus: 2 });
    const seen: HandlerContext[] = [];
    m.cpu(0).setGate(IPI_VECTOR, ipiGate(seen));
    m.load(0, function* (x) {
      yield x.cli();
      yield x.pause();
      yield x.sti();
      for (let i = 0; i < 5; i++) yield x.pause();
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, IPI_VECTOR);
      yield x.sendIpi(0, IPI_VECTOR);
    });
    m.run({ schedule: '0,1,1' });
    expect(m.snapshot().cpus[0]!.apic).toMatchObject({ pending: [IPI_VECTOR], coalesced: 1 });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toHaveLength(1);
    expect(m.trace.filter((e) => e.op === 'interrupt')).toHaveLength(1);
    expect(m.snapshot().cpus[0]!.apic).toMatchObject({ pending: [], inService: [], coalesced: 1 });
  });

  it('an IPI arriving while the same vector is in service is delivered after EOI and iret', () => {
    const m = Machine.create({ cpus: 2 });
    const seen: HandlerContext[] = [];
    m.cpu(0).setGate(IPI_VECTOR, ipiGate(seen, 1));
    m.load(0, function* (x) {
      for (let i = 0; i < 3; i++) yield x.pause();
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, IPI_VECTOR);
      yield x.sendIpi(0, IPI_VECTOR);
    });
    m.step(1);
    expect(m.step(0)!.op).toBe('interrupt');
    expect(m.step(0)!.op).toBe('pause'); // in the handler
    m.step(1); // the second IPI: not coalesced (its IRR bit was clear), but blocked by the in-service vector
    expect(m.snapshot().cpus[0]!.apic).toMatchObject({ pending: [IPI_VECTOR], inService: [IPI_VECTOR], coalesced: 0 });
    expect(m.step(0)!.op).toBe('eoi');
    expect(m.snapshot().cpus[0]!.apic).toMatchObject({ pending: [IPI_VECTOR], inService: [] });
    expect(m.step(0)!.op).toBe('iret'); // IF=0 in an interrupt-gate handler: not accepted before iret
    expect(m.step(0)!.op).toBe('interrupt');
    expect(m.run().outcome).toBe('ok');
    expect(seen).toHaveLength(2);
  });

  it('with IF=1 in a trap-gate handler, a same-class IPI waits for EOI while a higher-class one nests', () => {
    const m = Machine.create({ cpus: 2 });
    const order: number[] = [];
    const gate = (pauses: number): GateInit => ({
      handler: function* (x, ctx) {
        order.push(ctx.vector);
        for (let i = 0; i < pauses; i++) yield x.pause();
        yield x.eoi();
      },
      ist: 0,
      type: 'trap',
    });
    for (const v of [0xe0, 0xe5, 0xf0]) m.cpu(0).setGate(v, gate(v === 0xe0 ? 3 : 0));
    m.load(0, function* (x) {
      for (let i = 0; i < 3; i++) yield x.pause();
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, 0xe0);
      yield x.sendIpi(0, 0xe5);
      yield x.sendIpi(0, 0xf0);
    });
    m.step(1);
    expect(m.step(0)!.accepted).toEqual({ vector: 0xe0, nmi: false });
    m.step(1); // 0xe5 pending: same priority class as 0xe0 in service
    expect(m.step(0)!.op).toBe('pause');
    m.step(1); // 0xf0 pending: a higher class
    expect(m.step(0)!.accepted).toEqual({ vector: 0xf0, nmi: false });
    expect(m.run().outcome).toBe('ok');
    // 0xe5 is taken only after 0xe0's EOI (nested in its handler, since a trap gate leaves IF set).
    expect(order).toEqual([0xe0, 0xf0, 0xe5]);
    const cpu0 = m.trace.filter((e) => e.cpu === 0);
    const e5 = cpu0.findIndex((e) => e.accepted?.vector === 0xe5);
    expect(cpu0[e5 - 1]!.op).toBe('eoi');
    expect(m.snapshot().cpus[0]!.apic).toMatchObject({ pending: [], inService: [] });
  });

  it('IPI shorthands reach the CPUs they name; send-IPI returns how many it reached', () => {
    const m = Machine.create({ cpus: 4 });
    const counts: number[] = [];
    for (const cpu of m.cpus) cpu.setGate(IPI_VECTOR, ipiGate([]));
    m.load(0, function* (x) {
      yield x.cli();
      counts.push(yield x.sendIpi('all-but-self', IPI_VECTOR));
      counts.push(yield x.sendIpi('self', IPI_VECTOR));
      counts.push(yield x.sendIpi([1, 3], IPI_VECTOR + 1));
    });
    m.run({ schedule: '0*5' });
    expect(counts).toEqual([3, 1, 2]);
    const pending = m.snapshot().cpus.map((c) => c.apic.pending);
    expect(pending).toEqual([[IPI_VECTOR], [IPI_VECTOR, IPI_VECTOR + 1], [IPI_VECTOR], [IPI_VECTOR, IPI_VECTOR + 1]]);
  });
});

describe('NMI', () => {
  it('an NMI is accepted with IF=0, on the NMI IST stack', () => {
    const m = Machine.create({ cpus: 2 });
    m.load(0, function* (x) {
      yield x.cli();
      for (let i = 0; i < 3; i++) yield x.pause();
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, VECTOR.NMI, 'nmi');
    });
    m.step(0);
    expect(m.step(1)!.ipi).toEqual({ to: [0], vector: VECTOR.NMI, mode: 'nmi' });
    expect(m.snapshot().cpus[0]!.apic.nmiPending).toBe(true);
    const accepted = m.step(0)!;
    expect(accepted.accepted).toEqual({ vector: VECTOR.NMI, nmi: true });
    const nmiStack = m.boot!.nmiStacks[0]!;
    expect(accepted.exceptions![0]).toMatchObject({
      vector: 2,
      outcome: 'delivered',
      stack: 'ist2',
      rsp: nmiStack.top - 40,
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.cpu(0).interruptsEnabled).toBe(false);
  });

  it('a second NMI during the NMI handler waits for its iret', () => {
    const m = Machine.create({ cpus: 2 });
    let handled = 0;
    m.cpu(0).setGate(VECTOR.NMI, {
      handler: function* (x) {
        handled++;
        yield x.pause();
      },
      ist: 2,
      type: 'interrupt',
    });
    m.load(0, function* (x) {
      for (let i = 0; i < 4; i++) yield x.pause();
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, VECTOR.NMI, 'nmi');
      yield x.sendIpi(0, VECTOR.NMI, 'nmi');
    });
    m.step(1);
    expect(m.step(0)!.op).toBe('interrupt');
    m.step(1);
    expect(m.snapshot().cpus[0]!.nmiBlocked).toBe(true);
    expect(ops([m.step(0), m.step(0), m.step(0)])).toEqual(['pause', 'iret', 'interrupt']);
    expect(m.run().outcome).toBe('ok');
    expect(handled).toBe(2);
  });
});
