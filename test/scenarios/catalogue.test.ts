import { describe, expect, it } from 'vitest';
import { findScenario, SCENARIOS } from '../../src/scenarios/catalogue.ts';
import { SCENARIO_LIST } from '../../src/scenarios/listing.ts';

describe('the scenario catalogue', () => {
  it('x86slice list shows exactly the scenarios run can build, in the same order, with the same parameters', () => {
    expect(SCENARIO_LIST.map((s) => s.name)).toEqual(SCENARIOS.map((s) => s.name));
    for (const [i, info] of SCENARIO_LIST.entries()) {
      const { build, ...described } = SCENARIOS[i]!;
      expect(typeof build).toBe('function');
      expect(described).toEqual(info);
    }
  });

  it('an unknown scenario name is refused, naming it and the valid ones', () => {
    expect(() => findScenario('nope')).toThrow(/^unknown scenario 'nope'; valid scenarios: pf-in-pf, df-triple/);
  });
});
