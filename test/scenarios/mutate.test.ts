import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_PHASES, PROTOCOLS } from '../../src/mm/migrate.ts';
import { formatPhases, parsePhases, phaseMutants } from '../../src/mm/migration-phases.ts';
import { runScenario } from '../../src/scenarios/catalogue.ts';
import { EQUIVALENT, KILLED_OUTSIDE, MUTATION_CONFIGS, mutate, protocolPhases } from '../../src/scenarios/mutate.ts';
import { exploreConfig } from '../../src/scenarios/mutate-explore.ts';

const SWITCHEROO = PROTOCOL_PHASES['ipi-switcheroo'];

describe('protocols as phase lists', () => {
  it('every built-in protocol is a phase list that reads back as written', () => {
    for (const name of PROTOCOLS) expect(formatPhases(parsePhases(PROTOCOL_PHASES[name]))).toBe(PROTOCOL_PHASES[name]);
    expect(formatPhases(protocolPhases('ipi-switcheroo'))).toBe(
      'ipi(check-current,copy,install,invlpg),wait,flush,free',
    );
  });

  it('a malformed phase list is refused, naming the text and the rule it breaks', () => {
    expect(() => parsePhases('clear-pte,flsh,copy')).toThrow(
      /protocol phases 'clear-pte,flsh,copy': 'flsh' is not a phase at character 11/,
    );
    expect(() => parsePhases('ipi(copy')).toThrow(/expected '\)'/);
    expect(() => parsePhases('ipi(ipi(copy))')).toThrow(/an ipi handler cannot send its own ipi phase/);
    expect(() => parsePhases('copy,,free')).toThrow(/expected a phase/);
  });

  it('the mutants of the switcheroo: each phase dropped, adjacent phases swapped, the waits dropped, in the handler too', () => {
    const changes = phaseMutants(parsePhases(SWITCHEROO)).map((m) => m.change);
    expect(changes).toEqual([
      'drop ipi',
      'drop wait',
      'drop flush',
      'drop free',
      'swap ipi and wait',
      'swap wait and flush',
      'swap flush and free',
      'in ipi: drop check-current',
      'in ipi: drop copy',
      'in ipi: drop install',
      'in ipi: drop invlpg',
      'in ipi: swap copy and install',
      'in ipi: swap install and invlpg',
      'drop the wait of flush',
    ]);
  });
});

describe('x86slice mutate stack-migration: every mutant of a clean protocol is killed, or docs/ says why not', () => {
  const configs = MUTATION_CONFIGS['stack-migration']!;
  const docs = readFileSync(new URL('../../docs/scenarios/migration.md', import.meta.url), 'utf8');
  // Where each protocol is clean (test/scenarios/migration-verdicts.test.ts proves it): only there does a
  // violation kill a mutant.
  const cleanIn: Readonly<Record<string, readonly string[]>> = {
    'ipi-switcheroo': ['remote=none, 1 TLB event', 'remote=reader, 1 TLB event'],
    'park-switcheroo': configs.map((c) => c.name),
  };

  it.each(Object.keys(cleanIn))(
    '%s',
    (protocol) => {
      const list = PROTOCOL_PHASES[protocol as keyof typeof PROTOCOL_PHASES];
      const equivalents = EQUIVALENT[list]!;
      const clean = configs.filter((c) => cleanIn[protocol]!.includes(c.name));
      for (const m of phaseMutants(parsePhases(list))) {
        const text = formatPhases(m.phases);
        if (equivalents[text] !== undefined || KILLED_OUTSIDE[list]?.[text] !== undefined) {
          expect(docs, `docs/scenarios/migration.md says why ${text} survives here`).toContain(`\`${text}\``);
          continue;
        }
        const killed = clean.some(
          (config) =>
            exploreConfig({
              scenario: 'stack-migration',
              protocol: text,
              params: {},
              config,
              stopAtViolation: true,
              budget: 5_000_000,
            }).violation !== undefined,
        );
        expect(killed, `${m.change} (${text}) is killed`).toBe(true);
      }
    },
    180_000,
  );
});

describe('bad input to mutate and the migration parameters', () => {
  it('a scenario with no mutation configurations, or a parameter the configurations set, is refused', async () => {
    await expect(mutate('stale-tlb', 'naive')).rejects.toThrow(
      /mutate: scenario 'stale-tlb' has no mutation configurations; it takes stack-migration, data-migration/,
    );
    await expect(mutate('stack-migration', 'naive', { rounds: 4 })).rejects.toThrow(
      /parameter rounds is set by each configuration/,
    );
  });

  it('-p protocol takes a built-in name or a phase list; anything else names the rule it breaks', () => {
    expect(() => runScenario('stack-migration', { protocol: 'switcheroo' })).toThrow(
      /migration protocol 'switcheroo' is not one of naive, no-wait, .*, nor a phase list: .*'switcheroo' is not a phase/,
    );
    expect(
      runScenario('stack-migration', { protocol: 'ipi(copy,install,invlpg),wait,flush,free' }).result.outcome,
    ).toBe('ok');
  });

  it('a remote accessor needs a third CPU, and says so', () => {
    expect(() => runScenario('stack-migration', { protocol: 'ipi-switcheroo', remote: 'csd' })).toThrow(
      /remote=csd needs a third CPU for the accessor \(the last CPU\): cpus=2 given, use cpus=3 or more/,
    );
  });
});
