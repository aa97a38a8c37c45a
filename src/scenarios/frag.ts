import type { Assembler } from '../cpu/assembler.ts';
import { Machine, Prng } from '../machine/index.ts';
import { allocPages, freePages } from '../mm/alloc-pages.ts';
import { GFP, GFP_HIGHUSER_MOVABLE } from '../mm/gfp.ts';
import { type Kernel, LOCK, OWNER, type VmallocPolicy } from '../mm/kernel.ts';
import type { KernelProgram } from '../mm/kernel-page-tables.ts';
import { kthreads, stopKthreads } from '../mm/kthreads.ts';
import { MIGRATETYPE, PAGEBLOCK_ORDER } from '../mm/mmzone.ts';
import { InputError, requireInteger, requireOneOf, requireOptions } from '../mmu/input-error.ts';
import {
  anonFault,
  anonFull,
  anonUnmap,
  FRAG_VARIANTS,
  FRAG_WORKLOADS,
  type FragVariant,
  type FragWorkload,
  filePages,
  type PassCounts,
  Population,
  readFile,
  slabAlloc,
  slabFree,
  slabFull,
  truncateFile,
  vmallocBoot,
  vmallocChurn,
} from './frag-workload.ts';

// One run of the fragmentation experiment (docs/frag.md): a machine of `memory` MiB with the kernel under one
// vmalloc policy, the workload on CPU0 and kswapd/kcompactd on CPU1, on the timed schedule so that everything has
// a cost in simulated time. Two workloads, after mmtests:
// - stress-highalloc: fill memory with page cache and slab while vmalloc churns (reads of 1.2 times memory), then
//   three passes that try to
//   allocate 90% of memory as order-9 pages (the highalloc module's hugetlb-like mask, GFP_HIGHUSER_MOVABLE |
//   __GFP_RETRY_MAYFAIL), the first two under continuing load, the last at rest; each pass keeps what it got
//   until its end;
// - thpchallenge: page cache, anonymous 2 MiB regions faulted as THPs (GFP_TRANSHUGE) or base pages, and
//   unmovable slab churn, interleaved; its three "passes" are the thirds of the run.
// Both reuse the same population model (frag-workload.ts). frag-experiment.ts runs the seeds and policies.

export type FragPolicy = VmallocPolicy;
export const FRAG_POLICIES: readonly FragPolicy[] = ['order0', 'high-order', 'huge', 'high-order+migratable'];
export { FRAG_VARIANTS, FRAG_WORKLOADS, type FragVariant, type FragWorkload };

/** The order-9 request of stress-highalloc's passes: hugetlb-like (__GFP_REPEAT became __GFP_RETRY_MAYFAIL). */
export const HIGHALLOC_GFP = GFP_HIGHUSER_MOVABLE | GFP.RETRY_MAYFAIL | GFP.NOWARN;
/** stress-highalloc's passes try to allocate this share of memory as order-9 pages. */
export const HIGHALLOC_SHARE = 0.9;

export interface FragRunOptions {
  readonly workload: FragWorkload;
  readonly policy: FragPolicy;
  readonly variant: FragVariant;
  readonly seed: number;
  /** Machine memory in MiB (the zone is all but the 8 MiB boot reserve). */
  readonly memory: number;
  /** Workload operations (file reads, slab allocations and frees, faults, vmalloc churn). */
  readonly operations: number;
}

export interface FragRunResult extends FragRunOptions {
  /** Order-9 attempts and successes in each of the three passes. */
  readonly passes: readonly PassCounts[];
  /** mm_page_alloc_extfrag events, and those that split a pageblock (fragmenting=1). */
  readonly extfrag: { readonly events: number; readonly fragmenting: number };
  /** MOVABLE pageblocks holding unmovable pages, and those pages, at the end of the last pass. */
  readonly mixedBlocks: number;
  readonly unmovableInMovable: number;
  readonly compaction: {
    readonly migrateScanned: number;
    readonly freeScanned: number;
    readonly migrated: number;
    readonly stalls: number;
    readonly successes: number;
    readonly failures: number;
    readonly kcompactdWakes: number;
  };
  readonly reclaim: { readonly kswapd: number; readonly direct: number };
  readonly vmalloc: {
    readonly calls: number;
    readonly failures: number;
    readonly pageAllocs: number;
    readonly highOrderFailures: number;
    readonly hugeFallbacks: number;
    readonly purges: number;
    /** Simulated nanoseconds in vmalloc and vfree. */
    readonly ns: number;
    /** vmalloc's pages at the end, and as a share of the zone. */
    readonly pages: number;
    readonly share: number;
    /** The largest live area at the end (bytes), and how many areas are mapped with 2 MiB pages. */
    readonly largestArea: number;
    readonly hugeAreas: number;
  };
  readonly ipis: number;
  /** Simulated nanoseconds the workload took on CPU0. */
  readonly workloadNs: number;
  /** Machine steps the run took (both CPUs). */
  readonly steps: number;
}

