import type { Machine } from '../machine/machine.ts';
import type { Choice } from './choices.ts';
import { type CacheScope, cacheChoicesInto, drainChoicesInto } from './hardware-choices.ts';

// The choices at a state of the stateful search: the same set, in the same order, as choicesOf() (choices.ts)
// gives, read from the TLBs' arrays rather than their entry lists, into an array the search reuses, with each
// delivery and TLB-event choice made once (a search offers the same few at many of its millions of states).

const STEPS: readonly Choice[] = Array.from({ length: 64 }, (_, cpu) => Object.freeze({ cpu }));

/** The choice of a step of CPU `cpu` (one object per CPU). */
export function stepChoice(cpu: number): Choice {
  return STEPS[cpu]!;
}

/** Delivery and TLB-event choices, made once each (a search offers the same few at many states), by CPU and key. */
const deliveries: Map<number | 'nmi', Choice>[] = [];
const evictions: Map<number, Choice>[] = [];
const fills: Map<number, Choice>[] = [];

/** The map at `table[cpu]`, made on first use. */
function mapOf<K>(table: Map<K, Choice>[], cpu: number): Map<K, Choice> {
  let map = table[cpu];
  if (map === undefined) {
    map = new Map();
    table[cpu] = map;
  }
  return map;
}

function deliveryChoice(cpu: number, deliver: 'nmi' | number): Choice {
  const known = mapOf(deliveries, cpu);
  let c = known.get(deliver);
  if (c === undefined) {
    c = Object.freeze({ cpu, deliver });
    known.set(deliver, c);
  }
  return c;
}

function tlbChoice(cpu: number, tlb: 'evict' | 'fill', va: number): Choice {
  const table = tlb === 'evict' ? evictions : fills;
  const known = mapOf(table, cpu);
  let c = known.get(va);
  if (c === undefined) {
    c = Object.freeze({ cpu, tlb, va });
    known.set(va, c);
  }
  return c;
}

/** Per CPU, the 4 KiB pages its TLB holds (scratch for stateChoices). */
const held: number[][] = [];
const inUse: number[] = [];

/**
 * Sets an array's length only when it changes: the setter is a builtin call even when it does not (2.5% of the
 * stateful search's time, at every state).
 */
function setLength(list: unknown[], n: number): void {
  if (list.length !== n) list.length = n;
}

function insertSorted(list: number[], va: number): void {
  let i = list.length;
  while (i > 0 && list[i - 1]! > va) i--;
  if (list[i - 1] !== va) list.splice(i, 0, va);
}

/**
 * The choices at this state into `out` (emptied first), as choicesOf() gives them: CPUs in id order, deliveries
 * oldest first, then TLB events (each CPU's evictions of the 4 KiB pages it holds, then fills of pages another CPU
 * holds), read from the TLBs' arrays rather than their entry lists.
 */
export function stateChoices(m: Machine, tlbLeft: number, out: Choice[] = [], scope: CacheScope = 'held'): Choice[] {
  // Written by index into the reused array, its length set once at the end (and only when it changes).
  let n = 0;
  for (const cpu of m.cpus) if (cpu.started && cpu.runnable) out[n++] = STEPS[cpu.id]!;
  const inFlight = m.ipiBus.inFlight;
  if (inFlight.length === 0 && tlbLeft === 0) {
    setLength(out, drainChoicesInto(m, out, n)); // issue 19: store-buffer drains
    return out;
  }
  const deliveries = n;
  for (const ipi of inFlight) {
    const c = deliveryChoice(ipi.to, ipi.nmi ? 'nmi' : ipi.vector);
    let known = false;
    for (let i = deliveries; i < n; i++) if (out[i] === c) known = true;
    if (!known) out[n++] = c;
  }
  n = drainChoicesInto(m, out, n); // issue 19: store-buffer drains
  if (tlbLeft > 0 && n > 0) {
    if (inUse.length !== 0) inUse.length = 0;
    for (const cpu of m.cpus) {
      let pages = held[cpu.id];
      if (pages === undefined) {
        pages = [];
        held[cpu.id] = pages;
      }
      if (pages.length !== 0) pages.length = 0;
      const tag = cpu.tlb.storage.tag;
      for (let i = 0; i < tag.length; i++) {
        const vpn = tag[i]!;
        if (vpn < 0) continue;
        insertSorted(pages, vpn * 4096);
        insertSorted(inUse, vpn * 4096);
      }
    }
    for (const cpu of m.cpus) {
      if (!cpu.started) continue;
      const mine = held[cpu.id]!;
      for (const va of mine) out[n++] = tlbChoice(cpu.id, 'evict', va);
      for (const va of inUse) if (!mine.includes(va)) out[n++] = tlbChoice(cpu.id, 'fill', va);
    }
    // issue 19: paging-structure-cache events, and with scope 'mapped' the rest of the TLB events
    n = cacheChoicesInto(m, scope, inUse, out, n);
  }
  setLength(out, n);
  return out;
}
