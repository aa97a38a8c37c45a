import { describeMutantsKilled, type KilledBy } from './verdicts.ts';

// The mutation verdicts of data-migration (stack-migration's: mutate.test.ts). Each protocol is clean there with one
// TLB event (test/scenarios/data-migration-verdicts.test.ts proves it); each mutant is killed in that configuration.
const KILLED_BY: Readonly<Record<string, KilledBy>> = {
  'migration-entry': {
    'drop migration-entry': '1 TLB event',
    'drop flush': '1 TLB event',
    'drop copy': '1 TLB event',
    'drop install': '1 TLB event',
    'drop free': '1 TLB event',
    'swap migration-entry and flush': '1 TLB event',
    'swap flush and copy': '1 TLB event',
    'swap copy and install': '1 TLB event',
    'drop the wait of flush': '1 TLB event',
  },
  'ipi-switcheroo': {
    'drop ipi': '1 TLB event',
    'drop flush': '1 TLB event',
    'drop free': '1 TLB event',
    'in ipi: drop copy': '1 TLB event',
    'in ipi: drop install': '1 TLB event',
    'in ipi: drop invlpg': '1 TLB event',
    'in ipi: swap install and invlpg': '1 TLB event',
  },
  'park-switcheroo': {
    'drop ipi': '1 TLB event',
    'drop wait': '1 TLB event',
    'drop invlpg': '1 TLB event',
    'drop free': '1 TLB event',
    'swap ipi and wait': '1 TLB event',
    'in ipi: drop copy': '1 TLB event',
    'in ipi: drop install': '1 TLB event',
    'in ipi: drop invlpg': '1 TLB event',
    'in ipi: swap install and invlpg': '1 TLB event',
  },
};

describeMutantsKilled(
  'data-migration',
  Object.fromEntries(Object.keys(KILLED_BY).map((protocol) => [protocol, ['1 TLB event']])),
  KILLED_BY,
);
