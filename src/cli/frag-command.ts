import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../mmu/input-error.ts';
import { FRAG_POLICIES, type FragResult, runFragExperiment } from '../scenarios/frag.ts';
import { formatLineChart } from '../trace/chart.ts';
import { choiceOption, integerOption, optionText } from './explore-command.ts';
import type { CliIo } from './io.ts';
import { progressBar } from './progress.ts';

// `x86slice frag`: the fragmentation experiment (docs/frag.md). One seeded workload under every policy: a table on
// stdout, and the same numbers as JSON with an SVG chart (free blocks of order >= 3 and >= 9 over time) in --out.

export interface FragFlags {
  readonly workload?: unknown;
  readonly seed?: unknown;
  readonly memory?: unknown;
  readonly operations?: unknown;
  readonly out?: unknown;
  readonly json?: unknown;
}

const WORKLOADS = ['mixed'] as const;

function pct(ok: number, all: number): string {
  return all === 0 ? '-' : `${((100 * ok) / all).toFixed(0)}% (${ok}/${all})`;
}

function table(results: readonly FragResult[]): string {
  const header = [
    'policy',
    'order-3 ok',
    'order-9 ok',
    'frag idx 3/9',
    'free blocks, order 0..10',
    'migrated',
    'IPIs',
    'migrating',
  ];
  const rows = results.map((r) => [
    r.policy,
    pct(r.order3.successes, r.order3.attempts),
    pct(r.order9.successes, r.order9.attempts),
    `${r.fragmentationIndex[3]}/${r.fragmentationIndex[9]}`,
    r.freeBlocks.join(' '),
    `${r.pagesMigrated} (${r.vmallocPagesMigrated} vmalloc)`,
    String(r.ipisSent),
    `${(r.migrateNs / 1000).toFixed(1)} us`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The fragmentation index per order at the end, one row per policy (x1000; -1000: a block that large is free). */
function indexTable(results: readonly FragResult[]): string {
  const width = Math.max(...results.map((r) => r.policy.length));
  const orders = Array.from({ length: 11 }, (_, o) => `o${o}`.padStart(6)).join('');
  const rows = results.map(
    (r) => `${r.policy.padEnd(width)}  ${r.fragmentationIndex.map((v) => String(v).padStart(6)).join('')}`,
  );
  return [`${'fragmentation index'.padEnd(width)}  ${orders}`, ...rows].join('\n');
}

/** Free blocks of order `order` or more at each sample. */
function atLeast(r: FragResult, order: number): [number, number][] {
  return r.series.map((s) => [s.operation, s.free.slice(order).reduce((a, b) => a + b, 0)]);
}

export async function fragCommand(flags: FragFlags, argv: readonly string[], io: CliIo): Promise<number> {
  choiceOption(argv, '--workload', flags.workload, WORKLOADS);
  const seed = integerOption(argv, '--seed', flags.seed, [0, 2 ** 32 - 1], 'the workload seed') ?? 1;
  const memory = integerOption(argv, '--memory', flags.memory, [16, 4096], 'MiB of memory') ?? 32;
  const operations = integerOption(argv, '--operations', flags.operations, [1, 1_000_000], 'workload steps') ?? 6000;
  const out = optionText(argv, '--out', flags.out) ?? 'frag-out';
  if (out === '') throw new InputError("--out '' must name a directory for frag.json and frag.svg");
  const bar = flags.json || !io.progress ? undefined : progressBar(io.progress, 'frag');
  let results: readonly FragResult[];
  try {
    results = runFragExperiment({ seed, memory, operations, onProgress: (d, t) => bar?.update(d, t) });
  } finally {
    bar?.done();
  }
  const chart = formatLineChart(
    [3, 6, 9].map((order) => ({
      title: `free blocks of order >= ${order}`,
      series: results.map((r) => ({ name: r.policy, points: atLeast(r, order) })),
    })),
    'workload operations',
    `x86slice frag --seed ${seed} --memory ${memory} --operations ${operations}`,
  );
  const json = { workload: 'mixed', seed, memoryMiB: memory, operations, policies: FRAG_POLICIES, results };
  try {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'frag.json'), `${JSON.stringify(json, null, 2)}\n`);
    writeFileSync(join(out, 'frag.svg'), chart);
  } catch (error) {
    throw new InputError(`--out ${out} cannot be written: ${(error as Error).message}`);
  }
  if (flags.json) io.out(JSON.stringify(json));
  else {
    io.out(`x86slice frag: workload mixed, seed ${seed}, ${memory} MiB, ${operations} operations (docs/frag.md)\n`);
    io.out(table(results));
    io.out('');
    io.out(indexTable(results));
    io.out(`\nwrote ${join(out, 'frag.json')} and ${join(out, 'frag.svg')} (open the SVG in a browser)`);
  }
  return 0;
}
