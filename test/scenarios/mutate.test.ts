import { describe, expect, it } from 'vitest';
import { PROTOCOL_PHASES, PROTOCOLS } from '../../src/mm/migrate.ts';
import { formatPhases, parsePhases, phaseMutants } from '../../src/mm/migration-phases.ts';
import { runScenario } from '../../src/scenarios/catalogue.ts';
import { MUTATION_CONFIGS, mutate, protocolPhases } from '../../src/scenarios/mutate.ts';
import { describeMutantsKilled, type KilledBy } from './verdicts.ts';

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

// Where each protocol is clean in stack-migration (test/scenarios/migration-verdicts.test.ts proves it): only there
// does a violation kill a mutant. data-migration's mutants: mutate-data-migration.test.ts.
const CLEAN_IN: Readonly<Record<string, readonly string[]>> = {
  'ipi-switcheroo': ['remote=none, 1 TLB event', 'remote=reader, 1 TLB event'],
  'switcheroo-entry': ['remote=csd', 'remote=completion'],
  'park-switcheroo': MUTATION_CONFIGS['stack-migration']!.map((c) => c.name),
};

// The configuration that kills each mutant, as `x86slice mutate` reports it: the first, in MUTATION_CONFIGS' order,
// whose quick look finds a violation, else whose complete exploration does (src/scenarios/mutant-kill.ts).
const KILLED_BY: Readonly<Record<string, KilledBy>> = {
  'ipi-switcheroo': {
    'drop ipi': 'remote=none, 1 TLB event',
    'drop flush': 'remote=reader, 1 TLB event',
    'drop free': 'remote=none, 1 TLB event',
    'swap flush and free': 'remote=reader, 1 TLB event',
    'in ipi: drop copy': 'remote=none, 1 TLB event',
    'in ipi: drop install': 'remote=none, 1 TLB event',
    'in ipi: drop invlpg': 'remote=none, 1 TLB event',
    'in ipi: swap copy and install': 'remote=reader, 1 TLB event',
    'in ipi: swap install and invlpg': 'remote=none, 1 TLB event',
    'drop the wait of flush': 'remote=reader, 1 TLB event',
  },
  'switcheroo-entry': {
    'drop migration-entry': 'remote=csd',
    'drop flush-others': 'remote=csd',
    'drop ipi': 'remote=csd',
    'drop wait': 'remote=csd',
    'drop free': 'remote=csd',
    'swap migration-entry and flush-others': 'remote=csd',
    'swap flush-others and ipi': 'remote=csd',
    'swap ipi and wait': 'remote=csd',
    'swap wait and free': 'remote=csd',
    'in ipi: drop copy': 'remote=csd',
    'in ipi: drop install': 'remote=csd',
    'in ipi: drop invlpg': 'remote=csd',
    'in ipi: swap copy and install': 'remote=csd',
  },
  'park-switcheroo': {
    'drop park': 'remote=reader, 1 TLB event',
    'drop ipi': 'remote=none, 1 TLB event',
    'drop wait': 'remote=none, 1 TLB event',
    'drop unpark': 'remote=reader, 1 TLB event',
    'drop free': 'remote=none, 1 TLB event',
    'swap park and ipi': 'remote=csd',
    'swap ipi and wait': 'remote=none, 1 TLB event',
    'swap wait and unpark': 'remote=reader, 1 TLB event',
    'in ipi: drop copy': 'remote=none, 1 TLB event',
    'in ipi: drop install': 'remote=none, 1 TLB event',
    'in ipi: drop invlpg': 'remote=none, 1 TLB event',
    'in ipi: swap install and invlpg': 'remote=none, 1 TLB event',
  },
};

describeMutantsKilled('stack-migration', CLEAN_IN, KILLED_BY);

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

  it('a remote accessor with the scheduler needs a CPU beside the scheduler CPUs, and says how many', () => {
    expect(() =>
      runScenario('stack-migration', { protocol: 'ipi-switcheroo', remote: 'reader', sched: 'migrate', cpus: 3 }),
    ).toThrow(
      /sched=migrate with remote=reader needs a CPU for the reader beside CPU0 and the scheduler's \(CPU1, CPU2\): cpus=3 given, use cpus=4 or more/,
    );
  });

  it('with the scheduler and any remote accessor, the round-robin run of the switcheroo ends ok', () => {
    for (const remote of ['reader', 'csd', 'completion']) {
      for (const [sched, cpus] of [
        ['preempt', 3],
        ['migrate', 4],
      ] as const) {
        const { result } = runScenario('stack-migration', {
          protocol: 'ipi-switcheroo',
          remote,
          sched,
          cpus,
          rounds: 3,
        });
        expect(result.outcome, `${remote}, ${sched}`).toBe('ok');
      }
    }
  });
});