/** MOVABLE pageblocks holding at least one allocated page that is not movable, and how many such pages. */
function mixedPageblocks(kernel: Kernel): { blocks: number; pages: number } {
  const zone = kernel.zone;
  let blocks = 0;
  let pages = 0;
  for (let b = 0; b < zone.pageblockType.length; b++) {
    if (zone.pageblockType[b] !== MIGRATETYPE.MOVABLE) continue;
    let here = 0;
    const end = Math.min((b + 1) << PAGEBLOCK_ORDER, zone.frames);
    for (let i = b << PAGEBLOCK_ORDER; i < end; i++) {
      const owner = zone.owner[i]!;
      if (owner >= 0 && owner !== OWNER.COMPACTION && !zone.isMovableFrame(i)) here++;
    }
    if (here > 0) blocks++;
    pages += here;
  }
  return { blocks, pages };
}

/** One background operation of stress-highalloc: the draws first, then the operation. */
function* highallocLoad(x: Assembler, p: Population): KernelProgram<void> {
  const r = p.prng.below(100);
  const pick = p.prng.nextU32();
  const keep = p.prng.nextU32();
  const size = filePages(p);
  const order = [0, 0, 0, 0, 0, 0, 0, 1, 2, 3][p.prng.below(10)]!;
  const longLived = p.prng.below(10) < 3;
  if (r < 35) yield* readFile(x, p, size);
  else if (r < 45) yield* truncateFile(x, p, pick);
  else if (r < 60) {
    if (slabFull(p, true)) yield* slabFree(x, p, true, pick, keep);
    else yield* slabAlloc(x, p, 0, true, longLived);
  } else if (r < 70) yield* slabFree(x, p, true, pick, keep);
  else if (r < 80) {
    if (slabFull(p, false)) yield* slabFree(x, p, false, pick, keep);
    else yield* slabAlloc(x, p, order, false, longLived);
  } else if (r < 88) yield* slabFree(x, p, false, pick, keep);
  else yield* vmallocChurn(x, p);
}

/** One operation of thpchallenge. */
function* thpLoad(x: Assembler, p: Population, pass: PassCounts): KernelProgram<void> {
  const r = p.prng.below(100);
  const pick = p.prng.nextU32();
  const keep = p.prng.nextU32();
  const size = filePages(p);
  const order = p.prng.below(4) === 0 ? 1 : 0;
  const longLived = p.prng.below(10) < 3;
  if (r < 30) yield* readFile(x, p, size);
  else if (r < 38) yield* truncateFile(x, p, pick);
  else if (r < 50) {
    if (anonFull(p)) yield* anonUnmap(x, p, pick);
    else {
      pass.attempts++;
      if (yield* anonFault(x, p)) pass.successes++;
    }
  } else if (r < 58) yield* anonUnmap(x, p, pick);
  else if (r < 75) {
    if (slabFull(p, false)) yield* slabFree(x, p, false, pick, keep);
    else yield* slabAlloc(x, p, order, false, longLived);
  } else if (r < 85) yield* slabFree(x, p, false, pick, keep);
  else if (r < 92) {
    if (slabFull(p, true) || keep % 2 === 0) yield* slabFree(x, p, true, pick, keep);
    else yield* slabAlloc(x, p, 0, true, longLived);
  } else yield* vmallocChurn(x, p);
}

function* stressHighalloc(x: Assembler, p: Population, operations: number): KernelProgram<void> {
  // Two thirds of the operations fill memory (their reads come to 1.2 times memory: memory is full and kswapd
  // reclaiming), a sixth goes on under each of the first two passes (0.3 times memory read in each).
  const fill = Math.floor((2 * operations) / 3);
  const during = Math.floor(operations / 6);
  p.meanFilePages = Math.max(1, Math.round((1.2 * p.zonePages) / Math.max(1, 0.35 * fill)));
  for (let i = 0; i < fill; i++) yield* highallocLoad(x, p);
  const attempts = Math.max(1, Math.round((HIGHALLOC_SHARE * p.zonePages) / (1 << PAGEBLOCK_ORDER)));
  for (const load of [during, during, 0]) {
    const pass: PassCounts = { attempts: 0, successes: 0 };
    p.passes.push(pass);
    const held: number[] = [];
    let done = 0;
    for (let a = 0; a < attempts; a++) {
      // The load continues between attempts, spread evenly over the pass.
      const until = Math.floor(((a + 1) * load) / attempts);
      for (; done < until; done++) yield* highallocLoad(x, p);
      pass.attempts++;
      const pfn = yield* allocPages(x, p.kernel, HIGHALLOC_GFP, PAGEBLOCK_ORDER, OWNER.OTHER);
      if (pfn >= 0) {
        pass.successes++;
        held.push(pfn);
      }
    }
    for (const pfn of held) yield* freePages(x, p.kernel, pfn, PAGEBLOCK_ORDER);
    if (load === 0) p.mixed = yield* sampleMixed(x, p.kernel);
  }
}

