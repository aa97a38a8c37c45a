// What each of issue 19's event kinds costs the stateful search of the switcheroo (stack-migration -p
// protocol=ipi-switcheroo, 2 CPUs, one TLB event): the search without them, then with store buffers (drains),
// with paging-structure caches (their evictions), with `cacheEvents: 'mapped'` (large-page evictions and fills of
// every mapped translation), and with all of them. Each search is cut at --budget states (default 2,000,000); a
// search cut there is reported as incomplete, with its states per CPU second.
//
//   npx tsx bench/hardware-events.ts [--rounds N] [--chunk BYTES] [--budget STATES] [--only NAME]
//
// Prints one line per configuration, then one JSON line. CPU time is process.cpuUsage (user + system).
import { parseArgs } from 'node:util';
import { explore } from '../src/explore/explore.ts';
import { findScenario } from '../src/scenarios/catalogue.ts';
import { resolveParams } from '../src/scenarios/scenario.ts';
import { machineFactory } from '../src/scenarios/scenario-module.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '8' },
    chunk: { type: 'string', default: '512' },
    budget: { type: 'string', default: '2000000' },
    only: { type: 'string' },
  },
});

interface Config {
  readonly name: string;
  readonly storeBuffer: number;
  readonly psc: number;
  readonly cacheEvents: 'held' | 'mapped';
}

const CONFIGS: readonly Config[] = [
  { name: 'without', storeBuffer: 0, psc: 0, cacheEvents: 'held' },
  { name: 'drains (store-buffer=4)', storeBuffer: 4, psc: 0, cacheEvents: 'held' },
  { name: 'psc evictions (psc=4)', storeBuffer: 0, psc: 4, cacheEvents: 'held' },
  { name: 'mapped fills and large evictions', storeBuffer: 0, psc: 0, cacheEvents: 'mapped' },
  { name: 'all', storeBuffer: 4, psc: 4, cacheEvents: 'mapped' },
];

const rows: Record<string, unknown>[] = [];
for (const c of CONFIGS) {
  if (values.only !== undefined && !c.name.startsWith(values.only)) continue;
  const scenario = findScenario('stack-migration');
  const params = resolveParams(scenario, {
    protocol: 'ipi-switcheroo',
    rounds: values.rounds!,
    chunk: values.chunk!,
    'store-buffer': String(c.storeBuffer),
    psc: String(c.psc),
  });
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const r = explore(machineFactory(scenario, params), {
    strategy: 'exhaustive',
    search: 'stateful',
    tlbEvents: 1,
    cacheEvents: c.cacheEvents,
    budget: Number(values.budget),
    maxSteps: 200_000,
  });
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const row = {
    config: c.name,
    states: r.states,
    transitions: r.transitions,
    complete: r.complete,
    violations: r.violations.map((v) => v.kind),
    cpuSeconds: Number(cpuSeconds.toFixed(1)),
    wallSeconds: Number(((performance.now() - wall0) / 1000).toFixed(1)),
    statesPerCpuSecond: Math.round((r.states ?? 0) / cpuSeconds),
  };
  rows.push(row);
  console.log(
    `${c.name.padEnd(34)} ${String(row.states).padStart(10)} states ${String(row.transitions).padStart(11)} ` +
      `transitions ${row.complete ? 'complete' : 'cut by the budget'}, ${row.cpuSeconds} CPU s, ` +
      `${row.statesPerCpuSecond} states/CPU s, violations [${row.violations.join(', ')}]`,
  );
}
console.log(JSON.stringify({ rounds: Number(values.rounds), chunk: Number(values.chunk), rows }));
