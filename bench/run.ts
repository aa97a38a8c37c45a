// x86slice benchmark suite: instruction throughput on the TLB-hit fast path and the cost of a TLB miss with a
// 4-level page walk, checked against the targets of DESIGN.md "Performance". Run with `npm run bench`.
// Each case runs in its own node process (bench/measure.ts explains why); this file runs them and prints a
// readable table per section and, last, one JSON line with every number.

import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { formatNs, formatRate, nowNs, table } from './harness.ts';
import {
  type BenchCase,
  CHUNK,
  CREATE_REPEATS,
  type CreateResult,
  HIT_CHUNKS,
  type HitResult,
  type KernelResult,
  MISS_CHUNKS,
  MISS_PAGES,
  MISS_TLB,
  type MissResult,
  TRACE_CHUNKS,
  WALK_CALLS,
} from './measure.ts';
import { HIT_KINDS, type HitKind } from './programs.ts';

// Targets (DESIGN.md "Performance"; the suite's brief).
const TARGET_HIT_RATE = 25e6; // TLB-hit instructions/s, one CPU, tracing off
const TARGET_TRACE_RATIO = 3; // tracing on at most 3x slower than off
const TARGET_MISS_NS = 1000; // TLB miss + 4-level walk, ns
const TARGET_CREATE_RATIO = 2; // creating a 1 TiB machine costs about what a 64 MiB one does (the issue: "the same")
const CREATE_SIZES = [
  { name: '64 MiB', bytes: 2 ** 26 },
  { name: '1 GiB', bytes: 2 ** 30 },
  { name: '1 TiB', bytes: 2 ** 40 },
  { name: '64 TiB', bytes: 2 ** 46 },
] as const;

const verdict = (ok: boolean): string => (ok ? 'PASS' : 'MISS');
const MEASURE = fileURLToPath(new URL('./measure.ts', import.meta.url));
/** Image instantiation is timed on the compiled package in a plain node process (see bench/instantiate.mjs). */
const INSTANTIATE = fileURLToPath(new URL('./instantiate.mjs', import.meta.url));
/** The checker's inner loop, likewise (see bench/explore.mjs). */
const EXPLORE = fileURLToPath(new URL('./explore.mjs', import.meta.url));
/** SMP calls and migration, likewise (see bench/smp.mjs). */
const SMP = fileURLToPath(new URL('./smp.mjs', import.meta.url));
/** The conformance replay, on the sources through tsx (see bench/conformance.ts). */
const CONFORMANCE = fileURLToPath(new URL('./conformance.ts', import.meta.url));
const TARGET_CONFORMANCE_MS = 5000;
/** The memory-management layer (see bench/mm.mjs). */
const MM = fileURLToPath(new URL('./mm.mjs', import.meta.url));
const TARGET_FRAG_100K_S = 10; // issue 21: a 1 GiB, 100,000-operation run in under 10 s
/** The stateful search beside the stateless one on the switcheroo (see bench/stateful.mjs). */
const STATEFUL = fileURLToPath(new URL('./stateful.mjs', import.meta.url));
/** The distributed search against the single-process one (see bench/distributed.mjs; needs redis-server). */
const DISTRIBUTED = fileURLToPath(new URL('./distributed.mjs', import.meta.url));
/** A stateful search saved and taken up again (see bench/saved-search.mjs). */
const SAVED_SEARCH = fileURLToPath(new URL('./saved-search.mjs', import.meta.url));
/** The mutation check of the switcheroo (see bench/mutate.mjs). */
const MUTATE = fileURLToPath(new URL('./mutate.mjs', import.meta.url));
const TARGET_MUTATE_S = 60; // issue 20: `x86slice mutate stack-migration -p protocol=ipi-switcheroo` here

/**
 * Runs a bench script in a plain node process, prints its table (every line but its last) and returns its figures
 * (the last line, JSON).
 */
