// x86slice benchmark suite: instruction throughput on the TLB-hit fast path and the cost of a TLB miss with a
// 4-level page walk, checked against the targets of DESIGN.md "Performance". Run with `npm run bench`.
// Prints a readable table per section and, last, one JSON line with every number.

import os from 'node:os';
import { CR0, EFER } from '../src/cpu/registers.ts';
import { Machine } from '../src/machine/machine.ts';
import { LAYOUT, PAGE_SIZE } from '../src/mmu/address.ts';
import { ACCESS, WalkResult, walkPageTables } from '../src/mmu/walker.ts';
import { bestOf, formatNs, formatRate, nowNs, table, timeSteps, tlbCounters } from './harness.ts';
import { cycleLoads, HIT_KINDS, type HitKind, hitProgram, mapDataPages, mapPages } from './programs.ts';

// Targets (DESIGN.md "Performance"; the suite's brief).
const TARGET_HIT_RATE = 25e6; // TLB-hit instructions/s, one CPU, tracing off
const TARGET_TRACE_RATIO = 3; // tracing on at most 3x slower than off
const TARGET_MISS_NS = 1000; // TLB miss + 4-level walk, ns

// Sizes: each measurement is a warm-up run then best of REPEATS, each run STEPS steps in CHUNK-step chunks.
const REPEATS = 5;
const HIT_STEPS = 2_000_000;
const TRACE_STEPS = 500_000;
const CHUNK = 100_000;
/** Diagnostic chunk size: StepEvents die young (scavenged) instead of being promoted to the old generation. */
const SMALL_CHUNK = 10_000;
const MISS_STEPS = 500_000;
const MISS_PAGES = 64;
const MISS_TLB = { entries: 4, ways: 4 } as const;
const WALK_CALLS = 500_000;

const verdict = (ok: boolean): string => (ok ? 'PASS' : 'MISS');

interface HitResult {
  readonly kind: HitKind;
  readonly cpus: number;
  readonly trace: boolean;
  readonly chunk: number;
  readonly steps: number;
  readonly nsPerStep: number;
  readonly perSecond: number;
  readonly hitRatio: number;
}

function measureHit(kind: HitResult['kind'], cpus: number, trace: boolean, chunk = CHUNK): HitResult {
  const m = Machine.create({ cpus, trace });
  const data = mapDataPages(m, cpus);
  const program = hitProgram(kind, data);
  for (let id = 0; id < cpus; id++) m.load(id, program);
  const steps = trace ? TRACE_STEPS : HIT_STEPS;
  m.run({ maxSteps: CHUNK }); // fill the TLBs and let the JIT see the loop
  m.clearTrace();
  const before = tlbCounters(m);
  const ns = bestOf(REPEATS, () => timeSteps(m, steps, chunk));
  const after = tlbCounters(m);
  const hits = after.hits - before.hits;
  const misses = after.misses - before.misses;
  const nsPerStep = ns / steps;
  return { kind, cpus, trace, chunk, steps, nsPerStep, perSecond: 1e9 / nsPerStep, hitRatio: hits / (hits + misses) };
}

interface MissResult {
  readonly layout: 'dense' | 'sparse';
  readonly description: string;
  readonly hitNsPerLoad: number;
  readonly missNsPerLoad: number;
  readonly missRatio: number;
  readonly hitRatio: number;
  /** missNsPerLoad - hitNsPerLoad: the added cost of a miss, its 4-level walk and the TLB fill. */
  readonly missCostNs: number;
  /** walkPageTables() alone, called directly on the same pages. */
  readonly walkNs: number;
}

