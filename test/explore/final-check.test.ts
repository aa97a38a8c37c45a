import { describe, expect, it } from 'vitest';
import { explore, replay } from '../../src/explore/explore.ts';
import { exploreParallel } from '../../src/explore/parallel.ts';
import { Machine } from '../../src/machine/machine.ts';
import { InputError } from '../../src/mmu/input-error.ts';

// The final-state check's contract (FinalCheck): true is ok; false is an `assertion` violation with the generic
// message; a non-empty string is an `assertion` violation whose message is that string. Anything else is refused.

const COUNTER = 0xffffc90001000000n;

/** Two CPUs increment one counter with a plain load and store: a lost update under some interleavings. */
function racyCounter() {
  const m = Machine.create({ cpus: 2, trace: false });
  const counter = m.map(COUNTER, { writable: true });
  for (const id of [0, 1]) {
    m.load(id, function* (x) {
      const v: number = yield x.load(counter, 8);
      yield x.store(counter, 8, v + 1);
    });
  }
  return m;
}
const count = (m: Machine) => m.memory.read64(m.physicalAddress(COUNTER)!);
const LOST = '0,1'; // CPU0 loads; CPU1 loads and stores; CPU0 stores what it read: one update is lost
const FINE = ''; // CPU0 runs to its end, then CPU1

describe('the final-state check', () => {
  it('a check returning true passes, and false is a violation with the generic message', () => {
    const check = (m: Machine) => count(m) === 2;
    expect(replay(racyCounter, FINE, { check })).toMatchObject({ kind: undefined, message: undefined });
    expect(replay(racyCounter, LOST, { check })).toMatchObject({
      kind: 'assertion',
      message: 'the final-state check failed',
    });
  });

  it('a check returning a reason string is a violation whose message is that string, in explore and replay', () => {
    const check = (m: Machine) => count(m) === 2 || `the counter is ${count(m)}, not 2: an update was lost`;
    expect(replay(racyCounter, FINE, { check }).kind).toBeUndefined();
    expect(replay(racyCounter, LOST, { check })).toMatchObject({
      kind: 'assertion',
      message: 'the counter is 1, not 2: an update was lost',
    });
    const result = explore(racyCounter, { strategy: 'exhaustive', check });
    expect(result.violations).toMatchObject([
      { kind: 'assertion', message: 'the counter is 1, not 2: an update was lost' },
    ]);
  });

  it('a reason string from a worker-side check reaches the violation', async () => {
    const source = {
      module: new URL('./fixtures/counters.ts', import.meta.url).href,
      export: 'countersWithReason',
      args: [2, 1],
    };
    const result = await exploreParallel(source, { strategy: 'exhaustive', workers: 2 });
    expect(result.violations).toMatchObject([{ kind: 'assertion', message: 'the counter is 1, not 2' }]);
  }, 60_000);

  it('a check returning undefined is refused, naming the value and the rule', () => {
    // The classic slip: a check that only returns on failure. It must not turn every run into a violation.
    const check = ((m: Machine) => {
      if (count(m) !== 2) return false;
    }) as never;
    const rule =
      'it must return true (ok), false (a violation) or a non-empty string (a violation, with that string as its ' +
      'message): return true when the state is fine';
    expect(() => replay(racyCounter, FINE, { check })).toThrow(InputError);
    expect(() => replay(racyCounter, FINE, { check })).toThrow(`replay check returned undefined; ${rule}`);
    expect(() => explore(racyCounter, { strategy: 'exhaustive', check })).toThrow(
      `explore check returned undefined; ${rule}`,
    );
    expect(() => explore(racyCounter, { strategy: 'random', budget: 5, check })).toThrow(InputError);
  });

  it.each([
    ['an empty string', '', "returned ''", 'a reason must say something: return true when the state is fine'],
    ['a blank string', '  ', "returned '  '", 'a reason must say something'],
    ['a number', 1, 'returned 1', 'return true when the state is fine'],
    ['null', null, 'returned null', 'return true when the state is fine'],
    ['a Promise', Promise.resolve(true), 'returned a Promise', 'the check must be synchronous'],
  ])('a check returning %s is refused, naming the value', (_name, value, named, why) => {
    const check = (() => value) as never;
    expect(() => replay(racyCounter, FINE, { check })).toThrow(named);
    expect(() => replay(racyCounter, FINE, { check })).toThrow(why);
    expect(() => explore(racyCounter, { strategy: 'exhaustive', check })).toThrow(InputError);
  });

  it('a bad answer in a state only the minimiser reaches is refused, not read as "no violation"', () => {
    // One random execution, which loses an update: the search itself only ever sees the counter at 1. The
    // minimiser's shorter schedules reach 2, where this check gives no answer: that is refused too, rather than
    // taken to mean the shorter schedule does not violate.
    const check = ((m: Machine) => (count(m) === 2 ? undefined : 'lost')) as never;
    const seed = [1, 2, 3, 4, 5, 6, 7, 8].find(
      (s) =>
        explore(racyCounter, { strategy: 'random', budget: 1, seed: s, check: (m) => count(m) === 2 }).violations
          .length > 0,
    );
    expect(seed).toBeDefined();
    expect(() => explore(racyCounter, { strategy: 'random', budget: 1, seed: seed!, check })).toThrow(
      /^explore check returned undefined; /,
    );
  });
});
