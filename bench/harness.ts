// Timing helpers for the benchmarks. Wall-clock time belongs here (bench/), never in the model.

import type { Machine } from '../src/machine/machine.ts';

/** Nanoseconds since an arbitrary origin, as a number (exact for the durations measured here). */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** Runs `fn` once to warm up, then `repeats` times; returns the smallest result (best of N). */
export function bestOf(repeats: number, fn: () => number): number {
  fn();
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repeats; i++) best = Math.min(best, fn());
  return best;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Per-step times of a timed run: the median chunk (the figure the targets use) and the fastest. */
export interface ChunkTimes {
  readonly medianNs: number;
  readonly bestNs: number;
  readonly chunks: number;
  readonly steps: number;
}

/**
 * Steps `machine` for `chunks` chunks of `chunk` steps (run({ maxSteps: chunk }) each), timing each chunk
 * including the m.clearTrace() that keeps a traced run's memory flat. Returns ns per step of the median and of
 * the fastest chunk. The median, not the mean: this is a shared 2-core VM, and a chunk that another tenant
 * interrupted says nothing about the model.
 */
export function timeChunks(machine: Machine, chunks: number, chunk: number): ChunkTimes {
  const perStep: number[] = [];
  for (let c = 0; c < chunks; c++) {
    const start = nowNs();
    const r = machine.run({ maxSteps: chunk });
    machine.clearTrace();
    perStep.push((nowNs() - start) / chunk);
    if (r.steps !== chunk || !r.limitReached) {
      throw new Error(
        `benchmark program stopped after ${r.steps} of ${chunk} steps: ${r.outcome} ${r.stop?.message ?? ''}`,
      );
    }
  }
  return { medianNs: median(perStep), bestNs: Math.min(...perStep), chunks, steps: chunks * chunk };
}

/** Sum of TLB hit and miss counters over all CPUs. */
export function tlbCounters(machine: Machine): { hits: number; misses: number } {
  let hits = 0;
  let misses = 0;
  for (const cpu of machine.cpus) {
    hits += cpu.tlb.hits;
    misses += cpu.tlb.misses;
  }
  return { hits, misses };
}

export function formatRate(perSecond: number): string {
  return `${(perSecond / 1e6).toFixed(2)} M/s`;
}

export function formatNs(ns: number): string {
  return `${ns.toFixed(1)} ns`;
}

/** A plain-text table with left-aligned first column and right-aligned others. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
