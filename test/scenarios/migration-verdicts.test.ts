import { describe, expect, it } from 'vitest';
import { replay } from '../../src/explore/explore.ts';
import { findScenario } from '../../src/scenarios/catalogue.ts';
import { MUTATION_CONFIGS } from '../../src/scenarios/mutate.ts';
import { exploreConfig } from '../../src/scenarios/mutate-explore.ts';
import { resolveParams } from '../../src/scenarios/scenario.ts';
import { machineFactory } from '../../src/scenarios/scenario-module.ts';

// The verdict table of docs/scenarios/migration.md ("Verdicts: protocol x remote accessor"): each cell explored
// with the stateful search in mutate's configuration for that remote accessor; each counterexample replayed.

type Cell = 'clean' | 'double-fault' | 'use-after-free' | 'lost-write';

const TABLE: Readonly<Record<string, readonly [none: Cell, reader: Cell, csd: Cell, completion: Cell]>> = {
  naive: ['double-fault', 'double-fault', 'double-fault', 'double-fault'],
  'no-wait': ['use-after-free', 'use-after-free', 'use-after-free', 'use-after-free'],
  'migration-entry': ['double-fault', 'double-fault', 'double-fault', 'double-fault'],
  'ipi-switcheroo': ['clean', 'clean', 'lost-write', 'lost-write'],
  'switcheroo-entry': ['double-fault', 'double-fault', 'clean', 'clean'],
  'park-switcheroo': ['clean', 'clean', 'clean', 'clean'],
};

const CONFIGS = MUTATION_CONFIGS['stack-migration']!;

describe('stack-migration verdicts, protocol x remote accessor (sched=pinned, rounds=3)', () => {
  for (const [protocol, cells] of Object.entries(TABLE)) {
    cells.forEach((expected, i) => {
      const config = CONFIGS[i]!;
      const title =
        expected === 'clean'
          ? `${protocol}, ${config.name}: complete, no violation`
          : `${protocol}, ${config.name}: ${expected}, and the schedule replays it`;
      it(title, () => {
        const found = exploreConfig({
          scenario: 'stack-migration',
          protocol,
          params: {},
          config,
          stopAtViolation: true,
          budget: 5_000_000,
        });
        if (expected === 'clean') {
          expect(found.violation).toBeUndefined();
          expect(found.complete).toBe(true);
          return;
        }
        expect(found.violation).toBe(expected);
        const s = findScenario('stack-migration');
        const build = machineFactory(s, resolveParams(s, { ...config.params, protocol }));
        expect(replay(build, found.schedule!).kind).toBe(expected);
      }, 120_000);
    });
  }
});
