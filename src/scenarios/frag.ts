import type { Assembler } from '../cpu/assembler.ts';
import { Machine, Prng } from '../machine/index.ts';
import { MAX_ORDER, MIGRATETYPE, type Migratetype } from '../mm/buddy.ts';
import { allocWithCompaction } from '../mm/compaction.ts';
import { LOCK, OWNER, type VmallocPolicy } from '../mm/kernel.ts';
import type { KernelProgram } from '../mm/kernel-page-tables.ts';
import { addPageCachePage, removePageCachePage } from '../mm/page-cache.ts';
import { vfree, vmalloc } from '../mm/vmalloc.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { InputError, requireInteger, requireOptions } from '../mmu/input-error.ts';

// The fragmentation experiment (`x86slice frag`; docs/frag.md): one seeded workload of vmalloc of several sizes,
// page-cache-like MOVABLE pages and UNMOVABLE slab-like pages, long- and short-lived, with periodic order-3 and
// order-9 allocation attempts, run under four policies. The workload is a kernel program on CPU0 (CPU1 idles and
// takes the flush IPIs), on the timed schedule, so migrations cost simulated nanoseconds.

export type FragPolicy = 'order0' | 'high-order' | 'huge' | 'high-order+compaction';
export const FRAG_POLICIES: readonly FragPolicy[] = ['order0', 'high-order', 'huge', 'high-order+compaction'];

export interface FragOptions {
  readonly seed?: number;
  /** Machine memory in MiB (the zone is all but the 8 MiB boot reserve). Default 64. */
  readonly memory?: number;
  /** Workload operations. Default 3000. */
  readonly operations?: number;
  /** Called after each policy's run, for a progress bar. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface FragSample {
  /** Operations done when the sample was taken. */
  readonly operation: number;
  /** Free blocks per order, 0..MAX_ORDER. */
  readonly free: readonly number[];
}

export interface FragResult {
  readonly policy: FragPolicy;
  readonly order3: { readonly attempts: number; readonly successes: number };
  readonly order9: { readonly attempts: number; readonly successes: number };
  /** Fragmentation index per order at the end (x1000; -1000: a block that large is free). */
  readonly fragmentationIndex: readonly number[];
  /** Free blocks per order at the end. */
  readonly freeBlocks: readonly number[];
  readonly pagesMigrated: number;
  readonly vmallocPagesMigrated: number;
  readonly ipisSent: number;
  /** Simulated nanoseconds spent moving pages (the cost model). */
  readonly migrateNs: number;
  /** Simulated nanoseconds the whole workload took on CPU0. */
  readonly workloadNs: number;
  readonly series: readonly FragSample[];
}

/** vmalloc sizes the workload asks for, in pages, with their weights. */
const VMALLOC_PAGES = [1, 1, 1, 2, 2, 4, 4, 16, 16, 64, 512] as const;
const SAMPLE_EVERY = 50;

interface Live {
  readonly kind: 'vmalloc' | 'cache' | 'slab';
  /** vmalloc address, page-cache id, or slab pfn. */
  readonly handle: number;
  readonly order: number;
  readonly longLived: boolean;
}

