// Paired alternating A/B of two checkouts (issue 17's method): for each pair, every case runs on A and on B back to
// back, the order alternating per pair. This VM's speed drifts in bursts, so compare per-pair ratios, by CPU time.
//   1. Put this directory (bench/paired) and bench/explore.mjs (which takes --cpu) into both checkouts (copy them
//      into an older one), and `npm run build` both (explore.mjs loads dist/).
//   2. node bench/paired/ab.mjs <checkout A> <checkout B> <pairs> <out.jsonl> [hit|explore]
//   3. node bench/paired/report.mjs <out.jsonl>: per figure, both medians and the median per-pair ratio.
// hit.ts times one TLB-hit case (load, store, push+pop, xchg; 1 or 4 CPUs; trace off or on) by wall and CPU time;
// bench/explore.mjs --cpu the checker's inner loop (reset/instantiate + run, exhaustive steps/s) by CPU time.
import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';

const [A, B, pairsText, out, only] = process.argv.slice(2);
const pairs = Number(pairsText);
const sides = { A, B };
const hitCases = [];
for (const kind of ['load', 'store', 'push+pop', 'xchg'])
  for (const cpus of [1, 4]) for (const trace of ['off', 'on']) hitCases.push([kind, String(cpus), trace]);

function runHit(root, c) {
  const o = execFileSync(process.execPath, ['--import', 'tsx', 'bench/paired/hit.ts', ...c], {
    cwd: root,
    encoding: 'utf8',
  });
  return JSON.parse(o.trim().split('\n').at(-1));
}
function runExploreCpu(root) {
  const o = execFileSync(process.execPath, ['bench/explore.mjs', '--cpu'], { cwd: root, encoding: 'utf8' });
  const j = JSON.parse(o.trim().split('\n').at(-1));
  return {
    'cpu resetRun': j.resetRunExecutionsPerSecond,
    'cpu instantiateRun': j.instantiateRunExecutionsPerSecond,
    'cpu exhaustiveDense': j.exhaustiveDense.stepsPerSecond,
    'cpu exhaustiveProtocol': j.exhaustiveProtocol.stepsPerSecond,
  };
}
function runExplore(root) {
  const o = execFileSync(process.execPath, ['bench/explore.mjs'], { cwd: root, encoding: 'utf8' });
  const j = JSON.parse(o.trim().split('\n').at(-1));
  return {
    resetRun: j.resetRunExecutionsPerSecond,
    instantiateRun: j.instantiateRunExecutionsPerSecond,
    exhaustiveDense: j.exhaustiveDense.stepsPerSecond,
    exhaustiveProtocol: j.exhaustiveProtocol.stepsPerSecond,
    pfInPfMs: j.explorePfInPfMs,
  };
}
for (let p = 0; p < pairs; p++) {
  const order = p % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
  if (only !== 'explore') {
    for (const c of hitCases) {
      for (const s of order) {
        const r = runHit(sides[s], c);
        appendFileSync(out, `${JSON.stringify({ pair: p, side: s, name: `hit ${c.join(' ')} ns`, value: r.ns })}\n`);
        appendFileSync(
          out,
          `${JSON.stringify({ pair: p, side: s, name: `cpu hit ${c.join(' ')} ns`, value: r.cpuNs })}\n`,
        );
      }
    }
  }
  if (only !== 'hit') {
    for (const s of order) {
      const r = { ...runExplore(sides[s]), ...runExploreCpu(sides[s]) };
      for (const [k, v] of Object.entries(r))
        appendFileSync(out, `${JSON.stringify({ pair: p, side: s, name: k, value: v })}\n`);
    }
  }
}
