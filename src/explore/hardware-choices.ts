import type { Machine } from '../machine/machine.ts';
import type { DrainEvent, PscEntryKind, PscEvent, PscFillEvent, ScheduleEntry } from '../machine/schedule.ts';
import { HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE } from '../mmu/address.ts';
import type { PscLevel } from '../mmu/paging-structure-cache.ts';
import type { PhysicalMemory } from '../mmu/physical-memory.ts';
import { entryFrame, LARGE_1G_RESERVED_LO, LARGE_2M_RESERVED_LO, PTE_HI_RESERVED, PTE_LO } from '../mmu/pte.ts';
import type { Tlb } from '../mmu/tlb.ts';

// The hardware's own choices that came with store buffers and paging-structure caches (issue 19), for both
// exhaustive searches and the sampling strategies (choices.ts and state-choices.ts append them):
//  - a store-buffer drain (x86-TSO: the oldest buffered store of a CPU reaches memory), offered while that CPU's
//    buffer holds a store. Drains are not counted against a budget: each empties one entry of a finite buffer, and a
//    run may not end with stores still buffered (they reach memory eventually), so an execution's drains are
//    bounded by its stores, and every order of them with the other choices is explored;
//  - a paging-structure-cache eviction (SDM §4.10.3: the processor may drop an entry at any time), offered for
//    every entry a CPU holds, within the TLB-event budget;
//  - with `cacheEvents: 'mapped'`: every TLB eviction (2 MiB and 1 GiB entries too), a speculative TLB fill of every
//    translation present through the CPU's CR3 (SDM §4.10.2.3: any address mapped by the current tables may be
//    cached, whether or not the CPU accessed it; 4 KiB, 2 MiB and 1 GiB pages), and a paging-structure-cache fill of
//    every present non-leaf upper entry through it (§4.10.3.1), within the same budget. `cacheEvents: 'held'` (the
//    default) keeps the cheaper set choices.ts always offered: evictions of 4 KiB entries, fills of 4 KiB pages
//    another CPU holds.
// Reductions, each sound because the event it leaves out leads to a state another choice reaches with no more
// budget: a fill of a page (or entry) the CPU holds already is not offered (the fill would refresh the entry, which
// an eviction followed by the CPU's own walk does), nor a fill that would cache nothing (its only effect would be
// the budget it spends).

/** Which cache events a search offers: those of pages in use (`held`, the default) or of everything mapped. */
export type CacheScope = 'held' | 'mapped';
export const CACHE_SCOPES: readonly CacheScope[] = ['held', 'mapped'];

/** A hardware choice of this module: a drain, a paging-structure-cache eviction or fill. */
export type HardwareChoice = DrainEvent | PscEvent | PscFillEvent;

/** Whether `c` (any choice) is one of this module's. */
export function isHardwareChoice(c: object): c is HardwareChoice {
  return 'drain' in c || 'psc' in c || 'pscFill' in c;
}

/** Whether `c` is a paging-structure-cache event (counted against the TLB-event budget, as TLB events are). */
export function isPscChoice(c: object): boolean {
  return 'psc' in c || 'pscFill' in c;
}

const PSC_KIND_OF_LEVEL: readonly PscEntryKind[] = ['pde', 'pde', 'pde', 'pdpte', 'pml4e'];

/** A name for a choice of this module, the same at every point it is offered. */
export function hardwareChoiceKey(c: HardwareChoice): string {
  if ('drain' in c) return `s${c.cpu}`;
  if ('psc' in c) return `p${c.psc}${c.cpu}:${c.va}`;
  return `q${c.pscFill}${c.cpu}:${c.va}`;
}

/** Makes the choice on `m`; returns it as its schedule entry (the choice objects are schedule entries). */
export function applyHardwareChoice(m: Machine, c: HardwareChoice): ScheduleEntry {
  if ('drain' in c) m.drainStoreBuffer(c.cpu);
  else if ('psc' in c) m.evictPagingStructureEntry(c.cpu, c.psc, c.va);
  else m.fillPagingStructureEntry(c.cpu, c.pscFill, c.va);
  return c;
}

/** Choice objects, made once each (the stateful search offers the same few at millions of states). */
const interned = new Map<string, HardwareChoice>();
function intern<C extends HardwareChoice>(c: C): C {
  const key = hardwareChoiceKey(c);
  const known = interned.get(key);
  if (known !== undefined) return known as C;
  Object.freeze(c);
  if (interned.size < 1 << 16) interned.set(key, c);
  return c;
}
const DRAINS: readonly DrainEvent[] = Array.from({ length: 64 }, (_, cpu) => Object.freeze({ cpu, drain: true }));
/** TLB-event choice objects of this module (large-page evictions, fills of mapped pages), made once each. */
const tlbChoices = new Map<string, { cpu: number; tlb: 'evict' | 'fill'; va: number }>();
function tlbChoice(cpu: number, tlb: 'evict' | 'fill', va: number) {
  const key = `${tlb}${cpu}:${va}`;
  let c = tlbChoices.get(key);
  if (c === undefined) {
    c = Object.freeze({ cpu, tlb, va });
    if (tlbChoices.size < 1 << 16) tlbChoices.set(key, c);
  }
  return c;
}

