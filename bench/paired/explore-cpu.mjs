import { explore, Machine, MachineImage } from '../../dist/index.js';

const ROUNDS = 7;
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
  const u0 = process.cpuUsage();
  fn();
  const u = process.cpuUsage(u0);
  return count / ((u.user + u.system) / 1e6);
}
function _wallRate(fn, count) {
  const start = process.hrtime.bigint();
  fn();
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
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
  const u0 = process.cpuUsage();
  const r = explore(img, { strategy: 'exhaustive' });
  const u = process.cpuUsage(u0);
  const seconds = (u.user + u.system) / 1e6;
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

const cliMs = [0];

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
    explorePfInPfMs: median(cliMs),
    explorePfInPfSpreadMs: spread(cliMs),
  }),
);
