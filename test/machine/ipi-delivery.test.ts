// IPIs in flight (issue 11): a sent IPI reaches its target's IRR at a delivery event, which schedules, policies and
// deliverIpi() can place anywhere in the run (SDM Vol. 3 §11.6: the ICR write sends a message, accepted later).
import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { VECTOR } from '../../src/cpu/exceptions.ts';
import type { GateInit } from '../../src/cpu/registers.ts';
import type { StepEvent } from '../../src/cpu/step-event.ts';
import { MachineImage } from '../../src/machine/image.ts';
import { Machine, type MachineConfig } from '../../src/machine/machine.ts';
import { formatSchedule, parseSchedule, type ScheduleEntry } from '../../src/machine/schedule.ts';
import { toVirtual } from '../../src/mmu/address.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { PTE_LO } from '../../src/mmu/pte.ts';
import { formatTimeline } from '../../src/trace/timeline.ts';
import { type Body, clearPresent, DATA, FLAGS, IPI_VECTOR } from '../cpu/fixtures.ts';

/** An IPI gate whose handler records the vector, runs `body` (if any), and EOIs; returning is the iret. */
function ipiGate(seen: number[], body?: (x: Assembler) => Body): GateInit {
  return {
    handler: function* (x, ctx) {
      seen.push(ctx.vector);
      if (body) yield* body(x);
      yield x.eoi();
    },
    ist: 0,
    type: 'interrupt',
  };
}

function* pauses(x: Assembler, n: number): Body {
  for (let i = 0; i < n; i++) yield x.pause();
}

/** Two CPUs, scheduled delivery: CPU0 sends one fixed IPI to CPU1, which pauses (IF=1) with a recording gate. */
function heldIpi(config: MachineConfig = { ipiDelivery: 'scheduled' }, cpu1Pauses = 60) {
  const m = Machine.create({ cpus: 2, ...config });
  const seen: number[] = [];
  m.cpu(1).setGate(IPI_VECTOR, ipiGate(seen));
  m.load(0, function* (x) {
    yield x.sendIpi(1, IPI_VECTOR);
  });
  m.load(1, pauses, cpu1Pauses);
  return { m, seen };
}

const opsOf = (events: readonly StepEvent[]) => events.map((e) => `${e.cpu}:${e.op}`);
const deliveries = (m: Machine) => m.trace.filter((e) => e.op === 'deliver');
const apic = (m: Machine, cpu: number) => m.snapshot().cpus[cpu]!.apic;

describe('a scheduled IPI is held in flight until its delivery event', () => {
  it.each([0, 1, 5, 50])(
    'the target runs %i more instructions without taking it, then takes it after deliver:1',
    (n) => {
      const { m, seen } = heldIpi();
      m.run({ schedule: n === 0 ? '0' : `0,1*${n}` });
      expect(m.trace.at(0)!.op).toBe('send-ipi');
      expect(m.trace.slice(1).map((e) => e.op)).toEqual(Array(n).fill('pause'));
      expect(m.snapshot().inFlightIpis).toEqual([{ from: 0, to: 1, vector: IPI_VECTOR, mode: 'fixed' }]);
      expect(apic(m, 1)).toMatchObject({ pending: [], inService: [] });
      expect(seen).toEqual([]);

      m.run({ schedule: 'deliver:1' });
      expect(m.snapshot().inFlightIpis).toEqual([]);
      expect(apic(m, 1).pending).toEqual([IPI_VECTOR]);
      const accepted = m.step(1)!;
      expect(accepted.op).toBe('interrupt');
      expect(accepted.accepted).toEqual({ vector: IPI_VECTOR, nmi: false });
      expect(m.run().outcome).toBe('ok');
      expect(seen).toEqual([IPI_VECTOR]);
    },
  );

  it('the same program with immediate delivery (the default) puts the IPI in IRR in the sending step', () => {
    const { m } = heldIpi({});
    expect(m.ipiDelivery).toBe('immediate');
    m.run({ schedule: '0' });
    expect(m.snapshot().inFlightIpis).toEqual([]);
    expect(apic(m, 1).pending).toEqual([IPI_VECTOR]);
    expect(m.step(1)!.op).toBe('interrupt');
  });
});