function printTable<T = unknown>(script: string): T {
  const lines = execFileSync(process.execPath, [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n');
  for (const line of lines.slice(0, -1)) console.log(line);
  return JSON.parse(lines.at(-1)!) as T;
}
const TARGET_STATES_PER_CPU_S = 100_000; // issue 18: new states per second per core on stack-migration
const TARGET_BYTES_PER_STATE = 16; // issue 18: at most 16 bytes a stored state
const TARGET_SWITCHEROO_S = 5; // issue 18: the switcheroo proof, 2 CPUs, one TLB event, end to end
const TARGET_SWITCHEROO_3_S = 60; // issue 18: the same with 3 CPUs

interface StatefulFigures {
  readonly scenario: string;
  readonly stateful: {
    readonly complete: boolean;
    readonly violations: readonly string[];
    readonly states: number;
    readonly wallSeconds: number;
    readonly statesPerCpuSecond: number;
    readonly bytesPerState: number;
  };
  readonly threeCpus?: {
    readonly complete: boolean;
    readonly violations: readonly string[];
    readonly states: number;
    readonly wallSeconds: number;
    readonly statesPerCpuSecond: number;
  };
}

interface MmFigures {
  readonly buddyOpsPerSecond: number;
  readonly buddySpread: readonly [number, number];
  readonly fastPathOpsPerSecond: number;
  readonly fastPathSpread: readonly [number, number];
  readonly compactionScannedPerSecond: number;
  readonly compactionScannedSpread: readonly [number, number];
  readonly compactionMigratedPerSecond: number;
  readonly compactionScanned: number;
  readonly compactionMoved: number;
  readonly frag100kSeconds: number;
  readonly frag100kSpread: readonly [number, number];
  readonly frag100kSteps: number;
  readonly fragDefaultSeconds: number;
  readonly fragDefaultSpread: readonly [number, number];
} // the issue: npm test replays every recorded case "in a few seconds"

interface ConformanceFigures {
  readonly cases: number;
  readonly coldMs: number;
  readonly medianMs: number;
  readonly spreadMs: readonly [number, number];
  readonly unexplained: number;
}

interface SmpFigures {
  readonly migrations: Readonly<
    Record<string, { perSecond: number; spread: readonly [number, number]; stepsPerMigration: number }>
  >;
  readonly smpCall: { roundTripsPerSecond: number; spread: readonly [number, number]; stepsPerRoundTrip: number };
  readonly compaction: { pagesPerSecond: number; spread: readonly [number, number]; pages: number };
  readonly switcherooExhaustive: {
    executions: number;
    steps: number;
    executionsPerSecond: number;
    stepsPerSecond: number;
  };
  readonly exploreNaiveMs: number;
  readonly exploreNaiveSpreadMs: readonly [number, number];
}

interface ExhaustiveFigures {
  readonly stepsPerSecond: number;
  readonly spread: readonly [number, number];
  readonly executions: number;
  readonly steps: number;
  readonly distinctStates: number;
}

interface ExploreFigures {
  readonly stepsPerExecution: number;
  readonly resetRunExecutionsPerSecond: number;
  readonly resetRunSpread: readonly [number, number];
  readonly instantiateRunExecutionsPerSecond: number;
  readonly instantiateRunSpread: readonly [number, number];
  readonly exhaustiveDense: ExhaustiveFigures;
  readonly exhaustiveProtocol: ExhaustiveFigures;
  readonly explorePfInPfMs: number;
  readonly explorePfInPfSpreadMs: readonly [number, number];
}

/** Processes per case: the case's figure is the process with the median result. */
const PROCESSES = 3;

/** Runs one case in a fresh node process (same node, tsx loader) and parses its JSON line. */
function runProcess<R>(c: BenchCase): R {
  const out = execFileSync(process.execPath, ['--import', 'tsx', MEASURE, JSON.stringify(c)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as R;
}

/**
 * Runs a case in PROCESSES fresh processes and keeps the median one by `key`: a process's code placement and
 * JIT decisions move its figure by a few percent, so one process is one sample.
 */
function runCase<R>(c: BenchCase, key: (r: R) => number): R {
  const results = Array.from({ length: PROCESSES }, () => runProcess<R>(c)).sort((a, b) => key(a) - key(b));
  return results[(results.length - 1) >> 1]!;
}

const hitCase = (kind: HitKind, cpus: number, trace: boolean): HitResult =>
  runCase<HitResult>({ type: 'hit', kind, cpus, trace }, (r) => r.nsPerStep);

function main(): void {
  const started = nowNs();
  const cpuModel = os.cpus()[0]?.model ?? 'unknown';
  console.log('x86slice benchmarks');
  console.log(
    `node ${process.version} (${process.platform}/${process.arch}), CPU: ${cpuModel}, ${os.cpus().length} cores`,
  );
  console.log(
    `method: each case in ${PROCESSES} fresh node processes (no JIT feedback shared between cases; the median ` +
      'process is reported); in each, a warm-up, then ' +
      `Machine.run({ maxSteps: ${CHUNK.toLocaleString('en')} }) chunks timed one by one with process.hrtime.bigint() ` +
      `(${HIT_CHUNKS} chunks, ${TRACE_CHUNKS} with tracing on); ns/instr is the median chunk, "best" the fastest.`,
  );
  console.log(
    'tracing on: Machine.create({ trace: true }) records every step; m.clearTrace() after each chunk keeps memory ' +
      'flat and is timed with it.',
  );
  console.log('');

  // 1. TLB-hit throughput --------------------------------------------------------------------------------------
  const hits: HitResult[] = [];
  for (const kind of HIT_KINDS) {
    for (const cpus of [1, 4]) {
      for (const trace of [false, true]) hits.push(hitCase(kind, cpus, trace));
    }
  }
  // Diagnostic (no target): every kind in one program, so one compiled step serves all four.
  const diagnostics = [hitCase('mixed', 1, false), hitCase('mixed', 1, true)];

  const find = (kind: HitKind, cpus: number, trace: boolean): HitResult =>
    [...hits, ...diagnostics].find((h) => h.kind === kind && h.cpus === cpus && h.trace === trace)!;
  const rate = (h: HitResult): number => 1e9 / h.nsPerStep;
  const hitRows: string[][] = [];
  const checks: { name: string; value: string; target: string; pass: boolean }[] = [];
  const row = (h: HitResult, target: string): string[] => [
    h.kind,
    String(h.cpus),
    h.trace ? 'on' : 'off',
    formatRate(rate(h)),
    formatNs(h.nsPerStep),
    formatNs(h.bestNsPerStep),
    `${(h.hitRatio * 100).toFixed(2)}%`,
    target,
  ];
  for (const h of hits) {
    let target = '';
    if (h.cpus === 1 && !h.trace) {
      const pass = rate(h) >= TARGET_HIT_RATE;
      target = `>= 25 M/s ${verdict(pass)}`;
      checks.push({ name: `${h.kind}, 1 CPU, trace off`, value: formatRate(rate(h)), target: '>= 25 M/s', pass });
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
    const note = h.trace ? `${(h.nsPerStep / find(h.kind, h.cpus, false).nsPerStep).toFixed(2)}x off` : '';
    hitRows.push(row(h, `${note}${note ? ' ' : ''}(diagnostic)`));
  }
  console.log('1. TLB-hit instruction throughput (instructions/s summed over CPUs; 4 CPUs = round-robin run)');
  console.log('   push+pop: a loop of push then pop on the task stack; the rate counts both instructions.');
  console.log('   mixed: load, store, push, pop in turn in one program.');
  console.log(table(['instruction', 'CPUs', 'trace', 'instr/s', 'ns/instr', 'best', 'TLB hits', 'target'], hitRows));
  console.log('');

  // 2. TLB miss + 4-level walk ---------------------------------------------------------------------------------
  const misses = (['dense', 'sparse'] as const).map((layout) =>
    runCase<MissResult>({ type: 'miss', layout }, (r) => r.missCostNs),
  );
  console.log(
    `2. TLB miss cost (1 CPU, trace off, TLB { entries: ${MISS_TLB.entries}, ways: ${MISS_TLB.ways} }, ` +
      `loads cycling over ${MISS_PAGES} pages, ${MISS_CHUNKS} chunks)`,
  );
  console.log(
    '   miss cost = ns/load when every load misses - ns/load of the same loop over 4 pages (all hits);' +
      ' walk = walkPageTables() called directly.',
  );
  const describeLayout = (layout: MissResult['layout']): string =>
    layout === 'dense'
      ? `dense: ${MISS_PAGES} consecutive pages (one PT)`
      : `sparse: ${MISS_PAGES} pages 2 MiB+4 KiB apart (${MISS_PAGES} PTs)`;
  const missRows = misses.map((r) => {
    const pass = r.missCostNs < TARGET_MISS_NS;
    checks.push({ name: `TLB miss + walk (${r.layout})`, value: formatNs(r.missCostNs), target: '< 1000 ns', pass });
    return [
      describeLayout(r.layout),
      `${formatNs(r.hitNsPerLoad)} (${(r.hitRatio * 100).toFixed(1)}% hit)`,
      `${formatNs(r.missNsPerLoad)} (${(r.missRatio * 100).toFixed(1)}% miss)`,
      formatNs(r.missCostNs),
      formatNs(r.walkNs),
      `< 1000 ns ${verdict(pass)}`,
    ];
  });
  console.log(table(['pages', 'hit ns/load', 'miss ns/load', 'miss cost', 'walkPageTables()', 'target'], missRows));
  console.log('');

  // 3. Machine creation -------------------------------------------------------------------------------------------
  const creations = CREATE_SIZES.map((s) =>
    runCase<CreateResult>({ type: 'create', memory: s.bytes }, (r) => r.medianUs),
  );
  const base = creations[0]!.medianUs;
  console.log(
    `3. Machine.create({ cpus: 4, memory, trace: false }), median of ${CREATE_REPEATS} after as many warm-ups` +
      ' (memory is sparse; the direct map uses 1 GiB pages where a whole GiB exists)',
  );
  const createRows = creations.map((r, i) => {
    const ratio = r.medianUs / base;
    const name = CREATE_SIZES[i]!.name;
    let target = '';
    if (name === '1 TiB') {
      const pass = ratio <= TARGET_CREATE_RATIO;
      target = `<= ${TARGET_CREATE_RATIO}x 64 MiB ${verdict(pass)}`;
      checks.push({
        name: 'create 1 TiB / 64 MiB',
        value: `${ratio.toFixed(2)}x`,
        target: `<= ${TARGET_CREATE_RATIO}x`,
        pass,
      });
    }
    return [name, `${r.medianUs.toFixed(0)} us`, `${r.bestUs.toFixed(0)} us`, `${ratio.toFixed(2)}x`, target];
  });
  console.log(table(['memory', 'median', 'best', 'vs 64 MiB', 'target'], createRows));
  console.log('');

  // 4. The kernel layer -----------------------------------------------------------------------------------------
  const kernelRates = runCase<KernelResult>({ type: 'kernel' }, (r) => r.buddyStepPairsPerSecond);
  const instantiation = [0, 1, 2]
    .map(() => {
      const out = execFileSync(process.execPath, [INSTANTIATE], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      return JSON.parse(out.trim().split('\n').at(-1)!) as { instantiateUs: number; instantiateBestUs: number };
    })
    .sort((a, b) => a.instantiateUs - b.instantiateUs)[1]!;
  const kernel: KernelResult = {
    ...kernelRates,
    instantiateUs: instantiation.instantiateUs,
    instantiateBestUs: instantiation.instantiateBestUs,
  };
  console.log('4. Kernel layer (1 CPU unless stated; programs run with tracing off)');
  // The target is the allocator's own rate; as atomic steps it also pays two steps of a program (a diagnostic).
  const buddyPass = kernel.buddyRawPairsPerSecond >= 2e6;
  const imagePass = kernel.instantiateUs < 50;
  checks.push({
    name: 'buddy order-0 alloc+free',
    value: `${(kernel.buddyRawPairsPerSecond / 1e6).toFixed(2)} M/s`,
    target: '>= 2 M/s',
    pass: buddyPass,
  });
  checks.push({
    name: 'instantiate 4-CPU 256 MiB kernel image',
    value: `${kernel.instantiateUs.toFixed(0)} us`,
    target: '< 50 us',
    pass: imagePass,
  });
  console.log(
    table(
      ['measure', 'figure', 'target'],
      [
        [
          'buddy order-0 alloc+free, raw calls',
          `${(kernel.buddyRawPairsPerSecond / 1e6).toFixed(2)} M pairs/s`,
          `>= 2 M/s ${verdict(buddyPass)}`,
        ],
        [
          'buddy order-0 alloc+free, two atomic steps',
          `${(kernel.buddyStepPairsPerSecond / 1e6).toFixed(2)} M pairs/s`,
          '(diagnostic)',
        ],
        [
          'vmalloc(16 KiB) + vfree, programs',
          `${kernel.vmallocPairsPerSecond.toFixed(0)} pairs/s (${kernel.vmallocStepsPerPair.toFixed(0)} steps each)`,
          '',
        ],
        [
          'MachineImage.instantiate(), 4 CPUs, 256 MiB, kernel',
          `${kernel.instantiateUs.toFixed(0)} us (best ${kernel.instantiateBestUs.toFixed(0)})`,
          `< 50 us ${verdict(imagePass)}`,
        ],
      ],
    ),
  );
  console.log('');

  // 5. The checker -----------------------------------------------------------------------------------------------
  const explorations = [0, 1, 2]
    .map(() => {
      const out = execFileSync(process.execPath, [EXPLORE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      return JSON.parse(out.trim().split('\n').at(-1)!) as ExploreFigures;
    })
    .sort((a, b) => a.resetRunExecutionsPerSecond - b.resetRunExecutionsPerSecond);
  const explored = explorations[1]!;
  const k = (x: number) => `${(x / 1000).toFixed(1)} k`;
  const m = (x: number) => `${(x / 1e6).toFixed(2)} M`;
  const range = (r: readonly [number, number], f: (x: number) => string) => `${f(r[0])}..${f(r[1])}`;
  const execPass = explored.resetRunExecutionsPerSecond >= 50_000;
  const stepsPass = explored.exhaustiveProtocol.stepsPerSecond >= 2e6;
  const cliPass = explored.explorePfInPfMs < 1000;
  checks.push({
    name: `executions/s, 2 CPUs, ${explored.stepsPerExecution} steps (reset + run)`,
    value: `${k(explored.resetRunExecutionsPerSecond)}/s`,
    target: '>= 50 k/s',
    pass: execPass,
  });
  checks.push({
    name: 'steps/s inside exhaustive exploration (protocol-shaped)',
    value: `${m(explored.exhaustiveProtocol.stepsPerSecond)}/s`,
    target: '>= 2 M/s',
    pass: stepsPass,
  });
  checks.push({
    name: 'x86slice explore pf-in-pf, end to end',
    value: `${explored.explorePfInPfMs.toFixed(0)} ms`,
    target: '< 1000 ms',
    pass: cliPass,
  });
  const dense = explored.exhaustiveDense;
  const protocol = explored.exhaustiveProtocol;
  console.log('5. The checker (plain node on dist/; median of 7 rounds in the median of 3 processes, spread min..max)');
  console.log(
    table(
      ['measure', 'median', 'spread', 'target'],
      [
        [
          `MachineImage.reset + run, ${explored.stepsPerExecution}-step 2-CPU execution`,
          `${k(explored.resetRunExecutionsPerSecond)} exec/s`,
          range(explored.resetRunSpread, k),
          `>= 50 k/s ${verdict(execPass)}`,
        ],
        [
          'MachineImage.instantiate + run, the same',
          `${k(explored.instantiateRunExecutionsPerSecond)} exec/s`,
          range(explored.instantiateRunSpread, k),
          '(diagnostic)',
        ],
        [
          `exhaustive, protocol-shaped (3 CPUs: 40 private stores, 2 racy increments): ${protocol.executions} exec, ${protocol.distinctStates} states`,
          `${m(protocol.stepsPerSecond)} steps/s`,
          range(protocol.spread, m),
          `>= 2 M/s ${verdict(stepsPass)}`,
        ],
        [
          `exhaustive, race-dense (2 CPUs: 4 racy increments): ${dense.executions} exec, ${dense.distinctStates} states`,
          `${m(dense.stepsPerSecond)} steps/s`,
          range(dense.spread, m),
          '(diagnostic)',
        ],
        [
          'x86slice explore pf-in-pf (process start included)',
          `${explored.explorePfInPfMs.toFixed(0)} ms`,
          range(explored.explorePfInPfSpreadMs, (x) => x.toFixed(0)),
          `< 1000 ms ${verdict(cliPass)}`,
        ],
      ],
    ),
  );
  console.log('');

  // 6. SMP and migration ----------------------------------------------------------------------------------------------
  const smpRuns = [0, 1, 2]
    .map(() => {
      const out = execFileSync(process.execPath, [SMP], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      return JSON.parse(out.trim().split('\n').at(-1)!) as SmpFigures;
    })
    .sort((a, b) => a.exploreNaiveMs - b.exploreNaiveMs);
  const smp = smpRuns[1]!;
  const naivePass = smp.exploreNaiveMs < 1000;
  checks.push({
    name: 'x86slice explore stack-migration -p protocol=naive, end to end',
    value: `${smp.exploreNaiveMs.toFixed(0)} ms`,
    target: '< 1000 ms',
    pass: naivePass,
  });
  console.log('6. SMP and migration (plain node on dist/; wall-clock rates of the model, median of 5 rounds)');
  const sw = smp.switcherooExhaustive;
  console.log(
    table(
      ['measure', 'median', 'spread', 'target'],
      [
        ...Object.entries(smp.migrations).map(([protocol, r]) => [
          `migratePage ${protocol} (4 KiB in 8-byte chunks, ${r.stepsPerMigration.toFixed(0)} steps)`,
          `${r.perSecond.toFixed(0)} /s`,
          `${r.spread[0].toFixed(0)}..${r.spread[1].toFixed(0)}`,
          '',
        ]),
        [
          `smp_call_function_many round trip, wait (${smp.smpCall.stepsPerRoundTrip.toFixed(0)} steps)`,
          `${(smp.smpCall.roundTripsPerSecond / 1000).toFixed(1)} k/s`,
          `${(smp.smpCall.spread[0] / 1000).toFixed(1)}..${(smp.smpCall.spread[1] / 1000).toFixed(1)} k`,
          '',
        ],
        [
          `compaction, explicit, 32 MiB of half-freed page cache (${smp.compaction.pages} pages moved)`,
          `${(smp.compaction.pagesPerSecond / 1000).toFixed(1)} k pages/s`,
          `${(smp.compaction.spread[0] / 1000).toFixed(1)}..${(smp.compaction.spread[1] / 1000).toFixed(1)} k`,
          '',
        ],
        [
          `exhaustive stack-migration ipi-switcheroo, 2 CPUs, rounds=4, bound 1 (${sw.executions} exec)`,
          `${sw.executionsPerSecond.toFixed(0)} exec/s, ${(sw.stepsPerSecond / 1e6).toFixed(2)} M steps/s`,
          '',
          '',
        ],
        [
          'x86slice explore stack-migration -p protocol=naive (process start included)',
          `${smp.exploreNaiveMs.toFixed(0)} ms`,
          `${smp.exploreNaiveSpreadMs[0].toFixed(0)}..${smp.exploreNaiveSpreadMs[1].toFixed(0)}`,
          `< 1000 ms ${verdict(naivePass)}`,
        ],
      ],
    ),
  );
  console.log('');

  // 7. The conformance replay -----------------------------------------------------------------------------------
  const conformanceRuns = [0, 1, 2]
    .map(() => {
      const out = execFileSync(process.execPath, ['--import', 'tsx', CONFORMANCE], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      return JSON.parse(out.trim().split('\n').at(-1)!) as ConformanceFigures;
    })
    .sort((a, b) => a.coldMs - b.coldMs);
  const conformance = conformanceRuns[1]!;
  const conformancePass = conformance.coldMs < TARGET_CONFORMANCE_MS && conformance.unexplained === 0;
  checks.push({
    name: `conformance replay of ${conformance.cases} QEMU cases, cold`,
    value: `${conformance.coldMs.toFixed(0)} ms`,
    target: `< ${TARGET_CONFORMANCE_MS} ms`,
    pass: conformancePass,
  });
  console.log('7. Conformance replay (every QEMU-recorded case run on the model and compared; median of 3 processes)');
  console.log(
    table(
      ['measure', 'median', 'spread', 'target'],
      [
        [
          `replay of ${conformance.cases} cases, first round in a process (what npm test pays)`,
          `${conformance.coldMs.toFixed(0)} ms`,
          `${conformanceRuns[0]!.coldMs.toFixed(0)}..${conformanceRuns[2]!.coldMs.toFixed(0)}`,
          `< ${TARGET_CONFORMANCE_MS} ms ${verdict(conformancePass)}`,
        ],
        [
          'the same, warm (median of 5 rounds)',
          `${conformance.medianMs.toFixed(0)} ms (${((conformance.cases / conformance.medianMs) * 1000).toFixed(0)} cases/s)`,
          `${conformance.spreadMs[0].toFixed(0)}..${conformance.spreadMs[1].toFixed(0)}`,
          '',
        ],
        ['unexplained differences', `${conformance.unexplained}`, '', '0'],
      ],
    ),
  );
  console.log('');

  // 8. Memory management ---------------------------------------------------------------------------------------------
  const mm = JSON.parse(
    execFileSync(process.execPath, [MM], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
      .trim()
      .split('\n')
      .at(-1)!,
  ) as MmFigures;
  const fragPass = mm.frag100kSeconds < TARGET_FRAG_100K_S;
  checks.push({
    name: 'frag: one 1 GiB stress-highalloc run of 100,000 operations',
    value: `${mm.frag100kSeconds.toFixed(1)} s`,
    target: `< ${TARGET_FRAG_100K_S} s`,
    pass: fragPass,
  });
  const perSecond = (x: number) => `${(x / 1000).toFixed(0)} k/s`;
  console.log('8. Memory management (plain node on dist/; wall-clock, median of 3 rounds)');
  console.log(
    table(
      ['measure', 'median', 'spread', 'target'],
      [
        [
          'buddy operations (BuddyAllocator alloc + free, orders 0..3, 1 GiB zone)',
          perSecond(mm.buddyOpsPerSecond),
          `${perSecond(mm.buddySpread[0])}..${perSecond(mm.buddySpread[1])}`,
          '',
        ],
        [
          'page allocator fast path (order 0 through the per-CPU lists)',
          perSecond(mm.fastPathOpsPerSecond),
          `${perSecond(mm.fastPathSpread[0])}..${perSecond(mm.fastPathSpread[1])}`,
          '',
        ],
        [
          `compaction pages scanned (compact_memory, 1 GiB half-freed page cache, ${mm.compactionScanned} scanned)`,
          perSecond(mm.compactionScannedPerSecond),
          `${perSecond(mm.compactionScannedSpread[0])}..${perSecond(mm.compactionScannedSpread[1])}`,
          '',
        ],
        [`compaction pages migrated (${mm.compactionMoved} moved)`, perSecond(mm.compactionMigratedPerSecond), '', ''],
        [
          `frag stress-highalloc, 1 GiB, 100,000 operations (${mm.frag100kSteps} steps)`,
          `${mm.frag100kSeconds.toFixed(1)} s`,
          `${mm.frag100kSpread[0].toFixed(1)}..${mm.frag100kSpread[1].toFixed(1)}`,
          `< ${TARGET_FRAG_100K_S} s ${verdict(fragPass)}`,
        ],
        [
          'frag stress-highalloc, 1 GiB, 4,000 operations (one run of `x86slice frag`)',
          `${mm.fragDefaultSeconds.toFixed(2)} s`,
          `${mm.fragDefaultSpread[0].toFixed(2)}..${mm.fragDefaultSpread[1].toFixed(2)}`,
          '',
        ],
      ],
    ),
  );
  console.log('');

  // 9. The stateful search beside the stateless one ----------------------------------------------------------------
  console.log('9. The stateful search and the stateless one on the same scenario (plain node on dist/)');
  const sf = printTable<StatefulFigures>(STATEFUL);
  checks.push({
    name: `stateful: ${sf.scenario}, complete with no violation`,
    value: `${sf.stateful.complete ? 'complete' : 'incomplete'}, ${sf.stateful.violations.join(', ') || 'clean'}, ${sf.stateful.wallSeconds.toFixed(1)} s`,
    target: `complete, clean, < ${TARGET_SWITCHEROO_S} s`,
    pass: sf.stateful.complete && sf.stateful.violations.length === 0 && sf.stateful.wallSeconds < TARGET_SWITCHEROO_S,
  });
  const t = sf.threeCpus!;
  checks.push({
    name: 'stateful: the same with 3 CPUs, complete with no violation',
    value: `${t.complete ? 'complete' : 'incomplete'}, ${t.violations.join(', ') || 'clean'}, ${t.wallSeconds.toFixed(1)} s`,
    target: `complete, clean, < ${TARGET_SWITCHEROO_3_S} s`,
    pass: t.complete && t.violations.length === 0 && t.wallSeconds < TARGET_SWITCHEROO_3_S,
  });
  // Per state, on the search long enough to measure it (the 2-CPU one spends most of its second starting up and in
  // the contract check's re-runs: its figure is printed above).
  checks.push({
    name: 'stateful: new states per CPU second (3 CPUs)',
    value: `${t.statesPerCpuSecond}`,
    target: `>= ${TARGET_STATES_PER_CPU_S}`,
    pass: t.statesPerCpuSecond >= TARGET_STATES_PER_CPU_S,
  });
  checks.push({
    name: 'stateful: bytes per stored state',
    value: sf.stateful.bytesPerState.toFixed(1),
    target: `<= ${TARGET_BYTES_PER_STATE}`,
    pass: sf.stateful.bytesPerState <= TARGET_BYTES_PER_STATE,
  });
  console.log('');

  // 10. The distributed search ------------------------------------------------------------------------------------
  console.log(
    '10. The distributed search over a Redis broker, against the single-process search (plain node on dist/)',
  );
  try {
    printTable(DISTRIBUTED);
  } catch (error) {
    console.log(
      `  not measured: ${(error as Error).message.split('\n')[0]} (it needs redis-server or X86SLICE_BROKER)`,
    );
  }
  console.log('');

  // 11. A saved search ---------------------------------------------------------------------------------------------
  console.log(
    '11. A stateful search saved at half its states and taken up again, against one go (plain node on dist/)',
  );
  printTable(SAVED_SEARCH);
  console.log('');

  // 12. The mutation check ----------------------------------------------------------------------------------------
  console.log('12. The mutation check of the switcheroo, as the CLI runs it (plain node on dist/, worker threads)');
  const mutation = printTable<{
    readonly medianSeconds: number;
    readonly maxSeconds: number;
    readonly runs: readonly { readonly survived: number }[];
  }>(MUTATE);
  checks.push({
    name: 'mutate: the switcheroo, every non-equivalent mutant killed (median of 3)',
    value: `${mutation.runs.some((r) => r.survived > 0) ? 'a mutant survives' : 'none survives'}, ${mutation.medianSeconds.toFixed(1)} s (max ${mutation.maxSeconds.toFixed(1)} s)`,
    target: `none survives, < ${TARGET_MUTATE_S} s`,
    pass: mutation.runs.every((r) => r.survived === 0) && mutation.medianSeconds < TARGET_MUTATE_S,
  });
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
        processesPerCase: PROCESSES,
        chunk: CHUNK,
        hitChunks: HIT_CHUNKS,
        traceChunks: TRACE_CHUNKS,
        missChunks: MISS_CHUNKS,
        walkCalls: WALK_CALLS,
        statistic: 'median chunk',
      },
      hit: [...hits, ...diagnostics].map((h) => ({
        kind: h.kind,
        cpus: h.cpus,
        trace: h.trace,
        perSecond: Math.round(rate(h)),
        nsPerInstruction: round(h.nsPerStep),
        bestNsPerInstruction: round(h.bestNsPerStep),
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
      kernel,
      explore: explored,
      smp,
      conformance,
      mm,
      create: creations.map((r) => ({ memory: r.memory, medianUs: round(r.medianUs), bestUs: round(r.bestUs) })),
      targets: checks.map((c) => ({ check: c.name, measured: c.value, target: c.target, pass: c.pass })),
      pass: checks.every((c) => c.pass),
      seconds: round(elapsed, 1),
    }),
  );
}

main();
