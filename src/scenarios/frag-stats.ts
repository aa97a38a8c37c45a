// Summary statistics for the fragmentation experiment: the mean of a figure over seeds and its 95% confidence
// interval from Student's t distribution (two-sided, n - 1 degrees of freedom), as one reports a benchmark run
// over independent seeds.

/** t(0.975, df) for df = 1..30 (standard tables); beyond 30 the normal 1.96 is close enough (t(0.975, 40) = 2.021). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function tQuantile975(df: number): number {
  if (df < 1) return Number.NaN;
  return df <= T975.length ? T975[df - 1]! : 1.96;
}

/** A figure over seeds: its mean, the half-width of its 95% confidence interval, and the sample size. */
export interface Estimate {
  readonly mean: number;
  readonly ci95: number;
  readonly n: number;
}

export function estimate(values: readonly number[]): Estimate {
  const n = values.length;
  if (n === 0) return { mean: Number.NaN, ci95: Number.NaN, n };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, ci95: Number.NaN, n };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  return { mean, ci95: tQuantile975(n - 1) * Math.sqrt(variance / n), n };
}

/** Whether two estimates' 95% intervals overlap (a quick reading, not a test of difference). */
export function overlap(a: Estimate, b: Estimate): boolean {
  return a.mean - a.ci95 <= b.mean + b.ci95 && b.mean - b.ci95 <= a.mean + a.ci95;
}
