import { describe, expect, it } from 'vitest';
import { explore } from '../../src/explore/explore.ts';
import { MachineImage } from '../../src/machine/image.ts';
import type { Machine } from '../../src/machine/machine.ts';
import { LITMUS, type LitmusTest, litmusMachine, litmusOutcome } from './fixtures/litmus.ts';

// The x86 memory-model litmus tests (fixtures/litmus.ts: the SDM §8.2.3 examples and the x86-TSO paper's tests),
// explored exhaustively on machines with store buffers: every outcome the architecture allows is reached, and no
// outcome it forbids. Each search collects the outcomes of the runs it ends (the final-state check sees each).
// The stateful search (`x86slice explore --strategy exhaustive`'s default) is held to the tables; naive enumeration
// (`reduction: 'none'`) must agree with it where it finishes (four operations or fewer); so must DPOR, but for the tests
// in DPOR_MISSES (see below).

type Search = 'dpor' | 'stateful' | 'none';

/**
 * The outcomes a search reaches on `test`'s machine with store buffers of `entries` (0: none), and whether it
 * finished. The stateful search and naive enumeration must; DPOR may run out of its budget (see DPOR_INCOMPLETE).
 */
function search(test: LitmusTest, entries: number, search: Search): { seen: Set<string>; complete: boolean } {
  const image = MachineImage.capture(litmusMachine(test, { storeBuffer: entries }));
  const seen = new Set<string>();
  const result = explore(image, {
    strategy: 'exhaustive',
    ...(search === 'stateful' ? { search: 'stateful' as const } : { reduction: search }),
    ...(search === 'dpor' ? { budget: DPOR_BUDGET } : {}),
    check: (m: Machine) => {
      seen.add(litmusOutcome(test, m));
      return true;
    },
  });
  expect(result.violations).toEqual([]);
  return { seen, complete: result.complete };
}

/** The outcomes a search that must finish reaches. */
function outcomes(test: LitmusTest, entries: number, s: Search): Set<string> {
  const r = search(test, entries, s);
  expect(r.complete).toBe(true);
  return r.seen;
}

/** DPOR's executions per test at most (the suite's time). */
const DPOR_BUDGET = 20_000;

const sorted = (s: Set<string>) => [...s].sort();

/**
 * Tests where the stateless DPOR search reached fewer outcomes than the stateful search: none. With sleep sets it
 * missed one (a finding of issue 19, with sequentially consistent memory too): CPU0 `xchg x; xchg y`, CPU1
 * `load x; load y`, CPU2 `load y; load x`, each load's value stored to a slot of its own; DPOR never reached
 * r1=1 r2=1 r3=0 r4=1 (CPU0's xchg x, CPU2 reads y, CPU0's xchg y, CPU2 reads x, then CPU1). Sleep sets are off
 * since (src/explore/exhaustive.ts), and "locked instructions have a total order" holds DPOR to it.
 */
const DPOR_MISSES: string[] = [];

/** Tests DPOR (no sleep sets) does not finish within DPOR_BUDGET executions: pinned, so a change is seen. */
const DPOR_INCOMPLETE: string[] = [
  'SB: loads may be reordered with older stores to other locations',
  'intra-processor forwarding: a CPU sees its own store early',
  'WRC: stores are transitively visible',
  'IRIW: stores are seen in a consistent order by other processors',
  'locked instructions have a total order',
  'n5: stores to one location are seen in one order',
  'n6: forwarding, while the other CPU overwrites and memory ends with the older store',
];

describe('memory-model litmus tests under exhaustive exploration (x86-TSO store buffers)', () => {
  const dporDiffers: string[] = [];
  const dporIncomplete: string[] = [];

  it.each(LITMUS.map((t) => [t.name, t] as const))('%s', (_name, test) => {
    const reached = outcomes(test, 4, 'stateful');
    for (const allowed of test.allowed) expect(reached, `allowed outcome ${allowed}`).toContain(allowed);
    for (const forbidden of test.forbidden) expect(reached, `forbidden outcome ${forbidden}`).not.toContain(forbidden);
    if (test.cpus.flat().length <= 4) expect(sorted(outcomes(test, 4, 'none'))).toEqual(sorted(reached));
    const dpor = search(test, 4, 'dpor');
    for (const o of dpor.seen) expect(reached, `DPOR's outcome ${o}`).toContain(o);
    if (!dpor.complete) dporIncomplete.push(test.name);
    else if (dpor.seen.size !== reached.size) dporDiffers.push(test.name);
  });

  it('DPOR, where it finishes, reaches every outcome the stateful search does (sleep sets, which missed one, are off)', () => {
    expect(dporDiffers).toEqual(DPOR_MISSES);
    // Without sleep sets, DPOR does not finish these within DPOR_BUDGET executions; the stateful search does.
    expect(dporIncomplete).toEqual(DPOR_INCOMPLETE);
  });

  it('DPOR reaches the outcome sleep sets hid: locked instructions, sequentially consistent, every outcome', () => {
    const locked = LITMUS.find((t) => t.name === 'locked instructions have a total order')!;
    const dpor = search(locked, 0, 'dpor');
    expect(dpor.complete).toBe(true);
    expect(sorted(dpor.seen)).toEqual(sorted(outcomes(locked, 0, 'stateful')));
  });

  it('without store buffers, store buffering is gone: both loads never read 0 (sequential consistency)', () => {
    const sb = LITMUS.find((t) => t.name.startsWith('SB:'))!;
    expect(outcomes(sb, 0, 'stateful')).not.toContain('r1=0 r2=0');
    expect(outcomes(sb, 4, 'stateful')).toContain('r1=0 r2=0');
  });

  it('a one-entry buffer still allows store buffering: a load passes the one store it holds', () => {
    const sb = LITMUS.find((t) => t.name.startsWith('SB:'))!;
    expect(outcomes(sb, 1, 'stateful')).toContain('r1=0 r2=0');
  });
});
