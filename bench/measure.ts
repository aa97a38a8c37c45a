// One benchmark case, run by bench/run.ts in a fresh node process (`node --import tsx bench/measure.ts '<json>'`)
// so that no case inherits JIT feedback from another (the same reason JMH forks a JVM per benchmark): a step
// compiled after loads, stores and pushes all ran is a different piece of machine code from one that saw only
// loads. The `mixed` case measures that polymorphic code on purpose. Prints one JSON line.

import { CR0, EFER } from '../src/cpu/registers.ts';
import { Machine } from '../src/machine/machine.ts';
import { MIGRATETYPE } from '../src/mm/buddy.ts';
import { vfree, vmalloc } from '../src/mm/vmalloc.ts';
import { LAYOUT, PAGE_SIZE } from '../src/mmu/address.ts';
import { ACCESS, WalkResult, walkPageTables } from '../src/mmu/walker.ts';
import { bestOf, nowNs, timeChunks, tlbCounters } from './harness.ts';
import { cycleLoads, type HitKind, hitProgram, mapDataPages, mapPages } from './programs.ts';

export const CHUNK = 100_000;
/** Timed chunks per case: hit cases tracing off, tracing on, and miss cases. */
export const HIT_CHUNKS = 40;
export const TRACE_CHUNKS = 15;
export const MISS_CHUNKS = 10;
/** Warm-up before timing: the TLBs fill and V8 optimises the step. */
const WARMUP_CHUNKS = 5;
export const MISS_PAGES = 64;
export const MISS_TLB = { entries: 4, ways: 4 } as const;
export const WALK_CALLS = 500_000;
const WALK_REPEATS = 5;

export type BenchCase =
  | { readonly type: 'hit'; readonly kind: HitKind; readonly cpus: number; readonly trace: boolean }
  | { readonly type: 'miss'; readonly layout: 'dense' | 'sparse' }
  | { readonly type: 'create'; readonly memory: number }
  | { readonly type: 'kernel' };

export interface HitResult {
  readonly kind: HitKind;
  readonly cpus: number;
  readonly trace: boolean;
  readonly steps: number;
  /** ns per instruction of the median chunk, and of the fastest. */
  readonly nsPerStep: number;
  readonly bestNsPerStep: number;
  readonly hitRatio: number;
}

export interface MissResult {
  readonly layout: 'dense' | 'sparse';
  readonly hitNsPerLoad: number;
  readonly missNsPerLoad: number;
  readonly missRatio: number;
  readonly hitRatio: number;
  /** missNsPerLoad - hitNsPerLoad: the added cost of a miss, its 4-level walk and the TLB fill. */
  readonly missCostNs: number;
  /** walkPageTables() alone, called directly on the same pages (best of several runs). */
  readonly walkNs: number;
}

export interface CreateResult {
  readonly memory: number;
  /** Machine.create({ cpus: 4, memory, trace: false }): median and fastest of CREATE_REPEATS, in microseconds. */
  readonly medianUs: number;
  readonly bestUs: number;
}

/** Machines created per memory size (after as many warm-up creations). */
export const CREATE_REPEATS = 40;

/** Booting a machine: the direct map is the part that grows with memory (1 GiB pages keep it small). */
function measureCreate(memory: number): CreateResult {
  const time = (): number => {
    const start = nowNs();
    Machine.create({ cpus: 4, memory, trace: false });
    return (nowNs() - start) / 1000;
  };
  for (let i = 0; i < CREATE_REPEATS; i++) time();
  const times = Array.from({ length: CREATE_REPEATS }, time).sort((a, b) => a - b);
  return { memory, medianUs: times[times.length >> 1]!, bestUs: times[0]! };
}

export interface KernelResult {
  /** Buddy order-0 alloc+free pairs per second: raw calls, and as two atomic steps of a program. */
  readonly buddyRawPairsPerSecond: number;
  readonly buddyStepPairsPerSecond: number;
  /** vmalloc(16 KiB) + vfree pairs per second, as programs, and the steps one pair takes. */
  readonly vmallocPairsPerSecond: number;
  readonly vmallocStepsPerPair: number;
  /** MachineImage.instantiate() of a booted 4-CPU 256 MiB kernel machine, microseconds (median, best). */
  readonly instantiateUs: number;
  readonly instantiateBestUs: number;
}

/** The kernel layer's costs (issue 7's bench items). */
function measureKernel(): KernelResult {
  const zone = Machine.create({ cpus: 1, trace: false, kernel: {} }).kernel!.zone;
  const RAW = 2_000_000;
  for (let i = 0; i < RAW / 10; i++) zone.freeBlock(zone.alloc(0, MIGRATETYPE.MOVABLE), 0);
  let start = nowNs();
  for (let i = 0; i < RAW; i++) zone.freeBlock(zone.alloc(0, MIGRATETYPE.MOVABLE), 0);
  const buddyRawPairsPerSecond = RAW / ((nowNs() - start) / 1e9);

  const stepped = Machine.create({ cpus: 1, trace: false, kernel: {} });
  const k = stepped.kernel!;
  stepped.load(0, function* (x) {
    for (;;) {
      const pfn = yield x.atomic('zone', () => k.zone.alloc(0, MIGRATETYPE.MOVABLE));
      yield x.atomic('zone', () => {
        k.zone.freeBlock(pfn, 0);
        return 0;
      });
    }
  });
  stepped.run({ maxSteps: 200_000 });
  start = nowNs();
  stepped.run({ maxSteps: 1_000_000 });
  const buddyStepPairsPerSecond = 500_000 / ((nowNs() - start) / 1e9);

  const vm = Machine.create({ cpus: 1, trace: false, kernel: {} });
  let pairs = 0;
  vm.load(0, function* (x) {
    for (;;) {
      const va = yield* vmalloc(x, vm.kernel!, 16 * 1024);
      yield* vfree(x, vm.kernel!, va);
      pairs++;
    }
  });
  vm.run({ maxSteps: 100_000 });
  pairs = 0;
  start = nowNs();
  vm.run({ maxSteps: 1_000_000 });
  const vmallocPairsPerSecond = pairs / ((nowNs() - start) / 1e9);

  // Image instantiation is timed apart, in a plain node process (bench/instantiate.mjs).
  return {
    buddyRawPairsPerSecond,
    buddyStepPairsPerSecond,
    vmallocPairsPerSecond,
    vmallocStepsPerPair: 1_000_000 / pairs,
    instantiateUs: Number.NaN,
    instantiateBestUs: Number.NaN,
  };
}

