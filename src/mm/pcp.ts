import type { BuddyAllocator } from './buddy.ts';
import { rmqueue } from './fallback.ts';
import { MIGRATE_TYPES, PAGE_ALLOC_COSTLY_ORDER, PAGEBLOCK_ORDER } from './mmzone.ts';
import { sameItems } from './same-items.ts';

// Per-CPU page lists (struct per_cpu_pages, mm/page_alloc.c, Linux 6.6). Each CPU keeps free pages of orders
// 0..PAGE_ALLOC_COSTLY_ORDER per migratetype, and pageblock-order pages on one list (CONFIG_TRANSPARENT_HUGEPAGE),
// so most allocations and frees never take the zone lock:
// - an empty list is refilled with `batch` pages in one zone-lock hold (rmqueue_bulk(), added at the tail);
// - an allocation takes the head (the page freed last, cache-hot);
// - a free goes to the head, and once the CPU holds `high` pages a batch goes back to the buddy lists
//   (free_pcppages_bulk(), from the tails, round-robin over the lists), more each time while frees keep coming
//   with no allocation in between (free_factor, nr_pcp_free()).
// Pages on these lists are neither free on the buddy lists (no merging, not in NR_FREE_PAGES) nor owned: the
// frame guard treats them as free. Everything here runs inside a zone-lock step.

/** NR_LOWORDER_PCP_LISTS: a list per migratetype for each order up to PAGE_ALLOC_COSTLY_ORDER. */
const LOWORDER_LISTS = MIGRATE_TYPES * (PAGE_ALLOC_COSTLY_ORDER + 1);
/** NR_PCP_LISTS: with the pageblock-order (THP) list. */
export const PCP_LISTS = LOWORDER_LISTS + 1;
/** CONFIG_PCP_BATCH_SCALE_MAX: free_factor doubles the batch freed at most this many times. */
const PCP_BATCH_SCALE_MAX = 5;

/** pcp_allowed_order(): the orders per-CPU lists hold. */
export function pcpAllowedOrder(order: number): boolean {
  return order <= PAGE_ALLOC_COSTLY_ORDER || order === PAGEBLOCK_ORDER;
}

/** order_to_pindex(migratetype, order). */
export function orderToPindex(type: number, order: number): number {
  return order > PAGE_ALLOC_COSTLY_ORDER ? LOWORDER_LISTS : MIGRATE_TYPES * order + type;
}

function pindexToOrder(pindex: number): number {
  return pindex === LOWORDER_LISTS ? PAGEBLOCK_ORDER : Math.floor(pindex / MIGRATE_TYPES);
}

/** One CPU's lists. Each list is an array of block indices whose last element is the head. */
interface CpuLists {
  readonly lists: number[][];
  count: number;
  freeFactor: number;
}

function emptyLists(): CpuLists {
  return { lists: Array.from({ length: PCP_LISTS }, () => []), count: 0, freeFactor: 0 };
}

export class PerCpuPages {
  private cpus: CpuLists[];

  constructor(
    cpus: number,
    /** pcp->batch: pages moved to or from the zone at once. */
    public batch: number,
    /** pcp->high: a CPU's pages above which a free drains a batch. */
    public high: number,
  ) {
    this.cpus = Array.from({ length: cpus }, emptyLists);
  }

  clone(): PerCpuPages {
    const c = new PerCpuPages(0, this.batch, this.high);
    c.cpus = this.cpus.map((p) => ({ lists: p.lists.map((l) => l.slice()), count: p.count, freeFactor: p.freeFactor }));
    return c;
  }

  /**
   * Takes `from`'s lists in place, copying only the lists that differ (the stateful checker goes back to saved
   * states many times, and most of the lists are the same each time).
   */
  copyFrom(from: PerCpuPages): void {
    this.batch = from.batch;
    this.high = from.high;
    if (this.cpus.length !== from.cpus.length) {
      this.cpus = from.clone().cpus;
      return;
    }
    for (let cpu = 0; cpu < from.cpus.length; cpu++) {
      const mine = this.cpus[cpu]!;
      const theirs = from.cpus[cpu]!;
      mine.count = theirs.count;
      mine.freeFactor = theirs.freeFactor;
      for (let i = 0; i < theirs.lists.length; i++) {
        const a = mine.lists[i]!;
        const b = theirs.lists[i]!;
        if (sameItems(a, b)) continue;
        a.length = b.length;
        for (let j = 0; j < b.length; j++) a[j] = b[j]!;
      }
    }
  }

  /** Appends what decides the lists' future behaviour (the stateful checker's fingerprint): batch, high, contents. */
  stateWords(out: number[]): void {
    out.push(this.batch, this.high, this.cpus.length);
    for (const p of this.cpus) {
      out.push(p.count, p.freeFactor);
      for (const list of p.lists) {
        out.push(list.length);
        for (const i of list) out.push(i);
      }
    }
  }

  /** Pages CPU `cpu` holds (pcp->count). */
  count(cpu: number): number {
    return this.cpus[cpu]!.count;
  }