function* thpchallenge(x: Assembler, p: Population, operations: number): KernelProgram<void> {
  // The run reads 1.5 times memory in files (30% of its operations are reads).
  p.meanFilePages = Math.max(1, Math.round((1.5 * p.zonePages) / Math.max(1, 0.3 * operations)));
  for (let third = 0; third < 3; third++) {
    const pass: PassCounts = { attempts: 0, successes: 0 };
    p.passes.push(pass);
    const ops = Math.floor(operations / 3) + (third < operations % 3 ? 1 : 0);
    for (let i = 0; i < ops; i++) yield* thpLoad(x, p, pass);
  }
  p.mixed = yield* sampleMixed(x, p.kernel);
}

/** Checks a run's options (before anything is built). */
export function checkRunOptions(options: FragRunOptions): FragRunOptions {
  const o = requireOptions<FragRunOptions>(options, 'frag run options', [
    'workload',
    'policy',
    'variant',
    'seed',
    'memory',
    'operations',
  ]);
  return {
    workload: requireOneOf(o.workload, 'frag workload', FRAG_WORKLOADS),
    policy: requireOneOf(o.policy, 'frag policy', FRAG_POLICIES),
    variant: requireOneOf(o.variant, 'frag variant', FRAG_VARIANTS),
    seed: requireInteger(o.seed, 'frag seed', 0, 2 ** 32 - 1),
    memory: requireFragMemory(o.memory),
    operations: requireInteger(o.operations, 'frag operations', 1, 10_000_000),
  };
}

/** Memory for the experiment: 64 MiB .. 4 GiB (the model's zone ends at 4 GiB), a whole number of MiB. */
export function requireFragMemory(memory: unknown): number {
  const m = requireInteger(memory, 'frag memory (MiB)', 64, 4096);
  if (m % 4 !== 0) throw new InputError(`frag memory ${m} MiB must be a multiple of 4 MiB (whole buddy blocks)`);
  return m;
}

/** One run: the machine, the workload, the counters. */
export function runFrag(options: FragRunOptions): FragRunResult {
  const o = checkRunOptions(options);
  const m = Machine.create({
    cpus: 2,
    trace: false,
    memory: o.memory * 1024 * 1024,
    kernel: { vmalloc: o.policy },
    ipiDelivery: 'scheduled',
  });
  const kernel = m.kernel!;
  kernel.timing = false;
  const p = new Population(kernel, new Prng(o.seed), o.variant);
  m.load(0, function* workload(x: Assembler) {
    yield x.sti();
    yield* vmallocBoot(x, p);
    if (o.workload === 'stress-highalloc') yield* stressHighalloc(x, p, o.operations);
    else yield* thpchallenge(x, p, o.operations);
    yield* stopKthreads(x, kernel);
  });
  m.load(1, function* daemons(x: Assembler) {
    yield* kthreads(x, kernel);
  });
  const result = m.run({ schedule: 'timed', maxSteps: 2_000_000_000 });
  if (result.outcome !== 'ok') {
    throw new Error(
      `frag ${o.workload}/${o.policy}: the run ended in ${result.outcome}: ${result.stop?.message ?? ''}`,
    );
  }
  const v = kernel.pages.vmstat;
  const s = kernel.vmallocStats;
  const live = kernel.vmap.list.filter((a) => !a.lazy);
  return {
    ...o,
    passes: p.passes,
    extfrag: { events: kernel.zone.extfrag.events, fragmenting: kernel.zone.extfrag.fragmenting },
    mixedBlocks: p.mixed.blocks,
    unmovableInMovable: p.mixed.pages,
    compaction: {
      migrateScanned: v.compactMigrateScanned,
      freeScanned: v.compactFreeScanned,
      migrated: v.compactMigrated,
      stalls: v.compactstall,
      successes: v.compactsuccess,
      failures: v.compactfail,
      kcompactdWakes: v.kcompactdWake,
    },
    reclaim: { kswapd: v.pgstealKswapd, direct: v.pgstealDirect },
    vmalloc: {
      calls: s.calls,
      failures: s.failures,
      pageAllocs: s.pageAllocs,
      highOrderFailures: s.highOrderFailures,
      hugeFallbacks: s.hugeFallbacks,
      purges: kernel.vmapPurges,
      ns: p.vmallocNs,
      pages: s.pages,
      share: s.pages / kernel.zone.frames,
      largestArea: Math.max(0, ...live.map((a) => a.size)),
      hugeAreas: live.filter((a) => a.huge).length,
    },
    ipis: m.ipiBus.sentCount,
    workloadNs: m.clocks[0]!,
    steps: result.steps,
  };
}

/** The mixed-pageblock scan, as a step of the program (it reads the zone's bookkeeping). */
function* sampleMixed(x: Assembler, kernel: Kernel): KernelProgram<{ blocks: number; pages: number }> {
  let r = { blocks: 0, pages: 0 };
  yield x.atomic(LOCK.ZONE, () => {
    r = mixedPageblocks(kernel);
    return 0;
  });
  return r;
}