describe('the window a held IPI opens: a shootdown that copies without waiting for the acknowledgement', () => {
  const NEW = toVirtual(0xffff_c900_0400_0000n); // mapped only to get a fresh frame for the copy
  const CLEAR_SEND_COPY_INSTALL = 2 + 1 + 512 + 2; // clear P (load, store), send-IPI, copy_page (512 x 8 B), set PTE

  function migration(ipiDelivery: 'immediate' | 'scheduled') {
    const m = Machine.create({ cpus: 2, ipiDelivery });
    m.map(DATA, { writable: true });
    m.map(NEW, { writable: true });
    const oldFrame = m.physicalAddress(DATA)!;
    const newFrame = m.physicalAddress(NEW)!;
    const handled: number[] = [];
    m.cpu(1).setGate(
      IPI_VECTOR,
      ipiGate(handled, function* (x) {
        yield x.invlpg(DATA);
      }),
    );
    // CPU0 migrates DATA's page: unmap, "flush" (send the IPI, never wait for it), copy, map the copy.
    m.load(0, function* (x) {
      yield* clearPresent(x, m, DATA);
      yield x.sendIpi(1, IPI_VECTOR);
      yield x.copyPage(m.directMap(newFrame), m.directMap(oldFrame));
      const pte = m.directMap(m.pteAddress(DATA));
      const low = yield x.load(pte, 4);
      yield x.store(pte, 4, ((low & 0xfff) | newFrame | PTE_LO.P) >>> 0);
    });
    const loaded: number[] = [];
    // CPU1 wrote DATA before (its TLB holds a writable, dirty translation) and writes it again after the copy.
    m.load(1, function* (x) {
      yield x.store(DATA, 8, 1);
      yield x.store(DATA, 8, 0x42);
      loaded.push(yield x.load(DATA, 8));
    });
    return { m, oldFrame, newFrame, handled, loaded };
  }

  const prefix = `1,0*${CLEAR_SEND_COPY_INSTALL}`; // CPU1's first store; all of CPU0's migration

  it('held until after the target stores: the store lands in the old frame and the write is lost', () => {
    const { m, oldFrame, newFrame, handled, loaded } = migration('scheduled');
    m.run({ schedule: `${prefix},1` });
    const cpu0 = m.trace.filter((e) => e.cpu === 0);
    expect(cpu0.filter((e) => e.op === 'copy')).toHaveLength(512); // the copy finished before CPU1's store
    expect(cpu0.at(-1)).toMatchObject({ op: 'store', va: m.directMap(m.pteAddress(DATA)) }); // the new PTE is in
    expect(m.trace.at(-1)).toMatchObject({ cpu: 1, op: 'store', value: 0x42, pa: oldFrame, tlb: 'hit' });
    expect(m.physicalAddress(DATA)).toBe(newFrame);
    expect(m.snapshot().inFlightIpis).toEqual([{ from: 0, to: 1, vector: IPI_VECTOR, mode: 'fixed' }]);

    m.run({ schedule: 'deliver:1' });
    expect(m.run().outcome).toBe('ok');
    expect(handled).toEqual([IPI_VECTOR]);
    expect(m.memory.read64(oldFrame)).toBe(0x42); // the write went to the frame nobody maps any more
    expect(m.memory.read64(newFrame)).toBe(1); // the copy has the value from before it
    expect(loaded).toEqual([1]); // after its invlpg, CPU1 reads back a value it overwrote: a lost write
  });

  it('delivered at once (the default), the same steps flush the target before its store: no write is lost', () => {
    const { m, oldFrame, newFrame, handled, loaded } = migration('immediate');
    m.run({ schedule: `${prefix},1` });
    expect(m.trace.at(-1)).toMatchObject({ cpu: 1, op: 'interrupt', accepted: { vector: IPI_VECTOR } });
    expect(m.run().outcome).toBe('ok');
    expect(handled).toEqual([IPI_VECTOR]);
    const store = m.trace.find((e) => e.cpu === 1 && e.op === 'store' && e.value === 0x42)!;
    expect(store).toMatchObject({ pa: newFrame, tlb: 'miss' });
    expect(store.exceptions).toBeUndefined();
    expect(m.memory.read64(oldFrame)).toBe(1);
    expect(m.memory.read64(newFrame)).toBe(0x42);
    expect(loaded).toEqual([0x42]);
  });
});

