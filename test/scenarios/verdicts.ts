import { expect } from 'vitest';
import { replay } from '../../src/explore/explore.ts';
import { findScenario } from '../../src/scenarios/catalogue.ts';
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
