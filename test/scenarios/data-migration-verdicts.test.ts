import { describe, expect, it } from 'vitest';
import { replay } from '../../src/explore/explore.ts';
import { findScenario } from '../../src/scenarios/catalogue.ts';
import { MUTATION_CONFIGS } from '../../src/scenarios/mutate.ts';
import { exploreConfig } from '../../src/scenarios/mutate-explore.ts';
import { resolveParams } from '../../src/scenarios/scenario.ts';
import { machineFactory } from '../../src/scenarios/scenario-module.ts';

// data-migration's verdicts in the configuration `x86slice mutate data-migration` uses: the mutation check's
// premise (test/scenarios/mutate.test.ts explores mutants only where these say the protocol is clean).

type Verdict = 'clean' | 'oops' | 'use-after-free';

describe('data-migration verdicts (the mutation check configuration: rounds=2, one TLB event of any mapped page)', () => {
  const config = MUTATION_CONFIGS['data-migration']![0]!;
  const expected: Readonly<Record<string, Verdict>> = {
    naive: 'oops',
    'no-wait': 'use-after-free',
    'migration-entry': 'clean',
    'ipi-switcheroo': 'clean',
    // flush-others leaves out the migrating CPU, which wrote the page first: its own stale entry.
    'switcheroo-entry': 'use-after-free',
    'park-switcheroo': 'clean',
  };
  it.each(Object.entries(expected))(
    '%s: %s',
    (protocol, verdict) => {
      const found = exploreConfig({
        scenario: 'data-migration',
        protocol,
        params: {},
        config,
        stopAtViolation: true,
        budget: 5_000_000,
      });
      if (verdict === 'clean') {
        expect(found.violation).toBeUndefined();
        expect(found.complete).toBe(true);
        return;
      }
      expect(found.violation).toBe(verdict);
      const s = findScenario('data-migration');
      expect(replay(machineFactory(s, resolveParams(s, { ...config.params, protocol })), found.schedule!).kind).toBe(
        verdict,
      );
    },
    120_000,
  );
});