describe('coalescing happens in IRR, not in flight', () => {
  function twoSends() {
    const m = Machine.create({ cpus: 2, ipiDelivery: 'scheduled' });
    const seen: number[] = [];
    m.cpu(1).setGate(IPI_VECTOR, ipiGate(seen));
    m.load(0, function* (x) {
      yield x.sendIpi(1, IPI_VECTOR);
      yield x.sendIpi(1, IPI_VECTOR);
    });
    m.load(1, pauses, 8);
    m.run({ schedule: '0,0' });
    return { m, seen };
  }

  it('two IPIs of one vector in flight are two messages: nothing coalesced yet', () => {
    const { m } = twoSends();
    expect(m.inFlightIpis).toHaveLength(2);
    expect(m.snapshot().inFlightIpis).toEqual([
      { from: 0, to: 1, vector: IPI_VECTOR, mode: 'fixed' },
      { from: 0, to: 1, vector: IPI_VECTOR, mode: 'fixed' },
    ]);
    expect(apic(m, 1)).toMatchObject({ pending: [], coalesced: 0 });
    m.run({ schedule: '1*3' });
    expect(m.inFlightIpis).toHaveLength(2);
    expect(apic(m, 1)).toMatchObject({ pending: [], coalesced: 0 });
  });

  it('both delivered before the target accepts the first: they coalesce and the handler runs once', () => {
    const { m, seen } = twoSends();
    m.run({ schedule: 'deliver:1' });
    expect(apic(m, 1)).toMatchObject({ pending: [IPI_VECTOR], coalesced: 0 });
    expect(m.inFlightIpis).toHaveLength(1);
    m.run({ schedule: 'deliver:1' });
    expect(apic(m, 1)).toMatchObject({ pending: [IPI_VECTOR], coalesced: 1 });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([IPI_VECTOR]);
    expect(m.trace.filter((e) => e.op === 'interrupt')).toHaveLength(1);
  });

  it('one delivered and accepted before the second is delivered: the handler runs twice, the second after EOI', () => {
    const { m, seen } = twoSends();
    m.run({ schedule: 'deliver:1,1' });
    expect(m.trace.at(-1)!.op).toBe('interrupt');
    expect(apic(m, 1)).toMatchObject({ pending: [], inService: [IPI_VECTOR] });
    m.run({ schedule: 'deliver:1' });
    expect(apic(m, 1)).toMatchObject({ pending: [IPI_VECTOR], inService: [IPI_VECTOR], coalesced: 0 });
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([IPI_VECTOR, IPI_VECTOR]);
    const cpu1 = opsOf(m.trace.filter((e) => e.cpu === 1 && e.op !== 'pause'));
    expect(cpu1).toEqual([
      '1:deliver',
      '1:interrupt',
      '1:deliver',
      '1:eoi',
      '1:iret',
      '1:interrupt',
      '1:eoi',
      '1:iret',
      '1:exit',
    ]);
    expect(apic(m, 1)).toMatchObject({ pending: [], inService: [], coalesced: 0 });
  });
});

describe('an NMI in flight is still an NMI', () => {
  function nmiToCli() {
    const m = Machine.create({ cpus: 2, ipiDelivery: 'scheduled' });
    m.load(0, function* (x) {
      yield x.sendIpi(1, IPI_VECTOR);
      yield x.sendIpi(1, VECTOR.NMI, 'nmi');
    });
    m.load(1, function* (x) {
      yield x.cli();
      yield* pauses(x, 6);
    });
    return m;
  }

  it('it stays in flight while the target runs with IF=0, and deliver:1:nmi makes it taken at the next step', () => {
    const m = nmiToCli();
    m.run({ schedule: '1,0,0,1*3' });
    expect(m.snapshot().inFlightIpis).toEqual([
      { from: 0, to: 1, vector: IPI_VECTOR, mode: 'fixed' },
      { from: 0, to: 1, vector: VECTOR.NMI, mode: 'nmi' },
    ]);
    expect(apic(m, 1).nmiPending).toBe(false);

    m.run({ schedule: 'deliver:1:nmi' }); // the NMI, not the older fixed IPI
    expect(deliveries(m).at(-1)!.ipi).toEqual({ to: [1], vector: VECTOR.NMI, mode: 'nmi', from: 0 });
    expect(m.snapshot().inFlightIpis).toEqual([{ from: 0, to: 1, vector: IPI_VECTOR, mode: 'fixed' }]);
    expect(apic(m, 1).nmiPending).toBe(true);
    expect(m.cpu(1).interruptsEnabled).toBe(false);
    const taken = m.step(1)!;
    expect(taken.op).toBe('interrupt');
    expect(taken.accepted).toEqual({ vector: VECTOR.NMI, nmi: true });
    expect(m.cpu(1).interruptsEnabled).toBe(false);
  });
});

