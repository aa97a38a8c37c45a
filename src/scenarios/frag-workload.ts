import type { Assembler } from '../cpu/assembler.ts';
import type { Prng } from '../machine/index.ts';
import { allocPages, allocPagesBatch, freePages } from '../mm/alloc-pages.ts';
import { GFP, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_TRANSHUGE } from '../mm/gfp.ts';
import { type Kernel, LOCK, OWNER } from '../mm/kernel.ts';
import type { KernelProgram } from '../mm/kernel-page-tables.ts';
import { PAGEBLOCK_ORDER } from '../mm/mmzone.ts';
import { dropLruPage, registerLruPage } from '../mm/page-cache.ts';
import { vfree, vmalloc, vmallocHuge } from '../mm/vmalloc.ts';
import { PAGE_SIZE } from '../mmu/address.ts';

// The fragmentation experiment's workloads (docs/frag.md), kernel programs on CPU0 while kswapd and kcompactd run
// on CPU1. The objects are the kernel's usual tenants:
// - page cache: files read a readahead window (32 pages, 128 KiB) at a time and truncated whole, their sizes
//   uniform around a mean chosen so that the reads pass through memory (1.2 times in stress-highalloc's fill, 1.5
//   times over thpchallenge's run); the pages are movable and reclaimable (kswapd and direct reclaim drop the oldest);
// - anonymous memory: 2 MiB regions faulted as a THP when an order-9 page can be had (GFP_TRANSHUGE, as for a
//   MADV_HUGEPAGE region), else as 512 base pages; movable, not reclaimable (no swap);
// - slab: UNMOVABLE kmalloc-like slabs of order 0-3 and RECLAIMABLE dentry/inode-like slabs of order 0, a share
//   of them long-lived;
// - vmalloc: 16 KiB VMAP stacks (THREAD_SIZE) that come and go with threads, module-like areas of 100 KiB to
//   2 MiB (log-uniform), and a few large tables of 2-8 MiB allocated first and kept, asked for with vmalloc_huge()
//   as alloc_large_system_hash() and similar callers do. In the `no-2m` variant every table is replaced by 1 MiB
//   areas of the same total size, so no area is 2 MiB or more.
// Every draw from the PRNG happens whatever the outcome of the previous operation, so a seed gives the same sequence
// of requests under every policy.

export type FragWorkload = 'stress-highalloc' | 'thpchallenge';
export const FRAG_WORKLOADS: readonly FragWorkload[] = ['stress-highalloc', 'thpchallenge'];
export type FragVariant = 'default' | 'no-2m';
export const FRAG_VARIANTS: readonly FragVariant[] = ['default', 'no-2m'];

/** vmalloc's share of memory the population aims at (a few percent: VmallocUsed in /proc/meminfo). */
export const VMALLOC_SHARE = 0.03;
const STACK_BYTES = 16 * 1024;
const MODULE_MIN = 100 * 1024;
const MODULE_MAX = 2 * 1024 * 1024;
/** Of vmalloc's share: large tables, module-like areas, and stacks (the rest). */
const TABLE_SHARE = 0.4;
const MODULE_SHARE = 0.4;
/** fork.c keeps NR_CACHED_STACKS freed stacks per CPU for the next fork. */
const NR_CACHED_STACKS = 2;
/** Unmovable and reclaimable slab stop growing at these shares of memory (their frees then dominate). */
const UNMOVABLE_SLAB_CAP = 0.04;
const RECLAIMABLE_SLAB_CAP = 0.06;
/** Anonymous memory stops growing at this share (no swap: it would otherwise fill memory). */
const ANON_CAP = 0.4;

interface Slab {
  readonly pfn: number;
  readonly order: number;
  readonly longLived: boolean;
}

/** Removes and returns element `pick % length` (the last one takes its place: O(1), still deterministic). */
export function takeAt<T>(list: T[], pick: number): T | undefined {
  if (list.length === 0) return undefined;
  const i = pick % list.length;
  const item = list[i]!;
  list[i] = list[list.length - 1]!;
  list.pop();
  return item;
}

/** What one run counted, per pass. */
export interface PassCounts {
  attempts: number;
  successes: number;
}

/** The workload's view of the objects it holds, and its counters. */
export class Population {
  readonly files: number[][] = [];
  readonly anon: { thp: number; pages: number[] }[] = [];
  /** Slab pages, UNMOVABLE and RECLAIMABLE. */
  readonly slabs: [Slab[], Slab[]] = [[], []];
  readonly stacks: number[] = [];
  readonly stackCache: number[] = [];
  readonly modules: number[] = [];
  readonly tables: number[] = [];
  readonly passes: PassCounts[] = [];
  nextId = 0;
  anonPages = 0;
  unmovableSlabPages = 0;
  reclaimableSlabPages = 0;
  vmallocNs = 0;
  /** The mean size of a file read, in pages (the workload sets it from memory and operations). */
  meanFilePages = 16;
  /** MOVABLE pageblocks holding unmovable pages, and those pages, when last sampled. */
  mixed = { blocks: 0, pages: 0 };