/** Drains into `out` from index `n`: one per CPU whose store buffer holds a store, in CPU order. Returns the count. */
export function drainChoicesInto(m: Machine, out: object[], n: number): number {
  if (m.config.storeBuffer === 0) return n;
  for (const cpu of m.cpus) {
    const sb = cpu.port.storeBuffer;
    if (sb !== undefined && sb.length !== 0) out[n++] = DRAINS[cpu.id]!;
  }
  return n;
}

/**
 * The cache events of this module into `out` from index `n`, with TLB events left: per started CPU, its
 * paging-structure-cache evictions; with scope `mapped`, its evictions of large TLB entries, fills of every
 * translation through its CR3 it does not hold (but for the 4 KiB pages in `offered`, the sorted list choices.ts
 * offers as fills already), and paging-structure-cache fills. Returns the count.
 */
export function cacheChoicesInto(
  m: Machine,
  scope: CacheScope,
  offered: readonly number[],
  out: object[],
  n: number,
): number {
  for (const cpu of m.cpus) {
    if (!cpu.started) continue;
    const psc = cpu.port.psc;
    if (psc !== undefined && psc.size !== 0) {
      for (const e of psc.entries()) {
        out[n++] = intern<PscEvent>({ cpu: cpu.id, psc: PSC_KIND_OF_LEVEL[e.level]!, va: e.va });
      }
    }
    if (scope !== 'mapped') continue;
    const s = cpu.tlb.storage;
    if (cpu.tlb.largeEntryCount !== 0) {
      const bases: number[] = [];
      for (let j = 0; j < s.largeBase.length; j++) if (s.largeBase[j]! >= 0) bases.push(s.largeBase[j]!);
      bases.sort((a, b) => a - b);
      for (const va of bases) out[n++] = tlbChoice(cpu.id, 'evict', va);
    }
    const mapped = mappedEntries(m.memory, cpu.regs.cr3);
    for (let i = 0; i < mapped.leaves.length; i += 2) {
      const va = mapped.leaves[i]!;
      if (mapped.leaves[i + 1] === PAGE_SIZE && includes(offered, va)) continue;
      if (holdsTranslation(cpu.tlb, va)) continue;
      out[n++] = tlbChoice(cpu.id, 'fill', va);
    }
    if (psc !== undefined) {
      for (let i = 0; i < mapped.uppers.length; i += 2) {
        const va = mapped.uppers[i]!;
        const level = mapped.uppers[i + 1]! as PscLevel;
        if (psc.holds(level, va)) continue;
        out[n++] = intern<PscFillEvent>({ cpu: cpu.id, pscFill: PSC_KIND_OF_LEVEL[level]!, va });
      }
    }
  }
  return n;
}

function includes(sorted: readonly number[], va: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid]!;
    if (v === va) return true;
    if (v < va) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** Whether `tlb` holds an entry translating `va` (a 4 KiB one, or a large one covering it), with no side effects. */
export function holdsTranslation(tlb: Tlb, va: number): boolean {
  if (tlb.probe(va) >= 0) return true;
  if (tlb.largeEntryCount === 0) return false;
  const s = tlb.storage;
  for (let j = 0; j < s.largeBase.length; j++) {
    const base = s.largeBase[j]!;
    if (base >= 0 && va >= base && va < base + s.largeSize[j]!) return true;
  }
  return false;
}

/** What the tables under one CR3 map: leaves as [va, page size] pairs, upper non-leaf entries as [va, level]. */
interface MappedEntries {
  readonly leaves: number[];
  readonly uppers: number[];
}

const SPAN = [0, PAGE_SIZE, LARGE_PAGE_SIZE, HUGE_PAGE_SIZE, 2 ** 39];

/**
 * Every present, well-formed entry of the tables under `cr3`, in address order: leaves (4 KiB PTEs, 2 MiB PDEs,
 * 1 GiB PDPTEs) and the non-leaf PML4Es, PDPTEs and PDEs above them. Read with no side effects.
 */
export function mappedEntries(memory: PhysicalMemory, cr3: number): MappedEntries {
  const out: MappedEntries = { leaves: [], uppers: [] };
  scan(memory, Math.floor(cr3 / PAGE_SIZE) * PAGE_SIZE, 4, 0, out);
  return out;
}

function scan(memory: PhysicalMemory, table: number, level: number, base: number, out: MappedEntries): void {
  // A table outside memory reads as all ones (reserved bits set): no entry there is mapped.
  if (table + PAGE_SIZE > memory.size) return;
  // The frame's bytes, read directly: this runs at every point that has TLB events left.
  const frame = memory.frame(table / PAGE_SIZE, false);
  for (let i = 0; i < 512; i++) {
    const lo = frame.getUint32(8 * i, true);
    if ((lo & PTE_LO.P) === 0) continue;
    const hi = frame.getUint32(8 * i + 4, true);
    if ((hi & PTE_HI_RESERVED) !== 0) continue;
    const va = base + i * SPAN[level]!;
    const large = level <= 3 && (lo & PTE_LO.PS) !== 0;
    if (level === 1 || large) {
      if (level === 2 && (lo & LARGE_2M_RESERVED_LO) !== 0) continue;
      if (level === 3 && (lo & LARGE_1G_RESERVED_LO) !== 0) continue;
      out.leaves.push(va, SPAN[level]!);
      continue;
    }
    if (level === 4 && (lo & PTE_LO.PS) !== 0) continue; // reserved in a PML4E
    out.uppers.push(va, level);
    scan(memory, entryFrame(lo, hi), level - 1, va, out);
  }
}