describe('a halted or spinning target wakes on delivery, not on send', () => {
  it('a CPU halted with IF=0 wakes for an NMI at its delivery, not at its send', () => {
    const m = Machine.create({ cpus: 2, ipiDelivery: 'scheduled' });
    m.load(0, function* (x) {
      yield x.sendIpi(1, VECTOR.NMI, 'nmi');
    });
    m.load(1, function* (x) {
      yield x.cli();
      yield x.hlt();
    });
    m.run({ schedule: '1,1,0' });
    expect(m.cpu(1).state).toBe('halted');
    expect(m.runnable(1)).toBe(false);
    m.run({ schedule: 'deliver:1:nmi' });
    expect(m.runnable(1)).toBe(true);
    expect(m.step(1)!.accepted).toEqual({ vector: VECTOR.NMI, nmi: true });
  });

  it('a CPU halted with IF=1 is not runnable while the IPI is in flight, and is after delivery', () => {
    const m = Machine.create({ cpus: 2, ipiDelivery: 'scheduled' });
    const seen: number[] = [];
    m.map(DATA, { writable: true });
    m.cpu(1).setGate(IPI_VECTOR, ipiGate(seen));
    m.load(0, function* (x) {
      yield x.sendIpi(1, IPI_VECTOR);
    });
    m.load(1, function* (x) {
      yield x.hlt();
      yield x.store(DATA, 8, 7);
    });
    m.run({ schedule: '1,0' });
    expect(m.cpu(1).state).toBe('halted');
    expect(m.inFlightIpis).toHaveLength(1);
    expect(m.runnable(1)).toBe(false);
    expect(m.step(1)!.op).toBe('idle'); // stepped anyway, it stays halted
    expect(m.runnable(1)).toBe(false);

    m.deliverIpi(1);
    expect(m.runnable(1)).toBe(true);
    expect(m.step(1)!.op).toBe('interrupt');
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([IPI_VECTOR]);
    expect(m.memory.read64(m.physicalAddress(DATA)!)).toBe(7);
  });

  it('a CPU blocked in spinUntil with IF=1 is not runnable while the IPI is in flight, and is after delivery', () => {
    const m = Machine.create({ cpus: 2, ipiDelivery: 'scheduled' });
    m.map(FLAGS, { writable: true });
    const seen: number[] = [];
    m.cpu(1).setGate(
      IPI_VECTOR,
      ipiGate(seen, function* (x) {
        yield x.store(FLAGS, 8, 1);
      }),
    );
    m.load(0, function* (x) {
      yield x.sendIpi(1, IPI_VECTOR);
    });
    m.load(1, function* (x) {
      yield x.spinUntil(FLAGS, 8, (v) => v === 1);
    });
    m.run({ schedule: '1,0' });
    expect(m.cpu(1).state).toBe('blocked');
    expect(m.runnable(1)).toBe(false);
    m.deliverIpi(1, IPI_VECTOR);
    expect(m.runnable(1)).toBe(true);
    expect(m.step(1)!.op).toBe('interrupt');
    expect(m.run().outcome).toBe('ok');
    expect(seen).toEqual([IPI_VECTOR]);
    expect(m.cpu(1).state).toBe('halted'); // the spin saw the handler's store; the program returned
  });

  it('with immediate delivery the halted target is runnable right after the send', () => {
    const m = Machine.create({ cpus: 2 });
    m.cpu(1).setGate(IPI_VECTOR, ipiGate([]));
    m.load(0, function* (x) {
      yield x.sendIpi(1, IPI_VECTOR);
    });
    m.load(1, function* (x) {
      yield x.hlt();
    });
    m.run({ schedule: '1' });
    expect(m.runnable(1)).toBe(false);
    m.run({ schedule: '0' });
    expect(m.runnable(1)).toBe(true);
  });
});