  constructor(
    readonly kernel: Kernel,
    readonly prng: Prng,
    readonly variant: FragVariant,
  ) {}

  get zonePages(): number {
    return this.kernel.zone.frames;
  }

  /** A uniform draw in [0, 1). */
  random(): number {
    return this.prng.nextU32() / 2 ** 32;
  }
}

/** vmalloc or vmalloc_huge, timed (RDTSC) for the experiment's cost column. */
function* timedVmalloc(x: Assembler, p: Population, bytes: number, huge: boolean): KernelProgram {
  const t0: number = yield x.rdtsc();
  const va = huge ? yield* vmallocHuge(x, p.kernel, bytes) : yield* vmalloc(x, p.kernel, bytes);
  p.vmallocNs += (yield x.rdtsc()) - t0;
  return va;
}

function* timedVfree(x: Assembler, p: Population, va: number): KernelProgram<void> {
  const t0: number = yield x.rdtsc();
  yield* vfree(x, p.kernel, va);
  p.vmallocNs += (yield x.rdtsc()) - t0;
}

/** A module-like size: log-uniform in [100 KiB, 2 MiB), rounded to pages. */
function moduleBytes(p: Population): number {
  const u = p.random();
  const bytes = MODULE_MIN * (MODULE_MAX / MODULE_MIN) ** u;
  return Math.min(MODULE_MAX - PAGE_SIZE, Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE);
}

/**
 * The vmalloc population at boot: large tables, then modules and thread stacks up to their shares. Tables are
 * 2, 4 or 8 MiB (vmalloc_huge()); in the no-2m variant each becomes 1 MiB areas of the same total.
 */
export function* vmallocBoot(x: Assembler, p: Population): KernelProgram<void> {
  const target = VMALLOC_SHARE * p.zonePages * PAGE_SIZE;
  let tables = 0;
  while (tables < TABLE_SHARE * target) {
    const bytes = (2 << p.prng.below(3)) * 1024 * 1024;
    tables += bytes;
    if (p.variant === 'no-2m') {
      for (let done = 0; done < bytes; done += 1 << 20) {
        const va = yield* timedVmalloc(x, p, 1 << 20, true);
        if (va !== 0) p.tables.push(va);
      }
    } else {
      const va = yield* timedVmalloc(x, p, bytes, true);
      if (va !== 0) p.tables.push(va);
    }
  }
  let modules = 0;
  while (modules < MODULE_SHARE * target) {
    const bytes = moduleBytes(p);
    modules += bytes;
    const va = yield* timedVmalloc(x, p, bytes, false);
    if (va !== 0) p.modules.push(va);
  }
  const stacks = Math.floor(((1 - TABLE_SHARE - MODULE_SHARE) * target) / STACK_BYTES);
  for (let i = 0; i < stacks; i++) yield* forkStack(x, p);
}

/** A thread is created: a stack from fork.c's cache, else a new VMAP stack. */
function* forkStack(x: Assembler, p: Population): KernelProgram<void> {
  const cached = p.stackCache.pop();
  if (cached !== undefined) {
    p.stacks.push(cached);
    return;
  }
  const va = yield* timedVmalloc(x, p, STACK_BYTES, false);
  if (va !== 0) p.stacks.push(va);
}

/** A thread exits: its stack goes to the cache, or is vfree()d when the cache is full. */
function* exitStack(x: Assembler, p: Population, pick: number): KernelProgram<void> {
  const va = takeAt(p.stacks, pick);
  if (va === undefined) return;
  if (p.stackCache.length < NR_CACHED_STACKS) p.stackCache.push(va);
  else yield* timedVfree(x, p, va);
}

/**
 * One vmalloc operation: mostly threads coming and going (a stack), sometimes a module unloaded and another loaded.
 */
export function* vmallocChurn(x: Assembler, p: Population): KernelProgram<void> {
  const r = p.prng.below(100);
  const pick = p.prng.nextU32();
  const bytes = moduleBytes(p);
  if (r < 90) {
    if (r < 45) yield* forkStack(x, p);
    else yield* exitStack(x, p, pick);
    return;
  }
  const old = takeAt(p.modules, pick);
  if (old !== undefined) yield* timedVfree(x, p, old);
  const va = yield* timedVmalloc(x, p, bytes, false);
  if (va !== 0) p.modules.push(va);
}

/** Pages read or dropped per step: a readahead window of 128 KiB, a truncate's batch. */
const BATCH = 32;

/**
 * A file of `pages` pages is read: page-cache pages (GFP_HIGHUSER_MOVABLE) a readahead window at a time, each put
 * on the LRU as it comes.
 */
export function* readFile(x: Assembler, p: Population, pages: number): KernelProgram<void> {
  const file: number[] = [];
  p.files.push(file);
  const kernel = p.kernel;
  for (let done = 0; done < pages; done += BATCH) {
    const base = p.nextId;
    const want = Math.min(BATCH, pages - done);
    p.nextId += want;
    const got = yield* allocPagesBatch(x, kernel, GFP_HIGHUSER_MOVABLE, want, OWNER.PAGE_CACHE, (pfn, n) => {
      registerLruPage(kernel, pfn, base + n, false);
      file.push(base + n);
    });
    if (got < want) return;
  }
}

