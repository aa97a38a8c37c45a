import type { DeliverySelector } from '../cpu/ipi-bus.ts';
import type { Machine } from '../machine/machine.ts';
import type { ScheduleEntry } from '../machine/schedule.ts';
import {
  applyHardwareChoice,
  type CacheScope,
  cacheChoicesInto,
  drainChoicesInto,
  type HardwareChoice,
  hardwareChoiceKey,
  isHardwareChoice,
  isPscChoice,
} from './hardware-choices.ts';

// The choices at one point of an execution (DESIGN.md "Checking"): a CPU that can move takes a step, an IPI in
// flight reaches its target, or, while the execution has TLB events left, the hardware drops or fills a TLB entry
// (SDM §4.10.2: a processor may do either at any time). Every strategy chooses among the same set.

export type Choice =
  | { readonly cpu: number }
  | { readonly cpu: number; readonly deliver: DeliverySelector }
  | { readonly cpu: number; readonly tlb: 'evict' | 'fill'; readonly va: number }
  // Store-buffer drains and paging-structure-cache events (hardware-choices.ts, issue 19).
  | HardwareChoice;

/** Whether `c` is a TLB or paging-structure-cache event: those count against the TLB-event budget. */
export function isTlbEvent(c: Choice): boolean {
  return 'tlb' in c || isPscChoice(c);
}

export function isStep(c: Choice): boolean {
  return !('tlb' in c) && !('deliver' in c) && !isHardwareChoice(c);
}

/** Step choices and their keys, made once: a point's choices are mostly these. */
const STEPS: readonly Choice[] = Array.from({ length: 64 }, (_, cpu) => Object.freeze({ cpu }));
const STEP_KEYS: readonly string[] = STEPS.map((c) => `${c.cpu}`);

/** A name for a choice that is the same at every point it is offered (the exhaustive search's sets hold these). */
export function choiceKey(c: Choice): string {
  if ('tlb' in c) return `${c.tlb === 'evict' ? 'e' : 'f'}${c.cpu}:${c.va}`;
  if ('deliver' in c) return `d${c.cpu}:${c.deliver}`;
  if (isHardwareChoice(c)) return hardwareChoiceKey(c);
  return STEP_KEYS[c.cpu]!;
}

/**
 * The choices at this point, CPUs first in id order, then deliveries (oldest first), then TLB events. TLB events are
 * the hardware's freedom: any CPU may drop any 4 KiB entry it holds, and may fill, speculatively, a page another CPU
 * holds (a page in use, so the candidates stay few).
 */
export function choicesOf(m: Machine, tlbEventsLeft: number, scope: CacheScope = 'held'): Choice[] {
  const out: Choice[] = [];
  out.length = choicesInto(m, tlbEventsLeft, out, scope);
  return out;
}

/**
 * choicesOf() into `out` from index 0, returning the count (entries past it are stale): the sampling strategies
 * reuse one array for every step. CPU steps are shared objects; only deliveries and TLB events allocate.
 */
export function choicesInto(m: Machine, tlbEventsLeft: number, out: Choice[], scope: CacheScope = 'held'): number {
  let n = 0;
  for (const cpu of m.cpus) if (cpu.started && cpu.runnable) out[n++] = STEPS[cpu.id]!;
  const inFlight = m.ipiBus.inFlight;
  if (inFlight.length === 0 && tlbEventsLeft === 0) return drainChoicesInto(m, out, n); // issue 19: drains
  const deliveries = n;
  for (const ipi of inFlight) {
    const deliver: DeliverySelector = ipi.nmi ? 'nmi' : ipi.vector;
    // Two IPIs of one vector to one CPU are one choice: a delivery takes the oldest.
    let known = false;
    for (let i = deliveries; i < n; i++) {
      const c = out[i]!;
      if ('deliver' in c && c.cpu === ipi.to && c.deliver === deliver) known = true;
    }
    if (!known) out[n++] = { cpu: ipi.to, deliver };
  }
  n = drainChoicesInto(m, out, n); // issue 19: store-buffer drains
  if (tlbEventsLeft > 0 && n > 0) {
    const held = m.cpus.map((c) => {
      const vas = new Set<number>();
      for (const e of c.tlb.entries()) if (e.pageSize === 4096) vas.add(e.va);
      return vas;
    });
    const inUse = [...new Set(held.flatMap((s) => [...s]))].sort((a, b) => a - b);
    for (const cpu of m.cpus) {
      if (!cpu.started) continue;
      const mine = held[cpu.id]!;
      for (const va of [...mine].sort((a, b) => a - b)) out[n++] = { cpu: cpu.id, tlb: 'evict', va };
      for (const va of inUse) if (!mine.has(va)) out[n++] = { cpu: cpu.id, tlb: 'fill', va };
    }
    // issue 19: paging-structure-cache events, and with scope 'mapped' the rest of the TLB events
    n = cacheChoicesInto(m, scope, inUse, out, n);
  }
  return n;
}

/** Makes the choice on `m` and returns it as a schedule entry. Deliveries and TLB events take no step. */
export function applyChoice(m: Machine, c: Choice): ScheduleEntry {
  if ('deliver' in c) {
    m.deliverIpi(c.cpu, c.deliver);
    return { cpu: c.cpu, deliver: c.deliver };
  }
  if (isHardwareChoice(c)) return applyHardwareChoice(m, c);
  if ('tlb' in c) {
    if (c.tlb === 'evict') m.evictTlb(c.cpu, c.va);
    else m.fillTlb(c.cpu, c.va);
    return { cpu: c.cpu, tlb: c.tlb, va: c.va };
  }
  m.step(c.cpu);
  return c.cpu;
}
