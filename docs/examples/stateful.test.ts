import { expect, test } from 'vitest';
import { explore, Machine, replay } from 'x86slice';

// Two CPUs each take a ticket from a shared counter with xchg-free read-modify-write (a load, then a store), then
// record it in their own slot. The invariant, checked on every state: two CPUs never hold the same ticket.
const NEXT = 0xffffc90001000000n;
const SLOTS = 0xffffc90001001000n;

function buildTickets() {
  const m = Machine.create({ cpus: 2, trace: false });
  m.map(NEXT, { writable: true });
  m.map(SLOTS, { writable: true });
  for (const id of [0, 1]) {
    m.load(id, function* (x) {
      const ticket: number = yield x.load(NEXT, 8);
      yield x.store(NEXT, 8, ticket + 1);
      yield x.store(SLOTS + 8n * BigInt(id), 8, ticket + 1); // 0 means "no ticket yet"
    });
  }
  return m;
}
const slot = (m: Machine, id: number) => m.memory.read64(m.physicalAddress(SLOTS)! + 8 * id);
const distinctTickets = (m: Machine) => slot(m, 0) === 0 || slot(m, 0) !== slot(m, 1);

test('the stateful search visits every reachable state once, and checks an invariant on each', () => {
  const result = explore(buildTickets, { strategy: 'exhaustive', search: 'stateful', invariant: distinctTickets });
  expect(result.complete).toBe(true); // every reachable state was visited, with no bound on preemptions
  expect(result.states).toBeLessThan(100); // each stored once, as a 64-bit fingerprint
  expect(result.violations).toMatchObject([{ kind: 'invariant' }]);
  // The schedule replays to the state where the invariant is false: both CPUs read the counter before either wrote.
  const schedule = result.violations[0]!.schedule;
  expect(replay(buildTickets, schedule, { invariant: distinctTickets }).kind).toBe('invariant');
});

test('a stateful search stopped by its budget is saved, and taken up later ends as one search does', () => {
  const options = { strategy: 'exhaustive', search: 'stateful', invariant: distinctTickets } as const;
  const whole = explore(buildTickets, options);
  // Stop after 10 states, keeping the search as it stands.
  const first = explore(buildTickets, { ...options, budget: 10, saveSearch: true });
  expect(first.complete).toBe(false);
  // Later (the CLI writes it to a file: --save-search FILE, then --resume FILE): go on from where it stopped.
  const rest = explore(buildTickets, { ...options, resume: first.snapshot! });
  expect(rest.complete).toBe(true);
  expect(rest.states).toBe(whole.states);
  expect(rest.violations.map((v) => v.schedule)).toEqual(whole.violations.map((v) => v.schedule));
});
