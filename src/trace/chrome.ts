import type { StepEvent } from '../cpu/step-event.ts';
import { formatPhysical, formatVirtual } from '../mmu/address.ts';
import { checkTrace, hex, ipiName, linkHandlers, linkIpis, listAt } from './links.ts';

// Chrome trace-event JSON (the JSON Object Format), which Perfetto (ui.perfetto.dev) and chrome://tracing open.
//
// Time: 1 step = 1 µs of trace time. Step k of a CPU is a complete event ("X") on that CPU's track (pid 0, tid =
// CPU id) from k to k+1. A `deliver` event is no step: it sits in the half step before the step it precedes (so it
// nests inside the target's previous step when the target took that step). Exceptions raised in a step and a stop
// are instant events ("i") inside the step's slice.
//
// Flows (arrows), each a start "s" and finish "f" (bp "e": bound to the enclosing slice) with one id, placed just
// inside the slices they join:
// - an IPI, from the sending step to the target's `deliver` event when delivery was scheduled, and from there to the
//   `interrupt` step that accepted it; with immediate delivery, from the sending step to the acceptance;
// - a fault, from the faulting step to the CPU's next step: delivery starts the handler within the faulting step,
//   so that next step is the handler's first instruction, however many steps of other CPUs come between.

const CATEGORY = 'x86slice';
const PID = 0;

interface ChromeEvent {
  readonly name: string;
  readonly cat?: string;
  readonly ph: 'X' | 'i' | 's' | 'f' | 'M';
  readonly ts?: number;
  readonly dur?: number;
  readonly pid: number;
  readonly tid: number;
  readonly id?: number;
  readonly s?: 't';
  readonly bp?: 'e';
  readonly args?: Readonly<Record<string, unknown>>;
}

/** Start times: a step at its number; deliveries before step k share the half step before it. */
function timestamps(events: readonly StepEvent[]): { ts: number[]; dur: number[] } {
  const ts: number[] = [];
  const dur: number[] = [];
  for (let j = 0; j < events.length; ) {
    const e = events[j]!;
    if (e.op !== 'deliver') {
      ts.push(e.step);
      dur.push(1);
      j++;
      continue;
    }
    let n = 0;
    while (j + n < events.length && events[j + n]!.op === 'deliver' && events[j + n]!.step === e.step) n++;
    for (let g = 0; g < n; g++) {
      ts.push(e.step - 0.5 + (0.5 * g) / n);
      // Shorter than its share, so rounding never makes it end past the enclosing step.
      dur.push(0.4 / n);
    }
    j += n;
  }
  return { ts, dur };
}

function stepArgs(e: StepEvent): Record<string, unknown> {
  const args: Record<string, unknown> = { step: e.step, rip: formatVirtual(e.rip) };
  if (e.va !== undefined) args.va = formatVirtual(e.va);
  if (e.pa !== undefined) args.pa = formatPhysical(e.pa);
  if (e.size !== undefined) args.size = e.size;
  if (e.value !== undefined) args.value = hex(e.value);
  if (e.tlb !== undefined) args.tlb = e.tlb;
  if (e.accepted !== undefined) args.accepted = e.accepted.nmi ? 'NMI' : hex(e.accepted.vector);
  if (e.ipi !== undefined) {
    args.ipi = ipiName(e.ipi.vector, e.ipi.mode);
    if (e.op === 'deliver') args.from = e.ipi.from;
    else args.to = e.ipi.to.join(',');
  }
  args.state = e.state;
  return args;
}

/**
 * Formats step events (`machine.trace`) as Chrome trace-event JSON: one track per CPU, a slice per step (1 step =
 * 1 µs), instant events for exceptions and stops, flow arrows for IPIs and from each fault to its handler's first
 * step. Open the file in ui.perfetto.dev (Open trace file) or chrome://tracing. One event per line, so it diffs.
 */
