// The SMP and migration layer, timed in a plain node process on the compiled package (dist/):
//  - migrations per second by protocol: CPU0 migrates a vmalloc page back and forth while CPU1 takes the IPIs;
//  - smp_call_function_many round trips per second (CPU0 calls a no-op on CPU1 and waits);
//  - the exhaustive exploration of stack-migration with ipi-switcheroo, 2 CPUs (rounds=4, preemption bound 1);
//  - `x86slice explore stack-migration -p protocol=naive`, end to end.
// Wall-clock rates of the model (steps of emulated CPUs), median of ROUNDS rounds, spread min..max. One JSON line.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  addPageCachePage,
  compactZone,
  explore,
  findScenario,
  Machine,
  MachineImage,
  machineFactory,
  migratePage,
  PROTOCOLS,
  removePageCachePage,
  resolveParams,
  smpCallFunctionMany,
  vmalloc,
} from '../dist/index.js';

const ROUNDS = 5;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const spread = (xs) => [Math.min(...xs), Math.max(...xs)];
const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;

/** CPU0 vmallocs a page and migrates it `count` times with `protocol`; CPU1 idles with interrupts on. */
function migrations(protocol, count) {
  const m = Machine.create({ cpus: 2, trace: false, kernel: {}, ipiDelivery: 'scheduled' });
  const kernel = m.kernel;
  m.load(0, function* (x) {
    yield x.sti();
    const va = yield* vmalloc(x, kernel, 4096);
    for (let i = 0; i < count; i++) yield* migratePage(x, kernel, va, protocol, { chunk: 8, taskCpu: 1 });
  });
  m.load(1, function* (x) {
    yield x.sti();
  });
  return MachineImage.capture(m);
}

const MIGRATIONS = 40;
const migrationRates = {};
for (const protocol of PROTOCOLS) {
  const image = migrations(protocol, MIGRATIONS);
  const machine = image.instantiate({ trace: false });
  let steps = 0;
  const rates = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    image.reset(machine);
    const start = process.hrtime.bigint();
    const result = machine.run({ maxSteps: 10_000_000 });
    if (result.outcome !== 'ok') throw new Error(`${protocol}: ${result.outcome}`);
    if (r > 0) rates.push(MIGRATIONS / seconds(start)); // the first round warms up
    steps = result.steps;
  }
  migrationRates[protocol] = { perSecond: median(rates), spread: spread(rates), stepsPerMigration: steps / MIGRATIONS };
}

// smp_call_function_many round trips.
const CALLS = 500;
const callImage = (() => {
  const m = Machine.create({ cpus: 2, trace: false, kernel: {} });
  const kernel = m.kernel;
  const nothing = function* nothing() {};
  m.load(0, function* (x) {
    for (let i = 0; i < CALLS; i++) yield* smpCallFunctionMany(x, kernel, [1], nothing, 0, true);
  });
  m.load(1, function* (x) {
    yield x.sti();
  });
  return MachineImage.capture(m);
})();
const callMachine = callImage.instantiate({ trace: false });
const callRates = [];
let callSteps = 0;
for (let r = 0; r < ROUNDS + 1; r++) {
  callImage.reset(callMachine);
  const start = process.hrtime.bigint();
  callSteps = callMachine.run({ maxSteps: 10_000_000 }).steps;
  if (r > 0) callRates.push(CALLS / seconds(start));
}

// Compaction: a zone of page-cache pages with every other one freed, compacted whole (explicit compaction).
const compactionImage = (() => {
  const m = Machine.create({ cpus: 1, trace: false, memory: 32 * 1024 * 1024, kernel: {} });
  const kernel = m.kernel;
  m.load(0, function* (x) {
    const ids = [];
    for (let id = 0; ; id++) {
      const pfn = yield x.atomic('zone', () => addPageCachePage(kernel, id));
      if (pfn < 0) break;
      ids.push(id);
    }
    for (const id of ids) {
      if (id % 2 === 1) continue;
      yield x.atomic('zone', () => {
        removePageCachePage(kernel, id);
        return 0;
      });
    }
    const r = yield* compactZone(x, kernel);
    compactionMoved = r.moved;
  });
  return MachineImage.capture(m);
})();
let compactionMoved = 0;
const compactionMachine = compactionImage.instantiate({ trace: false });
const compactionRates = [];
for (let r = 0; r < ROUNDS + 1; r++) {
  compactionImage.reset(compactionMachine);
  const start = process.hrtime.bigint();
  compactionMachine.run({ maxSteps: 50_000_000 });
  if (r > 0) compactionRates.push(compactionMoved / seconds(start));
}

// Exhaustive exploration of the switcheroo, 2 CPUs.
const scenario = findScenario('stack-migration');
const params = resolveParams(scenario, { protocol: 'ipi-switcheroo', rounds: 4 });
const explorations = [];
for (let r = 0; r < 3; r++) {
  const start = process.hrtime.bigint();
  const result = explore(machineFactory(scenario, params), { strategy: 'exhaustive', preemptions: 1 });
  const s = seconds(start);
  if (result.violations.length > 0 || !result.complete) throw new Error('the switcheroo should explore clean');
  explorations.push({ executionsPerSecond: result.executions / s, stepsPerSecond: result.steps / s, ...result });
}

// The CLI, end to end.
const bin = fileURLToPath(new URL('../bin/x86slice.js', import.meta.url));
const cliMs = [];
for (let r = 0; r < 5; r++) {
  const start = process.hrtime.bigint();
  try {
    execFileSync(process.execPath, [bin, 'explore', 'stack-migration', '-p', 'protocol=naive'], { stdio: 'ignore' });
  } catch (error) {
    if (error.status !== 1) throw error; // 1: the double fault, as expected
  }
  cliMs.push(seconds(start) * 1000);
}

console.log(
  JSON.stringify({
    migrations: migrationRates,
    compaction: { pagesPerSecond: median(compactionRates), spread: spread(compactionRates), pages: compactionMoved },
    smpCall: {
      roundTripsPerSecond: median(callRates),
      spread: spread(callRates),
      stepsPerRoundTrip: callSteps / CALLS,
    },
    switcherooExhaustive: {
      executions: explorations[0].executions,
      steps: explorations[0].steps,
      executionsPerSecond: median(explorations.map((e) => e.executionsPerSecond)),
      stepsPerSecond: median(explorations.map((e) => e.stepsPerSecond)),
    },
    exploreNaiveMs: median(cliMs),
    exploreNaiveSpreadMs: spread(cliMs),
  }),
);