/** Drops LRU pages by id, a batch per step (truncate_inode_pages(), zap_pte_range()). */
function* dropPages(x: Assembler, p: Population, ids: readonly number[], anon: boolean): KernelProgram<void> {
  const cpu = x.cpuId;
  for (let i = 0; i < ids.length; i += BATCH) {
    yield x.atomic(LOCK.ZONE, () => {
      for (let k = i; k < Math.min(i + BATCH, ids.length); k++) dropLruPage(p.kernel, cpu, ids[k]!, anon);
      return 0;
    });
  }
}

/** A file is truncated: its pages still in the page cache are freed. */
export function* truncateFile(x: Assembler, p: Population, pick: number): KernelProgram<void> {
  const file = takeAt(p.files, pick);
  if (file !== undefined) yield* dropPages(x, p, file, false);
}

/** A slab page of `order`: UNMOVABLE (kmalloc-like) or RECLAIMABLE (dentry/inode-like). */
export function* slabAlloc(
  x: Assembler,
  p: Population,
  order: number,
  reclaimable: boolean,
  longLived: boolean,
): KernelProgram<void> {
  const gfp = reclaimable ? GFP_KERNEL | GFP.RECLAIMABLE : GFP_KERNEL;
  const owner = reclaimable ? OWNER.SLAB_RECLAIMABLE : OWNER.SLAB;
  const pfn = yield* allocPages(x, p.kernel, gfp, order, owner);
  if (pfn < 0) return;
  p.slabs[reclaimable ? 1 : 0].push({ pfn, order, longLived });
  if (reclaimable) p.reclaimableSlabPages += 1 << order;
  else p.unmovableSlabPages += 1 << order;
}

/**
 * A slab page of the given kind is freed: a random one, except that a long-lived one goes only one time in five
 * it is picked (`keep` is the draw for that).
 */
export function* slabFree(
  x: Assembler,
  p: Population,
  reclaimable: boolean,
  pick: number,
  keep: number,
): KernelProgram<void> {
  const list = p.slabs[reclaimable ? 1 : 0];
  if (list.length === 0) return;
  if (list[pick % list.length]!.longLived && keep % 5 !== 0) return;
  const slab = takeAt(list, pick)!;
  if (reclaimable) p.reclaimableSlabPages -= 1 << slab.order;
  else p.unmovableSlabPages -= 1 << slab.order;
  yield* freePages(x, p.kernel, slab.pfn, slab.order);
}

/** Whether a new slab page of the kind would exceed its cap (the operation becomes a free). */
export function slabFull(p: Population, reclaimable: boolean): boolean {
  return reclaimable
    ? p.reclaimableSlabPages > RECLAIMABLE_SLAB_CAP * p.zonePages
    : p.unmovableSlabPages > UNMOVABLE_SLAB_CAP * p.zonePages;
}

/**
 * An anonymous 2 MiB region is faulted: a THP (GFP_TRANSHUGE: direct compaction, one round) or, failing that,
 * 512 base pages. Returns whether the THP was had.
 */
export function* anonFault(x: Assembler, p: Population): KernelProgram<boolean> {
  const kernel = p.kernel;
  const thp = yield* allocPages(x, kernel, GFP_TRANSHUGE, PAGEBLOCK_ORDER, OWNER.ANON);
  p.anonPages += 1 << PAGEBLOCK_ORDER;
  if (thp >= 0) {
    p.anon.push({ thp, pages: [] });
    return true;
  }
  const pages: number[] = [];
  const base = p.nextId;
  p.nextId += 1 << PAGEBLOCK_ORDER;
  yield* allocPagesBatch(x, kernel, GFP_HIGHUSER_MOVABLE, 1 << PAGEBLOCK_ORDER, OWNER.ANON, (pfn, n) => {
    registerLruPage(kernel, pfn, base + n, true);
    pages.push(base + n);
  });
  p.anon.push({ thp: -1, pages });
  return false;
}

/** An anonymous region is unmapped. */
export function* anonUnmap(x: Assembler, p: Population, pick: number): KernelProgram<void> {
  const region = takeAt(p.anon, pick);
  if (region === undefined) return;
  p.anonPages -= 1 << PAGEBLOCK_ORDER;
  if (region.thp >= 0) {
    yield* freePages(x, p.kernel, region.thp, PAGEBLOCK_ORDER);
    return;
  }
  yield* dropPages(x, p, region.pages, true);
}

/** Whether anonymous memory is at its cap. */
export function anonFull(p: Population): boolean {
  return p.anonPages > ANON_CAP * p.zonePages;
}

/** A file size: uniform in 1 .. 2 x the workload's mean, so that reads fill memory at the rate it wants. */
export function filePages(p: Population): number {
  return 1 + p.prng.below(Math.max(1, 2 * p.meanFilePages));
}