function measureHit(kind: HitKind, cpus: number, trace: boolean): HitResult {
  const m = Machine.create({ cpus, trace });
  const program = hitProgram(kind, mapDataPages(m, cpus));
  for (let id = 0; id < cpus; id++) m.load(id, program);
  for (let c = 0; c < WARMUP_CHUNKS; c++) m.run({ maxSteps: CHUNK });
  m.clearTrace();
  const before = tlbCounters(m);
  const times = timeChunks(m, trace ? TRACE_CHUNKS : HIT_CHUNKS, CHUNK);
  const after = tlbCounters(m);
  const hits = after.hits - before.hits;
  const misses = after.misses - before.misses;
  return {
    kind,
    cpus,
    trace,
    steps: times.steps,
    nsPerStep: times.medianNs,
    bestNsPerStep: times.bestNs,
    hitRatio: hits / (hits + misses),
  };
}

/** Loads cycling over `pages`, one CPU, tracing off, the small TLB: ns per load (median chunk), miss ratio. */
function timeCycle(pages: readonly number[], m: Machine): { nsPerLoad: number; missRatio: number } {
  m.load(0, cycleLoads(pages));
  for (let c = 0; c < WARMUP_CHUNKS; c++) m.run({ maxSteps: CHUNK });
  const before = tlbCounters(m);
  const times = timeChunks(m, MISS_CHUNKS, CHUNK);
  const after = tlbCounters(m);
  const misses = after.misses - before.misses;
  const total = misses + after.hits - before.hits;
  return { nsPerLoad: times.medianNs, missRatio: misses / total };
}

function measureMiss(layout: MissResult['layout']): MissResult {
  // dense: consecutive pages under one page table; sparse: one page per 2 MiB region, so each walk reads a
  // different PT page (and the frame cache of PhysicalMemory sees more distinct frames).
  const stride = layout === 'dense' ? PAGE_SIZE : 2 * 1024 * 1024 + PAGE_SIZE;
  const base = LAYOUT.vmallocStart + 0x4000_0000 + (layout === 'dense' ? 0 : 0x1000_0000);
  const missMachine = Machine.create({ cpus: 1, trace: false, tlb: MISS_TLB });
  const pages = mapPages(missMachine, base, stride, MISS_PAGES);
  const miss = timeCycle(pages, missMachine);
  // Same program and TLB over only as many pages as the TLB holds: every load hits.
  const hitMachine = Machine.create({ cpus: 1, trace: false, tlb: MISS_TLB });
  const hit = timeCycle(mapPages(hitMachine, base, stride, MISS_TLB.entries), hitMachine);

  // The raw walk, on the miss machine's page tables (A bits already set by the run above, as in steady state).
  const regs = missMachine.cpus[0]!.regs;
  const controls = { cr3: regs.cr3, wp: (regs.cr0 & CR0.WP) !== 0, nxe: (regs.efer & EFER.NXE) !== 0 };
  const out = new WalkResult();
  const memory = missMachine.memory;
  const mask = MISS_PAGES - 1;
  const walkNs =
    bestOf(WALK_REPEATS, () => {
      const start = nowNs();
      for (let i = 0; i < WALK_CALLS; i++) {
        walkPageTables(memory, controls, pages[i & mask]! + 8, ACCESS.READ, out);
        if (!out.ok) throw new Error('benchmark walk faulted');
      }
      return nowNs() - start;
    }) / WALK_CALLS;

  return {
    layout,
    hitNsPerLoad: hit.nsPerLoad,
    missNsPerLoad: miss.nsPerLoad,
    missRatio: miss.missRatio,
    hitRatio: 1 - hit.missRatio,
    missCostNs: miss.nsPerLoad - hit.nsPerLoad,
    walkNs,
  };
}

export function measure(c: BenchCase): HitResult | MissResult | CreateResult | KernelResult {
  if (c.type === 'create') return measureCreate(c.memory);
  if (c.type === 'kernel') return measureKernel();
  return c.type === 'hit' ? measureHit(c.kind, c.cpus, c.trace) : measureMiss(c.layout);
}

// Run as a script: one case from argv, its result as JSON on stdout.
if (process.argv[1]?.endsWith('measure.ts')) {
  const spec = process.argv[2];
  if (!spec) throw new Error("usage: node --import tsx bench/measure.ts '<case as JSON>'");
  console.log(JSON.stringify(measure(JSON.parse(spec) as BenchCase)));
}
