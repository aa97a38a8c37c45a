import { expect, test } from 'vitest';
import { explore, Machine, MachineImage, replay } from 'x86slice';

// A spinlock taken two ways: a test-and-set that is not atomic (load, then store), and xchg. Each CPU takes the
// lock, increments a shared counter inside it, and releases it; afterwards the counter must be 2.
const LOCK = 0xffffc90001000000n;
const COUNTER = 0xffffc90001000008n;

function buildLockedCounter(atomic: boolean) {
  return () => {
    const m = Machine.create({ cpus: 2, trace: false });
    m.map(LOCK, { writable: true }); // LOCK and COUNTER share this page
    for (const id of [0, 1]) {
      m.load(id, function* (x) {
        if (atomic) {
          // spin_lock: xchg until the old value was 0 (unlocked)
          for (;;) {
            const old: number = yield x.xchg(LOCK, 8, 1);
            if (old === 0) break;
            yield x.spinUntil(LOCK, 8, (v) => v === 0);
          }
        } else {
          // a broken lock: wait until free, then take it with a plain store
          yield x.spinUntil(LOCK, 8, (v) => v === 0);
          yield x.store(LOCK, 8, 1);
        }
        const v: number = yield x.load(COUNTER, 8);
        yield x.store(COUNTER, 8, v + 1);
        yield x.store(LOCK, 8, 0); // spin_unlock
      });
    }
    return m;
  };
}
const bothCounted = (m: Machine) => m.memory.read64(m.physicalAddress(COUNTER)!) === 2;

test('the exhaustive search proves the xchg lock and breaks the plain one', () => {
  const safe = explore(buildLockedCounter(true), { strategy: 'exhaustive', check: bothCounted });
  expect(safe.complete).toBe(true); // every interleaving was run...
  expect(safe.violations).toEqual([]); // ...and none loses an update

  const broken = explore(buildLockedCounter(false), { strategy: 'exhaustive', check: bothCounted });
  expect(broken.complete).toBe(true);
  expect(broken.violations).toMatchObject([{ kind: 'assertion' }]);
  const schedule = broken.violations[0]!.schedule;
  // Both CPUs see the lock free before either takes it: the schedule names that interleaving, and replays it.
  expect(replay(buildLockedCounter(false), schedule, { check: bothCounted }).kind).toBe('assertion');
});

test('an image instead of a build function: the same search, much faster', () => {
  const image = MachineImage.capture(buildLockedCounter(true)());
  const result = explore(image, { strategy: 'exhaustive', check: bothCounted });
  expect(result).toMatchObject({ complete: true, violations: [] });
  expect(result).toEqual(explore(buildLockedCounter(true), { strategy: 'exhaustive', check: bothCounted }));
});