describe('deadlock: an IPI in flight is something that can move', () => {
  /** CPU0 sends an IPI and spins on the ack its handler stores; CPU1 halts (IF=1). */
  function ackHandshake() {
    const m = Machine.create({ cpus: 2, ipiDelivery: 'scheduled' });
    m.map(FLAGS, { writable: true });
    m.cpu(1).setGate(
      IPI_VECTOR,
      ipiGate([], function* (x) {
        yield x.store(FLAGS, 8, 1);
      }),
    );
    m.load(0, function* (x) {
      yield x.sendIpi(1, IPI_VECTOR);
      yield x.spinUntil(FLAGS, 8, (v) => v === 1);
    });
    m.load(1, function* (x) {
      yield x.hlt();
    });
    return m;
  }

  it('with both CPUs waiting and the IPI in flight, the outcome is ok, not deadlock', () => {
    const m = ackHandshake();
    const result = m.run({ schedule: '1,0,0' }); // hlt; send; spin (blocked)
    expect(m.cpu(0).state).toBe('blocked');
    expect(m.cpu(1).state).toBe('halted');
    expect(m.runnable(0) || m.runnable(1)).toBe(false);
    expect(m.inFlightIpis).toHaveLength(1);
    expect(result.outcome).toBe('ok');
    expect(m.outcome).toBe('ok');
  });

  it('round-robin in scheduled mode completes the handshake: the bus turn delivers', () => {
    const m = ackHandshake();
    const result = m.run();
    expect(result.outcome).toBe('ok');
    expect(result.limitReached).toBe(false);
    expect(deliveries(m)).toHaveLength(1);
    expect(m.cpus.map((c) => c.state)).toEqual(['halted', 'halted']);
    expect(m.memory.read64(m.physicalAddress(FLAGS)!)).toBe(1);
  });

  it('from the held state, a later run delivers and completes', () => {
    const m = ackHandshake();
    m.run({ schedule: '1,0,0' });
    expect(m.run().outcome).toBe('ok');
    expect(m.inFlightIpis).toEqual([]);
  });

  it('nothing in flight and both CPUs spinning on flags nobody writes is still a deadlock', () => {
    const m = Machine.create({ cpus: 2, ipiDelivery: 'scheduled' });
    m.map(FLAGS, { writable: true });
    for (const id of [0, 1]) {
      m.load(id, function* (x) {
        yield x.spinUntil(FLAGS + 8 * id, 8, (v) => v === 1);
      });
    }
    expect(m.run().outcome).toBe('deadlock');
    expect(m.outcome).toBe('deadlock');
    expect(m.inFlightIpis).toEqual([]);
  });

  it('once the IPI in flight is delivered to a CPU that cannot take it, a spinning sender is deadlocked', () => {
    const m = Machine.create({ cpus: 2, ipiDelivery: 'scheduled' });
    m.map(FLAGS, { writable: true });
    m.load(0, function* (x) {
      yield x.sendIpi(1, IPI_VECTOR);
      yield x.spinUntil(FLAGS, 8, (v) => v === 1);
    });
    m.load(1, function* (x) {
      yield x.cli();
      yield x.hlt();
    });
    m.run({ schedule: '1,1,0,0' });
    expect(m.outcome).toBe('ok'); // the IPI may still move
    m.deliverIpi(1);
    expect(m.outcome).toBe('deadlock');
    expect(apic(m, 1).pending).toEqual([IPI_VECTOR]);
  });
});