/** One policy's run of the workload. */
export function runFragPolicy(policy: FragPolicy, seed: number, memoryMiB: number, operations: number): FragResult {
  const vmallocPolicy: VmallocPolicy = policy === 'high-order+compaction' ? 'high-order' : policy;
  const compaction = policy === 'high-order+compaction';
  const m = Machine.create({
    cpus: 2,
    trace: false,
    memory: memoryMiB * 1024 * 1024,
    kernel: { vmalloc: vmallocPolicy },
    ipiDelivery: 'scheduled',
  });
  const kernel = m.kernel!;
  kernel.timing = true;
  const zone = kernel.zone;
  const prng = new Prng(seed);
  const live: Live[] = [];
  const series: FragSample[] = [];
  const stats = { o3: 0, o3ok: 0, o9: 0, o9ok: 0, moved: 0, movedVmalloc: 0, migrateNs: 0, ids: 0 };
  const sample = (operation: number) => series.push({ operation, free: zone.buddyinfo().free });

  /** A high-order attempt: with compaction, a failure compacts the zone and tries once more. */
  function* attempt(x: Assembler, order: number, type: Migratetype): KernelProgram<boolean> {
    let pfn: number;
    if (compaction) {
      const got = yield* allocWithCompaction(x, kernel, order, type, OWNER.OTHER, { protocol: 'migration-entry' });
      pfn = got.pfn;
      if (got.compaction) {
        stats.moved += got.compaction.moved;
        stats.movedVmalloc += got.compaction.movedVmalloc;
        stats.migrateNs += got.compaction.migrateNs;
      }
    } else pfn = yield x.atomic(LOCK.ZONE, () => zone.alloc(order, type, OWNER.OTHER));
    if (pfn < 0) return false;
    const got = pfn;
    yield x.atomic(LOCK.ZONE, () => {
      zone.freeBlock(got, order);
      return 0;
    });
    return true;
  }

  function* release(x: Assembler, a: Live): KernelProgram<void> {
    if (a.kind === 'vmalloc') {
      yield* vfree(x, kernel, a.handle);
      return;
    }
    yield x.atomic(LOCK.ZONE, () => {
      if (a.kind === 'cache') removePageCachePage(kernel, a.handle);
      else zone.freeBlock(a.handle, a.order);
      return 0;
    });
  }

  m.load(0, function* workload(x: Assembler) {
    yield x.sti();
    sample(0);
    for (let op = 1; op <= operations; op++) {
      const pressure = (yield x.atomic(LOCK.ZONE, () => (zone.freePages < zone.frames / 8 ? 1 : 0))) === 1;
      const r = pressure ? 60 + prng.below(35) : prng.below(100);
      const longLived = prng.below(10) < 3;
      if (r < 25) {
        const pages = VMALLOC_PAGES[prng.below(VMALLOC_PAGES.length)]!;
        const va = yield* vmalloc(x, kernel, pages * PAGE_SIZE);
        if (va !== 0) live.push({ kind: 'vmalloc', handle: va, order: 0, longLived });
      } else if (r < 50) {
        const id = stats.ids++;
        const pfn: number = yield x.atomic(LOCK.ZONE, () => addPageCachePage(kernel, id));
        if (pfn >= 0) live.push({ kind: 'cache', handle: id, order: 0, longLived });
      } else if (r < 60) {
        const order = prng.below(4) === 0 ? 1 : 0;
        const pfn: number = yield x.atomic(LOCK.ZONE, () => zone.alloc(order, MIGRATETYPE.UNMOVABLE, OWNER.SLAB));
        if (pfn >= 0) live.push({ kind: 'slab', handle: pfn, order, longLived });
      } else if (r < 95) {
        if (live.length === 0) continue;
        // Short-lived allocations go first: a long-lived one is freed only one time in five it is picked.
        const i = prng.below(live.length);
        const a = live[i]!;
        if (a.longLived && prng.below(5) !== 0 && !pressure) continue;
        live.splice(i, 1);
        yield* release(x, a);
      } else {
        stats.o3++;
        if (yield* attempt(x, 3, MIGRATETYPE.UNMOVABLE)) stats.o3ok++;
        stats.o9++;
        if (yield* attempt(x, 9, MIGRATETYPE.MOVABLE)) stats.o9ok++;
      }
      if (op % SAMPLE_EVERY === 0) sample(op);
    }
  });
  m.load(1, function* idle(x: Assembler) {
    yield x.sti();
  });
  const result = m.run({ schedule: 'timed', maxSteps: 50_000_000 });
  if (result.outcome !== 'ok') {
    throw new Error(`frag ${policy}: the workload ended in ${result.outcome}: ${result.stop?.message ?? ''}`);
  }
  const info = zone.buddyinfo();
  return {
    policy,
    order3: { attempts: stats.o3, successes: stats.o3ok },
    order9: { attempts: stats.o9, successes: stats.o9ok },
    fragmentationIndex: Array.from({ length: MAX_ORDER + 1 }, (_, o) => zone.fragmentationIndex(o)),
    freeBlocks: info.free,
    pagesMigrated: stats.moved,
    vmallocPagesMigrated: stats.movedVmalloc,
    ipisSent: m.ipiBus.sentCount,
    migrateNs: stats.migrateNs,
    workloadNs: m.clocks[0]!,
    series,
  };
}

/** The whole experiment: every policy on the same seeded workload. */
export function runFragExperiment(options: FragOptions = {}): readonly FragResult[] {
  const o = requireOptions<FragOptions>(options, 'frag options', ['seed', 'memory', 'operations', 'onProgress']);
  const seed = o.seed === undefined ? 1 : requireInteger(o.seed, 'frag seed', 0, 2 ** 32 - 1);
  const memory = o.memory === undefined ? 64 : requireInteger(o.memory, 'frag memory (MiB)', 16, 4096);
  const operations = o.operations === undefined ? 3000 : requireInteger(o.operations, 'frag operations', 1, 1_000_000);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
    throw new InputError('frag onProgress must be a function (done, total) => void');
  }
  const results: FragResult[] = [];
  for (const policy of FRAG_POLICIES) {
    results.push(runFragPolicy(policy, seed, memory, operations));
    o.onProgress?.(results.length, FRAG_POLICIES.length);
  }
  return results;
}
