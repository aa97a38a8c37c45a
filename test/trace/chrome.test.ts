import { describe, expect, it } from 'vitest';
import type { StepEvent } from '../../src/cpu/step-event.ts';
import type { Machine } from '../../src/machine/machine.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { runScenario } from '../../src/scenarios/catalogue.ts';
import { formatChromeTrace } from '../../src/trace/chrome.ts';
import { coalescedIpis, IPI_VECTOR, ipiMachine } from './fixtures.ts';

interface ChromeEvent {
  readonly name: string;
  readonly ph: string;
  readonly ts: number;
  readonly dur: number;
  readonly pid: number;
  readonly tid: number;
  readonly id?: number;
  readonly bp?: string;
  readonly s?: string;
  readonly args: Record<string, unknown>;
}

function chrome(m: Machine): { events: ChromeEvent[]; json: Record<string, unknown> } {
  const json = JSON.parse(formatChromeTrace(m.trace, m.cpus.length)) as Record<string, unknown>;
  return { events: json.traceEvents as ChromeEvent[], json };
}

const slices = (events: readonly ChromeEvent[]) => events.filter((e) => e.ph === 'X');

/** The innermost slice on `tid` that a flow event at `ts` binds to (bp "e": the enclosing slice). */
function enclosing(events: readonly ChromeEvent[], tid: number, ts: number): ChromeEvent | undefined {
  const open = slices(events).filter((e) => e.tid === tid && e.ts <= ts && ts < e.ts + e.dur);
  return open.sort((a, b) => b.ts - a.ts)[0];
}

/** Each flow id's start and finish, and the slices they bind to. */
function flows(events: readonly ChromeEvent[]) {
  const ids = [...new Set(events.filter((e) => e.ph === 's' || e.ph === 'f').map((e) => e.id!))];
  return ids.map((id) => {
    const start = events.filter((e) => e.id === id && e.ph === 's');
    const finish = events.filter((e) => e.id === id && e.ph === 'f');
    expect(start, `flow ${id} has one start`).toHaveLength(1);
    expect(finish, `flow ${id} has one finish`).toHaveLength(1);
    const s = start[0]!;
    const f = finish[0]!;
    expect(f.bp).toBe('e');
    expect(f.name).toBe(s.name);
    return { id, name: s.name, from: enclosing(events, s.tid, s.ts)!, to: enclosing(events, f.tid, f.ts)! };
  });
}

const describeSlice = (e: ChromeEvent) => `${e.tid}:${e.name}@${e.args.step}`;

