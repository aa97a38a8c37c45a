// The mutation check of the switcheroo (issue 20: `x86slice mutate stack-migration -p protocol=ipi-switcheroo` in
// under 60 s here), timed in a plain node process on the compiled package (dist/), as the CLI runs it: worker
// threads, as many as the machine has cores (at most 8). Each run's wall seconds and its verdict (mutants killed,
// equivalent, surviving), then the median and the spread of --runs runs: this VM's speed drifts by a third within
// minutes, so one run says little.
// Usage: npm run build && node bench/mutate.mjs [--runs N] [--protocol P]
// Prints a table, then one JSON line.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { mutate } from '../dist/scenarios/mutate.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    protocol: { type: 'string', default: 'ipi-switcheroo' },
  },
});
const workers = Math.min(availableParallelism(), 8);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const runs = [];
for (let k = 0; k < Number(values.runs); k++) {
  const start = performance.now();
  const r = await mutate('stack-migration', values.protocol, {}, { workers });
  runs.push({
    seconds: (performance.now() - start) / 1000,
    mutants: r.mutants.length,
    killed: r.killed,
    equivalent: r.equivalent,
    survived: r.survived,
  });
}
const seconds = runs.map((r) => r.seconds);
const verdict = (r) => `${r.mutants} mutants: ${r.killed} killed, ${r.equivalent} equivalent, ${r.survived} surviving`;
console.log(`  mutate stack-migration -p protocol=${values.protocol}, ${workers} worker threads`);
for (const [k, r] of runs.entries()) console.log(`  run ${k + 1}: ${r.seconds.toFixed(1)} s, ${verdict(r)}`);
console.log(
  `  median ${median(seconds).toFixed(1)} s (${Math.min(...seconds).toFixed(1)} to ${Math.max(...seconds).toFixed(1)} s)`,
);
console.log(
  JSON.stringify({
    protocol: values.protocol,
    workers,
    runs,
    medianSeconds: Number(median(seconds).toFixed(2)),
    minSeconds: Number(Math.min(...seconds).toFixed(2)),
    maxSeconds: Number(Math.max(...seconds).toFixed(2)),
  }),
);
