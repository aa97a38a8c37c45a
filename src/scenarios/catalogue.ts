import { describeValue, InputError } from '../mmu/input-error.ts';
import { dfTriple, pfInPf } from './double-fault.ts';
import { dataMigration, ipiIrqsOffDeadlock, stackMigration } from './migration.ts';
import { type ParamValue, resolveParams, type Scenario, type ScenarioRun } from './scenario.ts';
import { stackOverflow } from './stack-overflow.ts';
import { staleTlb } from './stale-tlb.ts';
import { vmallocFaultScenario } from './vmalloc-fault.ts';
import { vmallocOrders } from './vmalloc-orders.ts';
import { vmapStackSwitch } from './vmap-stack-switch.ts';

/** Every scenario, in the order `x86slice list` shows them. */
export const SCENARIOS: readonly Scenario[] = [
  pfInPf,
  dfTriple,
  staleTlb,
  stackOverflow,
  vmallocFaultScenario,
  vmapStackSwitch,
  vmallocOrders,
  stackMigration,
  dataMigration,
  ipiIrqsOffDeadlock,
];

export function findScenario(name: string): Scenario {
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (!scenario) {
    throw new InputError(
      `unknown scenario ${describeValue(name)}; valid scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`,
    );
  }
  return scenario;
}

/** Builds and runs a scenario by name with `key=value` parameters (unknown ones are an InputError). */
export function runScenario(
  name: string,
  params: Readonly<Record<string, string | ParamValue>> = {},
  options: { readonly trace?: boolean; readonly timed?: boolean } = {},
): ScenarioRun {
  const scenario = findScenario(name);
  const resolved = resolveParams(scenario, params);
  const built = scenario.build(resolved, { trace: options.trace ?? true });
  // Timed: the cost model's schedule (each CPU's clock; the lowest steps), and a kernel that times itself.
  if (options.timed && built.machine.kernel) built.machine.kernel.timing = true;
  const { schedule: _schedule, ...rest } = built.run;
  const result = built.machine.run(options.timed ? { ...rest, schedule: 'timed' } : built.run);
  const report = built.report?.();
  return { scenario, params: resolved, machine: built.machine, result, ...(report ? { report } : {}) };
}