describe('the built-in policies', () => {
  /** Three CPUs: CPU0 sends one IPI to both others in one step; all pause. */
  function broadcast(config: MachineConfig) {
    const m = Machine.create({ cpus: 3, ...config });
    const seen: number[][] = [[], [], []];
    for (const cpu of m.cpus) cpu.setGate(IPI_VECTOR, ipiGate(seen[cpu.id]!));
    m.load(0, function* (x) {
      yield x.sendIpi('all-but-self', IPI_VECTOR);
      yield* pauses(x, 2);
    });
    m.load(1, pauses, 3);
    m.load(2, pauses, 3);
    return { m, seen };
  }

  it('round-robin in scheduled mode delivers the oldest IPI in flight after each round (CPUs 0..n-1, then the bus)', () => {
    const { m, seen } = broadcast({ ipiDelivery: 'scheduled' });
    expect(m.run().outcome).toBe('ok');
    expect(opsOf(m.trace).slice(0, 9)).toEqual([
      '0:send-ipi',
      '1:pause',
      '2:pause',
      '1:deliver', // the bus: the oldest (to CPU1), one per round
      '0:pause',
      '1:interrupt',
      '2:pause',
      '2:deliver',
      '0:pause',
    ]);
    expect(deliveries(m).map((e) => [e.cpu, e.step])).toEqual([
      [1, 3],
      [2, 6],
    ]);
    expect(seen).toEqual([[], [IPI_VECTOR], [IPI_VECTOR]]);
  });

  it('random with a seed delivers at the PRNG picks: the same seed gives the same trace', () => {
    const traceOf = (seed: number) => {
      const { m, seen } = broadcast({ ipiDelivery: 'scheduled' });
      expect(m.run({ schedule: 'random', seed }).outcome).toBe('ok');
      expect(m.inFlightIpis).toEqual([]);
      expect(seen).toEqual([[], [IPI_VECTOR], [IPI_VECTOR]]);
      return opsOf(m.trace);
    };
    for (const seed of [1, 7, 12345]) {
      const trace = traceOf(seed);
      expect(trace.filter((e) => e.endsWith(':deliver')).sort()).toEqual(['1:deliver', '2:deliver']);
      expect(traceOf(seed)).toEqual(trace);
    }
  });

  it('immediate delivery (the default) records no deliver events and runs as before', () => {
    const m = Machine.create({ cpus: 2 });
    m.map(DATA, { writable: true });
    m.cpu(0).setGate(IPI_VECTOR, ipiGate([]));
    m.load(0, function* (x) {
      yield x.hlt();
      yield x.store(DATA, 8, 1);
    });
    m.load(1, function* (x) {
      yield* pauses(x, 3);
      yield x.sendIpi(0, IPI_VECTOR);
    });
    expect(m.run().outcome).toBe('ok');
    // The trace test/cpu/interrupts.test.ts recorded before IPIs could be in flight.
    expect(opsOf(m.trace)).toEqual([
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
    for (const seed of [1, 2, 3]) {
      const { m: r } = broadcast({});
      expect(r.run({ schedule: 'random', seed }).outcome).toBe('ok');
      expect(deliveries(r)).toEqual([]);
    }
  });

  it('run({ ipiDelivery: "immediate" }) on a scheduled machine gives the default trace', () => {
    const scheduled = broadcast({ ipiDelivery: 'scheduled' }).m;
    const immediate = broadcast({}).m;
    scheduled.run({ ipiDelivery: 'immediate' });
    immediate.run();
    expect(JSON.stringify(scheduled.trace)).toBe(JSON.stringify(immediate.trace));
    expect(scheduled.ipiDelivery).toBe('scheduled');
  });
});

describe('trace, timeline, snapshot and images', () => {
  it('send and delivery are separate events: deliver is on the target, names the sender, numbered as the next step', () => {
    const { m } = heldIpi();
    m.run({ schedule: '0,1,1,deliver:1,1' });
    const [send, p1, p2, deliver, accepted] = m.trace;
    expect(m.trace).toHaveLength(5);
    expect(send).toMatchObject({
      step: 0,
      cpu: 0,
      op: 'send-ipi',
      ipi: { to: [1], vector: IPI_VECTOR, mode: 'fixed' },
    });
    expect(opsOf([p1!, p2!])).toEqual(['1:pause', '1:pause']);
    expect(deliver).toMatchObject({
      cpu: 1,
      op: 'deliver',
      ipi: { to: [1], vector: IPI_VECTOR, mode: 'fixed', from: 0 },
      state: 'running',
    });
    expect(deliver!.step).toBe(3);
    expect(accepted).toMatchObject({ step: 3, cpu: 1, op: 'interrupt' });
    expect(deliver!.rip).toBe(accepted!.rip);
    expect(m.stepCount).toBe(4); // the delivery took no step

    const lines = formatTimeline(m.trace, 2).split('\n');
    const row = lines.find((l) => l.includes('deliver'))!;
    expect(row).toBeDefined();
    expect(row.trimStart().startsWith('3 ')).toBe(true);
    const [cpu0Lane, cpu1Lane] = row.slice(row.indexOf('3') + 1).split('│');
    expect(cpu0Lane!.trim()).toBe('');
    expect(cpu1Lane).toContain('deliver');
    expect(cpu1Lane).toContain('0xf0');
  });

  it('snapshots list the IPIs in flight, oldest first, with sender, target, vector and mode', () => {
    const m = Machine.create({ cpus: 3, ipiDelivery: 'scheduled' });
    m.load(0, function* (x) {
      yield x.sendIpi(2, 0x31);
      yield x.sendIpi([1, 2], VECTOR.NMI, 'nmi');
    });
    m.load(1, function* (x) {
      yield x.sendIpi(0, 0x40);
    });
    m.run({ schedule: '0,1,0' });
    const before = m.snapshot();
    expect(before.inFlightIpis).toEqual([
      { from: 0, to: 2, vector: 0x31, mode: 'fixed' },
      { from: 1, to: 0, vector: 0x40, mode: 'fixed' },
      { from: 0, to: 1, vector: VECTOR.NMI, mode: 'nmi' },
      { from: 0, to: 2, vector: VECTOR.NMI, mode: 'nmi' },
    ]);
    m.deliverIpi(2, 'nmi');
    expect(m.snapshot().inFlightIpis).toHaveLength(3);
    expect(before.inFlightIpis).toHaveLength(4); // a snapshot is a view of its moment
    expect(Object.isFrozen(before.inFlightIpis)).toBe(true);
  });

  it('an image keeps the delivery mode: a clone of a scheduled machine holds a sent IPI in flight', () => {
    const { m } = heldIpi({});
    m.ipiDelivery = 'scheduled';
    const image = MachineImage.capture(m);
    const clone = image.instantiate();
    expect(clone.ipiDelivery).toBe('scheduled');
    clone.run({ schedule: '0,1*3' });
    expect(clone.snapshot().inFlightIpis).toEqual([{ from: 0, to: 1, vector: IPI_VECTOR, mode: 'fixed' }]);
    expect(apic(clone, 1).pending).toEqual([]);
    clone.run({ schedule: 'deliver:1,1' });
    expect(clone.trace.at(-1)!.op).toBe('interrupt');
    // The image's mode does not follow the original machine afterwards.
    m.ipiDelivery = 'immediate';
    expect(image.instantiate().ipiDelivery).toBe('scheduled');
  });

  it('an image keeps IPIs already in flight: each clone delivers its own copy', () => {
    const { m, seen } = heldIpi();
    m.sendIpi(0, 1, IPI_VECTOR, 'fixed'); // an ICR write before the first step
    const image = MachineImage.capture(m);
    const a = image.instantiate();
    const b = image.instantiate();
    expect(a.snapshot().inFlightIpis).toEqual([{ from: 0, to: 1, vector: IPI_VECTOR, mode: 'fixed' }]);
    a.deliverIpi(1);
    expect(a.inFlightIpis).toEqual([]);
    expect(b.inFlightIpis).toHaveLength(1);
    expect(m.inFlightIpis).toHaveLength(1);
    expect(seen).toEqual([]);
  });
});

describe('schedules name deliveries', () => {
  it.each(['deliver:1', 'deliver:1:0xf0', 'deliver:1:nmi', '0,deliver:1,1*3,deliver:0:0x31,deliver:1:nmi'])(
    'parseSchedule and formatSchedule round-trip %s',
    (text) => {
      expect(formatSchedule(parseSchedule(text))).toBe(text);
    },
  );

  it('parses delivery tokens into delivery events', () => {
    expect(parseSchedule('0,deliver:1,deliver:1:0xf0,deliver:1:240,deliver:1:NMI')).toEqual([
      0,
      { cpu: 1, deliver: 'oldest' },
      { cpu: 1, deliver: 0xf0 },
      { cpu: 1, deliver: 0xf0 },
      { cpu: 1, deliver: 'nmi' },
    ]);
    expect(formatSchedule([{ cpu: 1, deliver: 0xf0 }])).toBe('deliver:1:0xf0');
  });

  it('refuses a vector outside 16..255, naming the token', () => {
    for (const token of ['deliver:1:0x05', 'deliver:1:15', 'deliver:1:256']) {
      expect(() => parseSchedule(`0,${token}`)).toThrow(InputError);
      expect(() => parseSchedule(`0,${token}`)).toThrow(token);
    }
    const { m } = heldIpi();
    expect(() => m.run({ schedule: '0,deliver:1:0x05' })).toThrow(/deliver:1:0x05/);
    expect(() => m.run({ schedule: [0, { cpu: 1, deliver: 5 }] })).toThrow(/schedule entry 1/);
    expect(m.stepCount).toBe(0); // checked before the first step
  });

  it('refuses a delivery to a CPU that does not exist, naming the entry', () => {
    const { m } = heldIpi();
    expect(() => m.run({ schedule: '0,deliver:2' })).toThrow(InputError);
    expect(() => m.run({ schedule: '0,deliver:2' })).toThrow(/schedule entry 1 names CPU 2/);
    expect(() => m.run({ schedule: [0, { cpu: 2, deliver: 'oldest' }] })).toThrow(/schedule entry 1 names CPU 2/);
    expect(m.stepCount).toBe(0);
  });

  it('refuses a delivery with no such IPI in flight when the entry is reached', () => {
    const { m } = heldIpi();
    expect(() => m.run({ schedule: '0,1*2,deliver:0' })).toThrow(InputError);
    expect(m.stepCount).toBe(3); // the steps before the entry were taken
    expect(() => m.run({ schedule: 'deliver:1:0xf1' })).toThrow(/schedule entry 0 \(deliver:1:0xf1\)/);
    expect(() => m.run({ schedule: 'deliver:1:nmi' })).toThrow(/deliver:1:nmi/);
    expect(() => m.run({ schedule: [1, { cpu: 0, deliver: 'oldest' }] })).toThrow(/schedule entry 1 \(deliver:0\)/);
    expect(m.stepCount).toBe(4);
    expect(m.inFlightIpis).toHaveLength(1); // nothing was delivered by the refusals
    const { m: fresh } = heldIpi();
    expect(() => fresh.run({ schedule: '0*1,1*3,deliver:0' })).toThrow(/schedule entry 4 \(deliver:0\)/);
  });

  it('array entries { cpu, deliver } work as the string tokens do: identical traces', () => {
    const viaString = heldIpi().m;
    const viaArray = heldIpi().m;
    viaString.run({ schedule: '0,1*2,deliver:1,1,1' });
    const entries: ScheduleEntry[] = [0, 1, 1, { cpu: 1, deliver: 'oldest' }, 1, 1];
    viaArray.run({ schedule: entries });
    expect(JSON.stringify(viaArray.trace)).toBe(JSON.stringify(viaString.trace));
    expect(viaArray.trace.map((e) => e.op)).toContain('deliver');

    const byVector = heldIpi().m;
    byVector.run({ schedule: [0, { cpu: 1, deliver: IPI_VECTOR }, 1] });
    expect(byVector.trace.at(-1)!.op).toBe('interrupt');
  });

  it('deliverIpi refuses when no IPI in flight matches, and names what it looked for', () => {
    const { m } = heldIpi();
    expect(() => m.deliverIpi(1)).toThrow(InputError);
    expect(() => m.deliverIpi(1)).toThrow(/no IPI is in flight to CPU 1/);
    m.run({ schedule: '0' });
    expect(() => m.deliverIpi(0)).toThrow(/no IPI is in flight to CPU 0/);
    expect(() => m.deliverIpi(1, 'nmi')).toThrow(/no NMI is in flight to CPU 1/);
    expect(() => m.deliverIpi(1, 0xf1)).toThrow(/no IPI of vector 0xf1/);
    expect(() => m.deliverIpi(5)).toThrow(InputError);
    expect(m.inFlightIpis).toHaveLength(1);
    expect(m.deliverIpi(1, IPI_VECTOR)).toMatchObject({ from: 0, to: 1, vector: IPI_VECTOR, nmi: false });
    expect(m.inFlightIpis).toEqual([]);
  });

  it('run({ ipiDelivery }) holds IPIs for that run only and restores the machine mode after it', () => {
    const { m, seen } = heldIpi({});
    m.run({ schedule: '0,1', ipiDelivery: 'scheduled' });
    expect(m.ipiDelivery).toBe('immediate');
    expect(m.inFlightIpis).toHaveLength(1); // sent in flight, it stays in flight
    expect(() => m.run({ schedule: 'deliver:0', ipiDelivery: 'scheduled' })).toThrow(InputError);
    expect(m.ipiDelivery).toBe('immediate'); // restored after a refusal too
    expect(() => m.run({ ipiDelivery: 'later' as never })).toThrow(InputError);
    expect(m.ipiDelivery).toBe('immediate');
    expect(m.run().outcome).toBe('ok'); // round-robin's bus turn delivers what is left
    expect(seen).toEqual([IPI_VECTOR]);

    const s = heldIpi().m;
    s.run({ schedule: '0', ipiDelivery: 'immediate' });
    expect(s.ipiDelivery).toBe('scheduled');
    expect(s.inFlightIpis).toEqual([]);
    expect(apic(s, 1).pending).toEqual([IPI_VECTOR]);
  });

  it('Machine.create and the ipiDelivery setter refuse an unknown mode', () => {
    expect(() => Machine.create({ ipiDelivery: 'eventually' as never })).toThrow(InputError);
    const m = Machine.create();
    expect(() => {
      m.ipiDelivery = 'sometimes' as never;
    }).toThrow(InputError);
    expect(m.ipiDelivery).toBe('immediate');
  });
});

describe('determinism with delivery events', () => {
  it('the same machine, programs and schedule with deliver events give identical traces on two fresh machines', () => {
    const schedule = '0,1*3,deliver:2,2,1,deliver:1:0xf0,1*2,0,deliver:1:nmi,1*6,2*6';
    const run = () => {
      const m = Machine.create({ cpus: 3, ipiDelivery: 'scheduled' });
      m.map(DATA, { writable: true });
      for (const cpu of m.cpus) {
        cpu.setGate(
          IPI_VECTOR,
          ipiGate([], function* (x) {
            const v = yield x.load(DATA, 8);
            yield x.store(DATA, 8, v + 1);
          }),
        );
      }
      m.load(0, function* (x) {
        yield x.sendIpi('all-but-self', IPI_VECTOR);
        yield x.sendIpi(1, VECTOR.NMI, 'nmi');
      });
      m.load(1, pauses, 6);
      m.load(2, pauses, 6);
      const result = m.run({ schedule });
      return JSON.stringify({ result, trace: m.trace, snapshot: m.snapshot() });
    };
    const first = run();
    expect(first).toContain('"op":"deliver"');
    expect(run()).toBe(first);
  });
});
