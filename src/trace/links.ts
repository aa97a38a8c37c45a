import type { IpiMode } from '../cpu/instruction.ts';
import type { StepEvent } from '../cpu/step-event.ts';
import { MAX_CPUS } from '../machine/machine-config.ts';
import { describeValue, InputError, requireInteger } from '../mmu/input-error.ts';

// What the trace exports share: the check of their input, and the links between events that the trace records
// only at their ends (an IPI's send, delivery and acceptance; a fault and its handler's first step).

/** Refuses what is no trace of a `cpuCount`-CPU machine, naming `where` (the exporter). */
export function checkTrace(events: readonly StepEvent[], cpuCount: number, where: string): void {
  requireInteger(cpuCount, `${where} cpuCount`, 1, MAX_CPUS);
  if (!Array.isArray(events)) throw new InputError(`${where} events ${describeValue(events)} must be an array`);
  for (const e of events as readonly unknown[]) {
    const cpu = typeof e === 'object' && e !== null ? (e as { cpu?: unknown }).cpu : undefined;
    if (typeof cpu !== 'number' || !Number.isInteger(cpu) || cpu < 0 || cpu >= cpuCount) {
      throw new InputError(
        `${where}: event ${describeValue(e)} is not on a CPU of this machine (cpuCount ${cpuCount}: CPUs 0..${
          cpuCount - 1
        })`,
      );
    }
  }
}

/** One IPI to one target, by index into the events: sent, delivered (scheduled delivery only) and accepted. */
export interface IpiLink {
  /** The `send-ipi` step; undefined when the send is not among the events (dropped from a capped trace). */
  readonly send: number | undefined;
  readonly from: number | undefined;
  readonly to: number;
  readonly vector: number;
  readonly mode: IpiMode;
  /** The `deliver` event that put it in the target's IRR, when delivery was scheduled. */
  readonly deliver: number | undefined;
  /** The `interrupt` step in which the target accepted it (coalesced IPIs share one). */
  readonly accept: number | undefined;
}

type MutableLink = { -readonly [K in keyof IpiLink]: IpiLink[K] };

function accepts(e: StepEvent, link: MutableLink): boolean {
  const a = e.accepted!;
  return link.mode === 'nmi' ? a.nmi : !a.nmi && a.vector === link.vector;
}

/**
 * Pairs each IPI's events. A delivery event belongs to the oldest undelivered send from its sender with its vector
 * and mode (in flight, identical IPIs are interchangeable). An acceptance takes every IPI of its vector that has
 * reached the target (several in IRR coalesce into one acceptance): those delivered by a delivery event first, and
 * only when there are none the sends that have no delivery event in the trace (immediate delivery: the IPI reached
 * IRR in the sending step).
 */
export function linkIpis(events: readonly StepEvent[]): readonly IpiLink[] {
  const links: MutableLink[] = [];
  const undelivered = new Map<number, MutableLink[]>();
  // Which sends a delivery event completes: decided before acceptances are matched, which depend on it.
  for (const [j, e] of events.entries()) {
    if (e.ipi === undefined) continue;
    const { vector, mode } = e.ipi;
    if (e.op === 'send-ipi') {
      for (const to of e.ipi.to) {
        const link: MutableLink = { send: j, from: e.cpu, to, vector, mode, deliver: undefined, accept: undefined };
        links.push(link);
        listAt(undelivered, to).push(link);
      }
    } else if (e.op === 'deliver') {
      const q = listAt(undelivered, e.cpu);
      const k = q.findIndex((l) => l.from === e.ipi!.from && l.vector === vector && l.mode === mode);
      if (k >= 0) q.splice(k, 1)[0]!.deliver = j;
      else links.push({ send: undefined, from: e.ipi.from, to: e.cpu, vector, mode, deliver: j, accept: undefined });
    }
  }
  // Links by the event at which they reach the target's APIC.
  const arriving = new Map<number, MutableLink[]>();
  for (const link of links) listAt(arriving, link.deliver ?? link.send!).push(link);
  const pending = new Map<number, MutableLink[]>();
  for (const [j, e] of events.entries()) {
    for (const link of arriving.get(j) ?? []) listAt(pending, link.to).push(link);
    if (e.op !== 'interrupt' || e.accepted === undefined) continue;
    const q = listAt(pending, e.cpu);
    const matching = q.filter((l) => accepts(e, l));
    const delivered = matching.filter((l) => l.deliver !== undefined);
    const taken = delivered.length > 0 ? delivered : matching;
    for (const link of taken) {
      link.accept = j;
      q.splice(q.indexOf(link), 1);
    }
  }
  return links;
}

/**
 * For each step that delivered a fault (not an accepted interrupt) to its handler, the index of that CPU's next
 * step: the handler's first instruction (delivery starts the handler within the faulting step).
 */
export function linkHandlers(events: readonly StepEvent[]): Map<number, number> {
  const links = new Map<number, number>();
  const waiting = new Map<number, number>();
  for (const [j, e] of events.entries()) {
    if (e.op === 'deliver') continue;
    const from = waiting.get(e.cpu);
    if (from !== undefined) {
      links.set(from, j);
      waiting.delete(e.cpu);
    }
    if (e.accepted === undefined && e.exceptions?.some((x) => x.outcome === 'delivered')) waiting.set(e.cpu, j);
  }
  return links;
}

/** The list `map` holds at `key`, made empty on first use. */
export function listAt<T>(map: Map<number, T[]>, key: number): T[] {
  const list = map.get(key);
  if (list !== undefined) return list;
  const made: T[] = [];
  map.set(key, made);
  return made;
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** How an IPI is named in exports: `IPI 0xfb`, or `NMI` for an NMI IPI. */
export function ipiName(vector: number, mode: IpiMode): string {
  return mode === 'nmi' ? 'NMI' : `IPI ${hex(vector)}`;
}