/** Loads cycling over `pages`, one CPU, tracing off, the small TLB: ns per load and TLB miss ratio. */
function timeCycle(pages: readonly number[], m: Machine): { nsPerLoad: number; missRatio: number } {
  m.load(0, cycleLoads(pages));
  m.run({ maxSteps: CHUNK });
  const before = tlbCounters(m);
  const ns = bestOf(REPEATS, () => timeSteps(m, MISS_STEPS, CHUNK));
  const after = tlbCounters(m);
  const misses = after.misses - before.misses;
  const total = misses + after.hits - before.hits;
  return { nsPerLoad: ns / MISS_STEPS, missRatio: misses / total };
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
  const hitPages = mapPages(hitMachine, base, stride, MISS_TLB.entries);
  const hit = timeCycle(hitPages, hitMachine);

  // The raw walk, on the miss machine's page tables (A bits already set by the run above, as in steady state).
  const regs = missMachine.cpus[0]!.regs;
  const controls = { cr3: regs.cr3, wp: (regs.cr0 & CR0.WP) !== 0, nxe: (regs.efer & EFER.NXE) !== 0 };
  const out = new WalkResult();
  const memory = missMachine.memory;
  const mask = MISS_PAGES - 1;
  const walkNs =
    bestOf(REPEATS, () => {
      const start = nowNs();
      for (let i = 0; i < WALK_CALLS; i++) {
        walkPageTables(memory, controls, pages[i & mask]! + 8, ACCESS.READ, out);
        if (!out.ok) throw new Error('benchmark walk faulted');
      }
      return nowNs() - start;
    }) / WALK_CALLS;

  return {
    layout,
    description:
      layout === 'dense'
        ? `${MISS_PAGES} consecutive pages (one PT)`
        : `${MISS_PAGES} pages 2 MiB+4 KiB apart (${MISS_PAGES} PTs)`,
    hitNsPerLoad: hit.nsPerLoad,
    missNsPerLoad: miss.nsPerLoad,
    missRatio: miss.missRatio,
    hitRatio: 1 - hit.missRatio,
    missCostNs: miss.nsPerLoad - hit.nsPerLoad,
    walkNs,
  };
}

