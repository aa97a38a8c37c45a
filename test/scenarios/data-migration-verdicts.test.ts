import { describe, it } from 'vitest';
import { MUTATION_CONFIGS } from '../../src/scenarios/mutate.ts';
import { expectVerdict } from './verdicts.ts';

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
    (protocol, verdict) => expectVerdict('data-migration', protocol, config, verdict, 5_000_000),
    120_000,
  );
});
