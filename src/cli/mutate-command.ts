import { availableParallelism } from 'node:os';
import { findScenario } from '../scenarios/catalogue.ts';
import { type MutationReport, mutate } from '../scenarios/mutate.ts';
import { parseParamStrings } from '../scenarios/scenario.ts';
import { integerOption } from './explore-command.ts';
import { type CliIo, EXIT_OK, EXIT_VIOLATION } from './io.ts';
import { paramStrings } from './params.ts';

// `x86slice mutate <scenario> -p protocol=P`: the mutation check of a protocol's verdict (src/scenarios/mutate.ts).

/** The report as text: the protocol in each configuration, then each mutant and what killed it. */
export function mutateText(r: MutationReport): string {
  const lines = [`mutate ${r.scenario} -p protocol=${r.protocol} (phases ${r.phases}):`, ''];
  lines.push('The protocol in each configuration (mutants are explored where it is clean):');
  for (const c of r.configurations) {
    const verdict = c.violation ?? (c.complete ? 'clean, complete' : 'cut by the budget');
    lines.push(`  ${c.config.padEnd(26)} ${verdict} (${c.states.toLocaleString('en-US')} states, ${c.ms} ms)`);
  }
  if (r.cleanConfigurations === 0) {
    lines.push(
      '',
      `The protocol is clean, completely, in no configuration: its own verdict is above, and its ${r.mutants.length} ` +
        'mutants are not checked (a mutant can only be told from a protocol that is clean).',
    );
    return lines.join('\n');
  }
  lines.push('', `${r.mutants.length} mutants:`);
  for (const m of r.mutants) {
    const what = m.killedBy
      ? `killed by ${m.killedBy.config}: ${m.killedBy.violation} (${m.killedBy.ms} ms)`
      : m.equivalent
        ? `survives, equivalent: ${m.equivalent}`
        : 'SURVIVES: no configuration kills it and no reason says it is equivalent (a gap in the scenario)';
    lines.push(`  ${m.change.padEnd(34)} ${m.phases}`, `  ${''.padEnd(34)} ${what}`);
    if (m.killedBy?.schedule !== undefined) {
      lines.push(`  ${''.padEnd(34)} schedule '${m.killedBy.schedule}'`);
    }
  }
  lines.push(
    '',
    `${r.killed} killed, ${r.equivalent} equivalent, ${r.survived} surviving, in ${(r.ms / 1000).toFixed(1)} s`,
  );
  return lines.join('\n');
}

export async function mutateCommand(
  ref: string,
  flags: Record<string, unknown>,
  argv: readonly string[],
  io: CliIo,
): Promise<number> {
  findScenario(ref); // an unknown scenario is refused before anything runs
  const params = parseParamStrings(paramStrings(argv, flags.param));
  const protocol = params.protocol ?? 'ipi-switcheroo';
  delete params.protocol;
  const budget = integerOption(argv, '--budget', flags.budget, [1, 1e9], 'states each exploration may store');
  const workers =
    integerOption(argv, '--workers', flags.workers, [1, 64], 'explorations at once, each on a worker thread') ??
    Math.min(availableParallelism(), 8);
  const r = await mutate(ref, protocol, params, { workers, ...(budget === undefined ? {} : { budget }) });
  io.out(flags.json ? JSON.stringify(r) : mutateText(r));
  // Exit 1 for a gap in the scenario, or for a protocol that is clean nowhere (its own violation, as explore says).
  return r.survived > 0 || r.cleanConfigurations === 0 ? EXIT_VIOLATION : EXIT_OK;
}
