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

/**
 * Steps `machine` for exactly `steps` steps with run({ maxSteps }) in chunks of `chunk` steps, clearing
 * `machine.trace` after every chunk so that tracing keeps memory flat. Returns the elapsed nanoseconds
 * (the trace clearing is inside the timed region; it is one property store per chunk).
 */
export function timeSteps(machine: Machine, steps: number, chunk: number): number {
  const start = nowNs();
  let left = steps;
  while (left > 0) {
    const n = Math.min(chunk, left);
    const r = machine.run({ maxSteps: n });
    if (r.steps !== n || !r.limitReached) {
      throw new Error(
        `benchmark program stopped after ${r.steps} of ${n} steps: ${r.outcome} ${r.stop?.message ?? ''}`,
      );
    }
    machine.clearTrace();
    left -= n;
  }
  return nowNs() - start;
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