describe('Chrome trace export', () => {
  it('is the JSON Object Format with one named track per CPU', () => {
    const m = ipiMachine('immediate');
    const { events, json } = chrome(m);
    expect(json.displayTimeUnit).toBe('ns');
    const names = events.filter((e) => e.ph === 'M' && e.name === 'thread_name');
    expect(names.map((e) => [e.pid, e.tid, e.args.name])).toEqual([
      [0, 0, 'CPU0'],
      [0, 1, 'CPU1'],
    ]);
  });

  it('every step is a one-step slice on its CPU track, named by its mnemonic, with its accesses in args', () => {
    const { machine } = runScenario('stale-tlb');
    const { events } = chrome(machine);
    const steps = slices(events);
    expect(steps.map((e) => [e.ts, e.dur, e.tid, e.name])).toEqual(machine.trace.map((e) => [e.step, 1, e.cpu, e.op]));
    const store = steps.find((e) => e.name === 'store' && e.args.tlb !== undefined)!;
    expect(store.args).toMatchObject({ va: expect.stringMatching(/^0xffff/), pa: expect.stringMatching(/^0x/) });
    expect(store.args.value).toMatch(/^0x[0-9a-f]+$/);
  });

  it('slices on one track never partly overlap, so each track is one well-nested stack', () => {
    for (const m of [ipiMachine('scheduled', '0,1,deliver:1,1,1,0,deliver:1,1*8'), runScenario('pf-in-pf').machine]) {
      const all = slices(chrome(m).events);
      for (const a of all) {
        for (const b of all) {
          if (a === b || a.tid !== b.tid) continue;
          const disjoint = a.ts + a.dur <= b.ts || b.ts + b.dur <= a.ts;
          const nested =
            (a.ts >= b.ts && a.ts + a.dur <= b.ts + b.dur) || (b.ts >= a.ts && b.ts + b.dur <= a.ts + a.dur);
          expect(disjoint || nested, `${describeSlice(a)} and ${describeSlice(b)}`).toBe(true);
        }
      }
    }
  });

  it('an IPI delivered at once is a flow from the sending step on CPU0 to the accepting step on CPU1', () => {
    const { events } = chrome(ipiMachine('immediate'));
    const ipis = flows(events).filter((f) => f.name === 'IPI 0xf0' || f.name === 'NMI');
    expect(ipis.map((f) => [f.name, describeSlice(f.from), describeSlice(f.to)])).toEqual([
      ['IPI 0xf0', '0:send-ipi@0', '1:interrupt@1'],
      ['NMI', '0:send-ipi@2', '1:interrupt@3'],
    ]);
  });

  it('an IPI held in flight flows from the send to its deliver event, and from there to the acceptance', () => {
    const m = ipiMachine('scheduled', '0,1,deliver:1,1,1,0,deliver:1,1*8');
    const { events } = chrome(m);
    const ipis = flows(events).filter((f) => f.name === `IPI 0x${IPI_VECTOR.toString(16)}` || f.name === 'NMI');
    expect(ipis.map((f) => [f.name, describeSlice(f.from), describeSlice(f.to)])).toEqual([
      ['IPI 0xf0', '0:send-ipi@0', '1:deliver@2'],
      ['IPI 0xf0', '1:deliver@2', '1:interrupt@2'],
      ['NMI', '0:send-ipi@4', '1:deliver@5'],
      ['NMI', '1:deliver@5', '1:interrupt@5'],
    ]);
    // The delivery sits in the half step before the step it precedes, inside CPU1's previous step.
    const deliver = slices(events).find((e) => e.name === 'deliver')!;
    expect(deliver.ts).toBeGreaterThanOrEqual(1.5);
    expect(deliver.ts + deliver.dur).toBeLessThan(2);
    expect(deliver.args).toMatchObject({ ipi: 'IPI 0xf0', from: 0 });
  });

  it('two IPIs that coalesce into one acceptance are two flows ending at that acceptance', () => {
    const { events } = chrome(coalescedIpis());
    expect(flows(events).map((f) => [describeSlice(f.from), describeSlice(f.to)])).toEqual([
      ['0:send-ipi@0', '1:interrupt@3'],
      ['0:send-ipi@1', '1:interrupt@3'],
    ]);
  });

  it("a double fault: each exception is an instant on the CPU's track, the stop one with its message", () => {
    const { machine } = runScenario('pf-in-pf');
    const { events } = chrome(machine);
    const instants = events.filter((e) => e.ph === 'i');
    expect(instants.every((e) => e.s === 't' && e.tid === 0)).toBe(true);
    expect(instants.map((e) => [e.name, e.args.step, e.args.outcome])).toEqual([
      ['#PF', 4, 'frame-fault'],
      ['#PF', 4, 'double-fault'],
      ['#DF', 4, 'delivered'],
      ['double-fault', 5, 'double-fault'],
    ]);
    expect(instants[0]!.args.cr2).toMatch(/^0xffffc900/);
    const stop = instants.at(-1)!;
    expect(stop.args.message).toBe(machine.trace.at(-1)!.stop!.message);
    expect(stop.args.message).toMatch(/^PANIC: double fault/);
    // Instants sit inside their step's slice.
    for (const e of instants) expect(Math.floor(e.ts)).toBe(e.args.step);
  });

  it("a delivered fault flows to the handler's first step on that CPU", () => {
    const { machine } = runScenario('pf-in-pf');
    const handlers = flows(chrome(machine).events);
    expect(handlers.map((f) => [f.name, describeSlice(f.from), describeSlice(f.to)])).toEqual([
      ['#DF handler', '0:push@4', '0:die@5'],
    ]);
  });

  it("with other CPUs stepping in between, the handler flow still reaches the faulting CPU's next step", () => {
    const { machine } = runScenario('stale-tlb');
    const handlers = flows(chrome(machine).events);
    expect(handlers.map((f) => [describeSlice(f.from), describeSlice(f.to)])).toEqual([
      ['0:load@10', '0:iret@12'],
      ['1:load@17', '1:iret@18'],
    ]);
  });

  it('a trace that lost its sends to a cap still draws what it kept', () => {
    const m = ipiMachine('scheduled', '0,1,deliver:1,1,1,0,deliver:1,1*8');
    const kept = m.trace.slice(2);
    const events = JSON.parse(formatChromeTrace(kept, 2)).traceEvents as ChromeEvent[];
    expect(slices(events)).toHaveLength(kept.length);
    expect(flows(events).map((f) => [describeSlice(f.from), describeSlice(f.to)])).toEqual([
      ['1:deliver@2', '1:interrupt@2'],
      ['0:send-ipi@4', '1:deliver@5'],
      ['1:deliver@5', '1:interrupt@5'],
    ]);
  });

  it('refuses a cpuCount that is no machine, and events on CPUs the count does not have', () => {
    const trace = ipiMachine('immediate').trace;
    expect(() => formatChromeTrace(trace, 0)).toThrow(InputError);
    expect(() => formatChromeTrace(trace, 0)).toThrow(/^formatChromeTrace cpuCount 0 must be an integer in 1\.\.64$/);
    expect(() => formatChromeTrace(trace, 1)).toThrow(/^formatChromeTrace: event .+ is not on a CPU of this machine/);
    expect(() => formatChromeTrace('trace' as unknown as StepEvent[], 1)).toThrow(InputError);
  });

  it('an empty trace is a valid file with the tracks only', () => {
    const events = JSON.parse(formatChromeTrace([], 3)).traceEvents as ChromeEvent[];
    expect(events.filter((e) => e.name === 'thread_name')).toHaveLength(3);
    expect(slices(events)).toEqual([]);
  });
});