  /** Pages all CPUs hold. */
  total(): number {
    return this.cpus.reduce((n, p) => n + p.count, 0);
  }

  /** Whether block index `i` is on some CPU's list (for invariant checks). */
  holds(i: number): boolean {
    return this.cpus.some((p) => p.lists.some((l) => l.includes(i)));
  }

  /**
   * rmqueue_pcplist(): a block of `order` and `type` from CPU `cpu`'s list, refilling an empty list from the zone
   * first (rmqueue_bulk(): max(batch >> order, 2) blocks under one zone-lock hold). Returns its index or -1.
   */
  allocate(zone: BuddyAllocator, cpu: number, order: number, type: number, allocFlags: number): number {
    const p = this.cpus[cpu]!;
    p.freeFactor >>= 1; // an allocation: frees drain less eagerly again
    const list = p.lists[orderToPindex(type, order)]!;
    if (list.length === 0) {
      let batch = this.batch;
      if (batch > 1) batch = Math.max(batch >> order, 2);
      const got: number[] = [];
      for (let n = 0; n < batch; n++) {
        const i = rmqueue(zone, order, type, allocFlags);
        if (i < 0) break;
        got.push(i);
      }
      // Added at the tail in the order they came (list_add_tail()), so the first one is taken first; the list was
      // empty, so the first one is its head: the array's last element.
      for (let k = got.length - 1; k >= 0; k--) list.push(got[k]!);
      p.count += got.length << order;
      if (list.length === 0) return -1;
    }
    const i = list.pop()!;
    p.count -= 1 << order;
    return i;
  }

  /**
   * free_unref_page_commit(): the released block `i` goes to the head of CPU `cpu`'s list for `type` (its
   * pageblock's type when it was freed, recorded in the zone's per-frame migratetype). When the CPU then holds
   * `high` pages or more, a batch goes back to the zone. `reclaimActive` (ZONE_RECLAIM_ACTIVE, kswapd running)
   * caps `high` at four batches.
   */
  free(zone: BuddyAllocator, cpu: number, i: number, order: number, type: number, reclaimActive: boolean): void {
    const p = this.cpus[cpu]!;
    zone.migratetype[i] = type; // set_pcppage_migratetype()
    const pindex = orderToPindex(type, order);
    p.lists[pindex]!.push(i);
    p.count += 1 << order;
    // High-order pages other than THPs are freed in bulk when the CPU frees heavily without allocating.
    const freeHigh = p.freeFactor > 0 && order > 0 && order <= PAGE_ALLOC_COSTLY_ORDER;
    const high = this.nrPcpHigh(freeHigh, reclaimActive);
    if (p.count >= high) this.freeBulk(zone, p, this.nrPcpFree(p, high, freeHigh), pindex);
  }

  /** nr_pcp_high(). */
  private nrPcpHigh(freeHigh: boolean, reclaimActive: boolean): number {
    if (this.high === 0 || freeHigh) return 0;
    return reclaimActive ? Math.min(this.batch << 2, this.high) : this.high;
  }

  /** nr_pcp_free(): how many pages to give back; doubles while frees come without allocations. */
  private nrPcpFree(p: CpuLists, high: number, freeHigh: boolean): number {
    const batch = this.batch;
    if (freeHigh) return p.count;
    if (high < batch) return 1;
    const minFree = batch;
    const maxFree = high - batch;
    const scaled = batch << p.freeFactor;
    if (scaled < maxFree && p.freeFactor < PCP_BATCH_SCALE_MAX) p.freeFactor++;
    return Math.min(Math.max(scaled, minFree), maxFree);
  }

  /**
   * free_pcppages_bulk(): `count` pages back to the buddy lists, from the tails, starting with list `pindex` and
   * going round-robin; each block goes back as the migratetype it was freed as.
   */
  private freeBulk(zone: BuddyAllocator, p: CpuLists, count: number, pindex: number): void {
    let left = Math.min(p.count, count);
    let index = pindex - 1;
    while (left > 0) {
      let list: number[];
      do {
        index = index + 1 > PCP_LISTS - 1 ? 0 : index + 1;
        list = p.lists[index]!;
      } while (list.length === 0);
      const order = pindexToOrder(index);
      // From the tail (the array's start), as many as this list gives before `left` is used up: one splice.
      const taken = list.splice(0, Math.min(list.length, Math.ceil(left / (1 << order))));
      for (const i of taken) {
        left -= 1 << order;
        p.count -= 1 << order;
        zone.freeOne(i, order, zone.migratetype[i]!);
      }
    }
  }

  /** drain_pages_zone(): every page CPU `cpu` holds goes back to the zone. */
  drain(zone: BuddyAllocator, cpu: number): void {
    const p = this.cpus[cpu]!;
    if (p.count > 0) this.freeBulk(zone, p, p.count, 0);
  }

  /** drain_all_pages(zone). */
  drainAll(zone: BuddyAllocator): void {
    for (let cpu = 0; cpu < this.cpus.length; cpu++) this.drain(zone, cpu);
  }
}
