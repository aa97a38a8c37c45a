import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { replay } from '../../src/explore/explore.ts';
import { PROTOCOL_PHASES } from '../../src/mm/migrate.ts';
import { formatPhases, parsePhases, phaseMutants } from '../../src/mm/migration-phases.ts';
import { findScenario } from '../../src/scenarios/catalogue.ts';
import { EQUIVALENT, MUTATION_CONFIGS } from '../../src/scenarios/mutate.ts';
import { exploreConfig, type MutationConfig } from '../../src/scenarios/mutate-explore.ts';
import { resolveParams } from '../../src/scenarios/scenario.ts';
import { machineFactory } from '../../src/scenarios/scenario-module.ts';

/**
 * What a verdict test expects of the stateful search in one configuration: `clean` (complete, no violation),
 * `open` (no violation, cut by the budget), or the kind of the first violation it finds.
 */
export type ExpectedVerdict = 'clean' | 'open' | string;

/**
 * Explores `protocol` on `scenario` in `config` with the stateful search (stopping at the first violation, at most
 * `budget` states) and checks the verdict; a violation's schedule must replay to the same kind.
 */
export function expectVerdict(
  scenario: string,
  protocol: string,
  config: MutationConfig,
  expected: ExpectedVerdict,
  budget: number,
): void {
  const found = exploreConfig({ scenario, protocol, params: {}, config, stopAtViolation: true, budget });
  if (expected === 'clean' || expected === 'open') {
    expect(found.violation).toBeUndefined();
    expect(found.complete).toBe(expected === 'clean');
    return;
  }
  expect(found.violation).toBe(expected);
  const s = findScenario(scenario);
  const build = machineFactory(s, resolveParams(s, { ...config.params, protocol }));
  expect(replay(build, found.schedule!).kind).toBe(expected);
}

/** By mutant (its change, as phaseMutants() names it): the configuration that kills it. */
export type KilledBy = Readonly<Record<string, string>>;

/**
 * Checks the mutation verdict of `protocol` on `scenario`: every mutant is either equivalent (and
 * docs/scenarios/migration.md says why), or killed by the configuration `killedBy` names, one
 * where the protocol itself is clean (`cleanIn`: the verdict tests prove it). Only that configuration is explored
 * (the `mutate` command looks at each quickly, in order, then explores them completely: mutant-kill.ts; this test
 * pins which one kills). The reasons for survivors are checked against docs/scenarios/migration.md.
 */
export function expectMutantsKilled(
  scenario: string,
  protocol: string,
  cleanIn: readonly string[],
  killedBy: KilledBy,
): void {
  const docs = readFileSync(new URL('../../docs/scenarios/migration.md', import.meta.url), 'utf8');
  const list = PROTOCOL_PHASES[protocol as keyof typeof PROTOCOL_PHASES];
  const equivalents = EQUIVALENT[scenario]?.[list] ?? {};
  const configs = MUTATION_CONFIGS[scenario]!;
  const named = new Set<string>();
  for (const m of phaseMutants(parsePhases(list))) {
    const text = formatPhases(m.phases);
    if (equivalents[text] !== undefined) {
      expect(docs, `docs/scenarios/migration.md says why ${text} survives in ${scenario}`).toContain(`\`${text}\``);
      continue;
    }
    const name = killedBy[m.change];
    expect(name, `the configuration that kills '${m.change}' (${text}) in ${scenario}`).toBeDefined();
    expect(cleanIn, `${protocol} is clean in '${name}', where '${m.change}' is killed`).toContain(name);
    named.add(m.change);
    const config = configs.find((c) => c.name === name)!;
    const found = exploreConfig({
      scenario,
      protocol: text,
      params: {},
      config,
      stopAtViolation: true,
      budget: 5_000_000,
    });
    expect(found.violation, `${m.change} (${text}) is killed in ${scenario} by ${name}`).toBeDefined();
  }
  // A mutant the table names that the protocol no longer has is a stale row.
  expect(Object.keys(killedBy).filter((change) => !named.has(change))).toEqual([]);
}

/**
 * The mutation verdicts of `scenario`, one test per protocol of `killedBy`: each protocol is clean in the
 * configurations `cleanIn` names for it, and each mutant is killed where `killedBy` says (expectMutantsKilled).
 */
export function describeMutantsKilled(
  scenario: string,
  cleanIn: Readonly<Record<string, readonly string[]>>,
  killedBy: Readonly<Record<string, KilledBy>>,
): void {
  describe(`x86slice mutate ${scenario}: every mutant of a clean protocol is killed, or docs/ says why not`, () => {
    it.each(Object.keys(killedBy))(
      '%s',
      (protocol) => expectMutantsKilled(scenario, protocol, cleanIn[protocol]!, killedBy[protocol]!),
      240_000,
    );
  });
}
