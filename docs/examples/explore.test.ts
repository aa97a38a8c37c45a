import { expect, test } from 'vitest';
import { explore, Machine, replay } from 'x86slice';

test('explore finds a lost update, and its schedule becomes a regression test', () => {
  // Two CPUs increment one counter with a plain load and store (no lock, no cmpxchg).
  const build = () => {
    const m = Machine.create({ cpus: 2, trace: false });
    const counter = m.map(0xffffc90001000000n, { writable: true });
    for (const id of [0, 1]) {
      m.load(id, function* (x) {
        const v: number = yield x.load(counter, 8);
        yield x.store(counter, 8, v + 1);
      });
    }
    return m;
  };
  const bothCounted = (m: Machine) => m.memory.read64(m.physicalAddress(0xffffc90001000000n)!) === 2;

  const result = explore(build, { strategy: 'pct', budget: 100, seed: 1, check: bothCounted });
  expect(result.violations).toMatchObject([{ kind: 'assertion', schedule: '0,1' }]);

  // The counterexample, pasted into a test: CPU0 loads, then CPU1 runs to its end, then CPU0 stores what it read.
  expect(replay(build, '0,1', { check: bothCounted }).kind).toBe('assertion');
  expect(replay(build, '0,0', { check: bothCounted }).kind).toBeUndefined(); // CPU0 finishes first: no loss
});