export function formatChromeTrace(events: readonly StepEvent[], cpuCount: number): string {
  checkTrace(events, cpuCount, 'formatChromeTrace');
  const out: ChromeEvent[] = [{ name: 'process_name', ph: 'M', pid: PID, tid: 0, args: { name: 'x86slice' } }];
  for (let cpu = 0; cpu < cpuCount; cpu++) {
    out.push({ name: 'thread_name', ph: 'M', pid: PID, tid: cpu, args: { name: `CPU${cpu}` } });
    out.push({ name: 'thread_sort_index', ph: 'M', pid: PID, tid: cpu, args: { sort_index: cpu } });
  }
  const { ts, dur } = timestamps(events);
  // Flow ends by event index; an end is always at a later event than its start, so starts are emitted first.
  const starts = new Map<number, { id: number; name: string }[]>();
  const finishes = new Map<number, { id: number; name: string }[]>();
  let nextId = 1;
  const flow = (from: number, to: number, name: string) => {
    const id = nextId++;
    listAt(starts, from).push({ id, name });
    listAt(finishes, to).push({ id, name });
  };
  for (const link of linkIpis(events)) {
    const name = ipiName(link.vector, link.mode);
    const arrival = link.deliver ?? link.accept;
    if (link.send !== undefined && arrival !== undefined) flow(link.send, arrival, name);
    if (link.deliver !== undefined && link.accept !== undefined) flow(link.deliver, link.accept, name);
  }
  for (const [fault, handler] of linkHandlers(events)) {
    const delivered = events[fault]!.exceptions!.filter((x) => x.outcome === 'delivered');
    flow(fault, handler, `${delivered.map((x) => x.name).join(', ')} handler`);
  }

  for (const [j, e] of events.entries()) {
    const at = { pid: PID, tid: e.cpu };
    // Just inside the slice, which binds a flow to it in Perfetto and chrome://tracing alike.
    const flowTs = ts[j]! + dur[j]! / 100;
    out.push({ name: e.op, cat: CATEGORY, ph: 'X', ts: ts[j]!, dur: dur[j]!, ...at, args: stepArgs(e) });
    for (const f of finishes.get(j) ?? []) {
      out.push({ name: f.name, cat: CATEGORY, ph: 'f', bp: 'e', id: f.id, ts: flowTs, ...at });
    }
    for (const f of starts.get(j) ?? []) {
      out.push({ name: f.name, cat: CATEGORY, ph: 's', id: f.id, ts: flowTs, ...at });
    }
    const exceptions = e.exceptions ?? [];
    // Instants spread inside the step's slice, in the order they were raised, the stop last.
    const slots = exceptions.length + (e.stop ? 1 : 0) + 1;
    for (const [k, x] of exceptions.entries()) {
      const args: Record<string, unknown> = { step: e.step, vector: x.vector, errorCode: hex(x.errorCode) };
      if (x.cr2 !== undefined) args.cr2 = formatVirtual(x.cr2);
      if (x.during !== undefined) args.during = x.during;
      args.outcome = x.outcome;
      if (x.stack !== undefined) args.stack = x.stack;
      if (x.rsp !== undefined) args.rsp = formatVirtual(x.rsp);
      out.push({ name: x.name, cat: CATEGORY, ph: 'i', s: 't', ts: ts[j]! + (dur[j]! * (k + 1)) / slots, ...at, args });
    }
    if (e.stop) {
      const args = { step: e.step, outcome: e.stop.outcome, message: e.stop.message };
      out.push({
        name: e.stop.outcome,
        cat: CATEGORY,
        ph: 'i',
        s: 't',
        ts: ts[j]! + (dur[j]! * (slots - 1)) / slots,
        ...at,
        args,
      });
    }
  }
  const lines = out.map((event) => JSON.stringify(event));
  return `{"traceEvents":[\n${lines.join(',\n')}\n],"displayTimeUnit":"ns","otherData":{"timeUnit":"1 step = 1 µs"}}\n`;
}
