import { describe, expect, it } from 'vitest';
import { replay } from '../../src/explore/explore.ts';
import { findScenario } from '../../src/scenarios/catalogue.ts';
import { MUTATION_CONFIGS } from '../../src/scenarios/mutate.ts';
import { resolveParams } from '../../src/scenarios/scenario.ts';
import { machineFactory } from '../../src/scenarios/scenario-module.ts';
import { expectVerdict } from './verdicts.ts';

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
      it(title, () => expectVerdict('stack-migration', protocol, config, expected, 5_000_000), 120_000);
    });
  }
});

describe('stack-migration with the scheduler (sched=preempt|migrate, rounds=3, no TLB event)', () => {
  const s = findScenario('stack-migration');
  const params = (protocol: string, sched: string) =>
    resolveParams(s, { protocol, sched, rounds: 3, ...(sched === 'migrate' ? { cpus: 3 } : {}) });

  it('sched=migrate: a switcheroo without check-current copies the page under a task that moved to CPU2, and loses its push', () => {
    const build = machineFactory(s, params('ipi(copy,install,invlpg),wait,flush,free', 'migrate'));
    const run = replay(build, '1*1107,0,1*12,0*32,1*14,deliver:1:0xec,1*31,deliver:1:0xfb,1*25,2');
    expect(run.kind).toBe('lost-write');
    expect(run.message).toMatch(/^lost write: CPU 2 stores to 0xffffc91000003ff8 in frame 0x808/);
    // With the check, the same schedule is no violation: the handler sees the task gone and the protocol holds it off.
    const checked = replay(
      machineFactory(s, params('ipi-switcheroo', 'migrate')),
      '1*1107,0,1*12,0*32,1*14,deliver:1:0xec,1*31,deliver:1:0xfb,1*25,2',
    );
    expect(checked.kind).toBeUndefined();
  });

  it('sched=migrate: the switcheroo loses a write when the task moves back before the flush; pinned until the flush, it does not', () => {
    // A tick moves the task to CPU2, the switcheroo copies there, a second tick asks it back to CPU1, whose TLB
    // still maps the old frame (docs/scenarios/migration.md, the move back).
    const moveBack =
      '1*1107,0,1*12,0*32,1*2,2*3,deliver:1:0xec,1*31,2*18,deliver:1:0xfb,1*20,0*22,deliver:2:0xec,deliver:2:0xfb';
    const run = replay(machineFactory(s, params('ipi-switcheroo', 'migrate')), moveBack);
    expect(run.kind).toBe('lost-write');
    expect(run.message).toMatch(/^lost write: CPU 1 stores to 0xffffc91000003ff0 in frame 0x808/);
    // The handler pins the task (migrate_disable()) and CPU0 unpins it after the flush: the second tick's request
    // is dropped, the task finishes on CPU2, and nothing reaches the old frame.
    const pinned = 'ipi(check-current,pin,copy,install,invlpg),wait,flush,unpin,free';
    expect(replay(machineFactory(s, params(pinned, 'migrate')), moveBack).kind).toBeUndefined();
    // It is the pin that does it: the same list without it loses the write as the switcheroo does.
    const unpinned = replay(
      machineFactory(s, params('ipi(check-current,copy,install,invlpg),wait,flush,unpin,free', 'migrate')),
      moveBack,
    );
    expect(unpinned.kind).toBe('lost-write');
  });

  it.each(['preempt', 'migrate'])(
    'sched=%s, round-robin: the switcheroo moves the page and the task finishes',
    (sched) => {
      const run = replay(machineFactory(s, params('ipi-switcheroo', sched)), '');
      expect(run.kind).toBeUndefined();
    },
  );
});
