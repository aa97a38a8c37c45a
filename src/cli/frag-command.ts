import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../mmu/input-error.ts';
import {
  FRAG_POLICIES,
  FRAG_VARIANTS,
  FRAG_WORKLOADS,
  type FragVariant,
  type FragWorkload,
} from '../scenarios/frag.ts';
import {
  type FigureName,
  type FragExperiment,
  type FragSummary,
  runFragExperiment,
} from '../scenarios/frag-experiment.ts';
import type { Estimate } from '../scenarios/frag-stats.ts';
import { formatBarChart } from '../trace/chart.ts';
import { choiceOption, integerOption, optionText } from './explore-command.ts';
import type { CliIo } from './io.ts';
import { progressBar } from './progress.ts';

// `x86slice frag`: the fragmentation experiment (docs/frag.md). Every workload, variant and policy over the seeds:
// a table per workload on stdout (each figure's mean and 95% confidence interval), and in --out the runs and the
// summaries as JSON with an SVG chart of order-9 success and extfrag events per policy.

export interface FragFlags {
  readonly workload?: unknown;
  readonly variant?: unknown;
  readonly seeds?: unknown;
  readonly memory?: unknown;
  readonly operations?: unknown;
  readonly workers?: unknown;
  readonly out?: unknown;
  readonly json?: unknown;
}

const WORKLOAD_CHOICES = [...FRAG_WORKLOADS, 'both'] as const;
const VARIANT_CHOICES = [...FRAG_VARIANTS, 'both'] as const;

function est(e: Estimate, digits = 0): string {
  if (Number.isNaN(e.mean)) return '-';
  const ci = Number.isNaN(e.ci95) ? '' : ` ± ${e.ci95.toFixed(digits)}`;
  return `${e.mean.toFixed(digits)}${ci}`;
}

const COLUMNS: readonly [string, FigureName, number][] = [
  ['pass 1 %', 'order-9 success, pass 1 (%)', 1],
  ['pass 2 %', 'order-9 success, pass 2 (%)', 1],
  ['pass 3 %', 'order-9 success, pass 3 (%)', 1],
  ['extfrag', 'extfrag events', 0],
  ['splitting', 'extfrag events splitting a pageblock', 0],
  ['mixed blocks', 'mixed pageblocks', 1],
  ['scanned (migrate/free)', 'compaction: pages scanned (migrate)', 0],
  ['migrated', 'compaction: pages migrated', 0],
  ['vmalloc calls', 'vmalloc: calls', 0],
  ['page allocs', 'vmalloc: page allocator calls', 0],
  ['hi-order fails', 'vmalloc: high-order attempts failed', 0],
  ['vmalloc us', 'vmalloc: simulated us', 0],
  ['IPIs', 'IPIs sent', 0],
];

function table(summaries: readonly FragSummary[], workload: FragWorkload): string {
  const header = ['policy', 'variant', ...COLUMNS.map(([h]) => h)];
  const rows = summaries
    .filter((s) => s.workload === workload)
    .map((s) => [
      s.policy,
      s.variant,
      ...COLUMNS.map(([h, name, digits]) =>
        h.startsWith('scanned')
          ? `${est(s.figures[name], digits)} / ${est(s.figures['compaction: pages scanned (free)'], digits)}`
          : est(s.figures[name], digits),
      ),
    ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The chart: per workload, order-9 success over all passes and extfrag events, per policy and variant. */
function chart(e: FragExperiment, command: string): string {
  const success = (s: FragSummary) => s.figures['order-9 success, all passes (%)'];
  const panels = e.options.workloads.flatMap((workload) => {
    const groups = (figure: (s: FragSummary) => Estimate) =>
      e.options.policies.map((policy) => ({
        label: policy,
        values: e.options.variants.map((variant) => {
          const s = e.summaries.find((x) => x.workload === workload && x.policy === policy && x.variant === variant)!;
          const v = figure(s);
          return { mean: v.mean, ci: v.ci95 };
        }),
      }));
    return [
      {
        title: `${workload}: order-9 success, all passes`,
        yLabel: 'order-9 requests that succeeded (%)',
        groups: groups(success),
      },
      {
        title: `${workload}: extfrag fallback events`,
        yLabel: 'mm_page_alloc_extfrag events per run',
        groups: groups((s) => s.figures['extfrag events']),
      },
    ];
  });
  return formatBarChart({
    title: 'Does higher-order or migratable vmalloc reduce fragmentation? (x86slice frag)',
    subtitle: `${command}: ${e.options.seeds} seeds per bar, mean and 95% CI`,
    series: e.options.variants.map((v) =>
      v === 'default' ? 'vmalloc sizes up to 8 MiB' : 'no vmalloc area of 2 MiB or more',
    ),
    panels,
    columns: 2,
  });
}

export async function fragCommand(flags: FragFlags, argv: readonly string[], io: CliIo): Promise<number> {
  const w = choiceOption(argv, '--workload', flags.workload, WORKLOAD_CHOICES) ?? 'stress-highalloc';
  const v = choiceOption(argv, '--variant', flags.variant, VARIANT_CHOICES) ?? 'both';
  const seeds = integerOption(argv, '--seeds', flags.seeds, [1, 1000], 'seeds 1..n per policy') ?? 10;
  const memory = integerOption(argv, '--memory', flags.memory, [64, 4096], 'MiB of memory') ?? 1024;
  const operations =
    integerOption(argv, '--operations', flags.operations, [1, 10_000_000], 'operations per run') ?? 4000;
  const workers =
    integerOption(argv, '--workers', flags.workers, [1, 64], 'worker threads') ?? Math.min(8, availableParallelism());
  const out = optionText(argv, '--out', flags.out) ?? 'frag-out';
  if (out === '') throw new InputError("--out '' must name a directory for frag.json and frag.svg");
  const workloads: FragWorkload[] = w === 'both' ? [...FRAG_WORKLOADS] : [w];
  const variants: FragVariant[] = v === 'both' ? [...FRAG_VARIANTS] : [v];
  const bar = flags.json || !io.progress ? undefined : progressBar(io.progress, 'frag');
  let e: FragExperiment;
  try {
    e = await runFragExperiment({
      workloads,
      variants,
      policies: FRAG_POLICIES,
      seeds,
      memory,
      operations,
      workers,
      onProgress: (d, t) => bar?.update(d, t),
    });
  } finally {
    bar?.done();
  }
  const flags2 = [w === 'stress-highalloc' ? '' : ` --workload ${w}`, v === 'both' ? '' : ` --variant ${v}`].join('');
  const command = `x86slice frag${flags2} --memory ${memory} --seeds ${seeds} --operations ${operations}`;
  const json = { command, options: e.options, summaries: e.summaries, runs: e.runs };
  try {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'frag.json'), `${JSON.stringify(json, null, 2)}\n`);
    writeFileSync(join(out, 'frag.svg'), chart(e, command));
  } catch (error) {
    throw new InputError(`--out ${out} cannot be written: ${(error as Error).message}`);
  }
  if (flags.json) {
    io.out(JSON.stringify({ command, options: e.options, summaries: e.summaries }));
    return 0;
  }
  io.out(`x86slice frag: ${memory} MiB, ${seeds} seeds, ${operations} operations per run (docs/frag.md)`);
  io.out('each figure: mean ± 95% confidence interval over the seeds\n');
  for (const workload of workloads) {
    io.out(`${workload}:`);
    io.out(table(e.summaries, workload));
    io.out('');
  }
  io.out(`wrote ${join(out, 'frag.json')} and ${join(out, 'frag.svg')}`);
  return 0;
}
