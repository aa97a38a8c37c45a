// The checker's inner loop, timed in a plain node process on the compiled package (dist/), as users load it:
//  - executions per second of a 2-CPU execution of about 100 steps: MachineImage.reset (or instantiate), then run;
//  - steps per second inside an exhaustive exploration (DPOR), on a race-dense program (every step of one CPU
//    conflicts with the other's) and on a protocol-shaped one (long private work, few conflicting steps);
//  - `x86slice explore pf-in-pf` end to end, process start included.
// Each figure is the median of ROUNDS timed rounds after a warm-up; the spread is min..max. Prints one JSON line;
// bench/run.ts runs it (after `npm run build`, which `npm run bench` does first). With --cpu, sections 1 and 2 are
// timed by process CPU time (user + system) rather than the wall clock, and section 3 is left out: what paired A/B
// runs on a shared machine compare (bench/paired/ab.mjs).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { explore, Machine, MachineImage } from '../dist/index.js';

const ROUNDS = 7;
const CPU_CLOCK = process.argv.includes('--cpu');

/** Seconds since `start` (a clock() value), by the clock chosen. */
function clock() {
  if (!CPU_CLOCK) return Number(process.hrtime.bigint()) / 1e9;
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
const COUNTER = 0xffffc90001000000n;
const SCRATCH = 0xffffc90001001000n;

/** `cpus` CPUs, each: `privateStores` stores to its own slot, then `rounds` unlocked increments of one counter. */
function program(cpus, rounds, privateStores) {
  const m = Machine.create({ cpus, trace: false });
  const counter = m.map(COUNTER, { writable: true });
  const scratch = m.map(SCRATCH, { writable: true });
  for (let id = 0; id < cpus; id++) {
    m.load(id, function* (x) {
      for (let k = 0; k < privateStores; k++) yield x.store(scratch + 8 * id, 8, k + 1);
      for (let k = 0; k < rounds; k++) {
        const v = yield x.load(counter, 8);
        yield x.store(counter, 8, v + 1);
      }
    });
  }
  return m;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const spread = (xs) => [Math.min(...xs), Math.max(...xs)];

function rate(fn, count) {
  const start = clock();
  fn();
  return count / (clock() - start);
}

// 1. Executions per second: 2 CPUs, 12 private stores and 18 increments each (about 104 steps an execution).
const image = MachineImage.capture(program(2, 18, 12));
const reused = image.instantiate({ trace: false });
const stepsPerExecution = reused.run().steps;
const EXECUTIONS = 20_000;
const resetRun = () => {
  for (let i = 0; i < EXECUTIONS; i++) {
    image.reset(reused);
    reused.run();
  }
};
const instantiateRun = () => {
  for (let i = 0; i < EXECUTIONS / 4; i++) image.instantiate({ trace: false }).run();
};
resetRun();
instantiateRun();
const resetRates = [];
const instantiateRates = [];
// Alternating rounds, so a burst of VM slowness lands on both.
for (let r = 0; r < ROUNDS; r++) {
  resetRates.push(rate(resetRun, EXECUTIONS));
  instantiateRates.push(rate(instantiateRun, EXECUTIONS / 4));
}

// 2. Steps per second inside exhaustive exploration.
function exhaustive(img) {
  const start = clock();
  const r = explore(img, { strategy: 'exhaustive' });
  const seconds = clock() - start;
  return { stepsPerSecond: r.steps / seconds, executions: r.executions, steps: r.steps, states: r.distinctStates };
}
const dense = MachineImage.capture(program(2, 4, 1));
const protocol = MachineImage.capture(program(3, 2, 40));
for (let i = 0; i < 2; i++) {
  exhaustive(dense);
  exhaustive(protocol);
}
const denseRuns = [];
const protocolRuns = [];
for (let r = 0; r < ROUNDS; r++) {
  denseRuns.push(exhaustive(dense));
  protocolRuns.push(exhaustive(protocol));
}

// 3. `x86slice explore pf-in-pf`, end to end.
const bin = fileURLToPath(new URL('../bin/x86slice.js', import.meta.url));
const cliMs = [];
for (let r = 0; r < (CPU_CLOCK ? 0 : 5); r++) {
  const start = process.hrtime.bigint();
  try {
    execFileSync(process.execPath, [bin, 'explore', 'pf-in-pf'], { stdio: 'ignore' });
  } catch (error) {
    if (error.status !== 1) throw error; // 1: a violation found, as expected
  }
  cliMs.push(Number(process.hrtime.bigint() - start) / 1e6);
}

const summary = (runs) => ({
  stepsPerSecond: median(runs.map((r) => r.stepsPerSecond)),
  spread: spread(runs.map((r) => r.stepsPerSecond)),
  executions: runs[0].executions,
  steps: runs[0].steps,
  distinctStates: runs[0].states,
});
console.log(
  JSON.stringify({
    stepsPerExecution,
    resetRunExecutionsPerSecond: median(resetRates),
    resetRunSpread: spread(resetRates),
    instantiateRunExecutionsPerSecond: median(instantiateRates),
    instantiateRunSpread: spread(instantiateRates),
    exhaustiveDense: summary(denseRuns),
    exhaustiveProtocol: summary(protocolRuns),
    ...(cliMs.length === 0 ? {} : { explorePfInPfMs: median(cliMs), explorePfInPfSpreadMs: spread(cliMs) }),
  }),
);