function main(): void {
  const started = nowNs();
  const cpuModel = os.cpus()[0]?.model ?? 'unknown';
  console.log('x86slice benchmarks');
  console.log(
    `node ${process.version} (${process.platform}/${process.arch}), CPU: ${cpuModel}, ${os.cpus().length} cores`,
  );
  console.log(
    `method: warm-up run, then best of ${REPEATS} runs timed with process.hrtime.bigint(); ` +
      `each run is Machine.run({ maxSteps: ${CHUNK.toLocaleString('en')} }) repeated (chunks).`,
  );
  console.log(
    `tracing on: Machine.create({ trace: true }) records a StepEvent per step; m.clearTrace() after every ` +
      `${CHUNK.toLocaleString('en')}-step chunk keeps memory flat (inside the timed region, as is the GC of the events).`,
  );
  console.log('');

  // 1. TLB-hit throughput --------------------------------------------------------------------------------------
  const hits: HitResult[] = [];
  for (const kind of HIT_KINDS) {
    for (const cpus of [1, 4]) {
      for (const trace of [false, true]) hits.push(measureHit(kind, cpus, trace));
    }
  }
  // Diagnostics (no target): tracing with small chunks.
  const diagnostics: HitResult[] = [
    measureHit('load', 1, true, SMALL_CHUNK),
    measureHit('push+pop', 1, true, SMALL_CHUNK),
  ];

  const find = (kind: HitResult['kind'], cpus: number, trace: boolean): HitResult =>
    hits.find((h) => h.kind === kind && h.cpus === cpus && h.trace === trace)!;
  const hitRows: string[][] = [];
  const checks: { name: string; value: string; target: string; pass: boolean }[] = [];
  const row = (h: HitResult, target: string): string[] => [
    h.kind,
    String(h.cpus),
    h.trace ? `on/${h.chunk / 1000}k` : 'off',
    formatRate(h.perSecond),
    formatNs(h.nsPerStep),
    `${(h.hitRatio * 100).toFixed(2)}%`,
    target,
  ];
  for (const h of hits) {
    let target = '';
    if (h.cpus === 1 && !h.trace) {
      const pass = h.perSecond >= TARGET_HIT_RATE;
      target = `>= 25 M/s ${verdict(pass)}`;
      checks.push({ name: `${h.kind}, 1 CPU, trace off`, value: formatRate(h.perSecond), target: '>= 25 M/s', pass });
    } else if (h.trace) {
      const ratio = h.nsPerStep / find(h.kind, h.cpus, false).nsPerStep;
      const pass = ratio <= TARGET_TRACE_RATIO;
      target = `${ratio.toFixed(2)}x off, <= 3x ${verdict(pass)}`;
      checks.push({
        name: `${h.kind}, ${h.cpus} CPU${h.cpus > 1 ? 's' : ''}, trace on / off`,
        value: `${ratio.toFixed(2)}x`,
        target: '<= 3x',
        pass,
      });
    }
    hitRows.push(row(h, target));
  }
  for (const h of diagnostics) {
    const note = h.trace
      ? `${(h.nsPerStep / find(h.kind, h.cpus, false).nsPerStep).toFixed(2)}x off (diagnostic)`
      : 'diagnostic';
    hitRows.push(row(h, note));
  }
  console.log('1. TLB-hit instruction throughput (instructions/s summed over CPUs; 4 CPUs = round-robin run)');
  console.log('   push+pop: a loop of push then pop on the task stack; the rate counts both instructions.');
  console.log(
    `   trace on/Nk: m.trace cleared every N thousand steps. The verdict uses ${CHUNK / 1000}k chunks (events live long ` +
      `enough to be promoted, as in a kept trace); the ${SMALL_CHUNK / 1000}k rows show the same with events dying young.`,
  );
  console.log(table(['instruction', 'CPUs', 'trace', 'instr/s', 'ns/instr', 'TLB hits', 'target'], hitRows));
  console.log('');

  // 2. TLB miss + 4-level walk ---------------------------------------------------------------------------------
  const misses = [measureMiss('dense'), measureMiss('sparse')];
  console.log(
    `2. TLB miss cost (1 CPU, trace off, TLB { entries: ${MISS_TLB.entries}, ways: ${MISS_TLB.ways} }, ` +
      'loads cycling over the pages)',
  );
  console.log(
    '   miss cost = ns/load when every load misses - ns/load of the same loop over 4 pages (all hits);' +
      ' walk = walkPageTables() called directly.',
  );
  const missRows = misses.map((r) => {
    const pass = r.missCostNs < TARGET_MISS_NS;
    checks.push({
      name: `TLB miss + walk (${r.layout})`,
      value: formatNs(r.missCostNs),
      target: '< 1000 ns',
      pass,
    });
    return [
      `${r.layout}: ${r.description}`,
      `${formatNs(r.hitNsPerLoad)} (${(r.hitRatio * 100).toFixed(1)}% hit)`,
      `${formatNs(r.missNsPerLoad)} (${(r.missRatio * 100).toFixed(1)}% miss)`,
      formatNs(r.missCostNs),
      formatNs(r.walkNs),
      `< 1000 ns ${verdict(pass)}`,
    ];
  });
  console.log(table(['pages', 'hit ns/load', 'miss ns/load', 'miss cost', 'walkPageTables()', 'target'], missRows));
  console.log('');

  // Summary -------------------------------------------------------------------------------------------------------
  console.log('Targets');
  console.log(
    table(
      ['check', 'measured', 'target', 'verdict'],
      checks.map((c) => [c.name, c.value, c.target, verdict(c.pass)]),
    ),
  );
  const elapsed = (nowNs() - started) / 1e9;
  console.log(`\n(${elapsed.toFixed(1)} s)`);

  const round = (x: number, digits = 2): number => Number(x.toFixed(digits));
  console.log(
    JSON.stringify({
      bench: 'x86slice',
      node: process.version,
      cpu: cpuModel,
      cores: os.cpus().length,
      method: {
        repeats: REPEATS,
        hitSteps: HIT_STEPS,
        traceSteps: TRACE_STEPS,
        chunk: CHUNK,
        missSteps: MISS_STEPS,
        walkCalls: WALK_CALLS,
        best: true,
      },
      hit: [...hits, ...diagnostics].map((h) => ({
        kind: h.kind,
        cpus: h.cpus,
        trace: h.trace,
        traceChunk: h.trace ? h.chunk : undefined,
        perSecond: Math.round(h.perSecond),
        nsPerInstruction: round(h.nsPerStep),
        tlbHitRatio: round(h.hitRatio, 4),
      })),
      miss: misses.map((r) => ({
        layout: r.layout,
        pages: MISS_PAGES,
        tlb: MISS_TLB,
        hitNsPerLoad: round(r.hitNsPerLoad),
        missNsPerLoad: round(r.missNsPerLoad),
        missRatio: round(r.missRatio, 4),
        missCostNs: round(r.missCostNs),
        walkNs: round(r.walkNs),
      })),
      targets: checks.map((c) => ({ check: c.name, measured: c.value, target: c.target, pass: c.pass })),
      pass: checks.every((c) => c.pass),
      seconds: round(elapsed, 1),
    }),
  );
}

main();
