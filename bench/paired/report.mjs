// A report of bench/paired/ab.mjs output: per figure, pairs, both medians (min..max), the median per-pair ratio.
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l));
const med = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const names = [...new Set(rows.map((r) => r.name))];
const lowerBetter = (n) => n.endsWith('ns') || n.endsWith('Ms');
console.log(
  'figure | pairs | A median (min..max) | B median (min..max) | B/A per-pair ratio median (min..max) | B slower by',
);
for (const n of names) {
  const byPair = new Map();
  for (const r of rows.filter((r) => r.name === n)) {
    const e = byPair.get(r.pair) ?? {};
    e[r.side] = r.value;
    byPair.set(r.pair, e);
  }
  const full = [...byPair.values()].filter((e) => e.A !== undefined && e.B !== undefined);
  const a = full.map((e) => e.A),
    b = full.map((e) => e.B),
    ratio = full.map((e) => e.B / e.A);
  const f = (x) => (x >= 1000 ? x.toFixed(0) : x.toPrecision(4));
  const slower = lowerBetter(n) ? med(ratio) - 1 : 1 / med(ratio) - 1;
  console.log(
    `${n} | ${full.length} | ${f(med(a))} (${f(Math.min(...a))}..${f(Math.max(...a))}) | ${f(med(b))} (${f(Math.min(...b))}..${f(Math.max(...b))}) | ${med(ratio).toFixed(3)} (${Math.min(...ratio).toFixed(3)}..${Math.max(...ratio).toFixed(3)}) | ${(slower * 100).toFixed(1)}%`,
  );
}
