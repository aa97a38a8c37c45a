import { describe, expect, it } from 'vitest';
import { explore } from '../../src/explore/explore.ts';
import { decodeSnapshotHeader, type SearchSnapshot } from '../../src/explore/search-snapshot.ts';
import { StatefulSearch } from '../../src/explore/stateful.ts';
import { Machine } from '../../src/machine/machine.ts';
import { formatSchedule, parseSchedule } from '../../src/machine/schedule.ts';
import { frameReader } from './fixtures/frame-reader.ts';
import { snapshotBytes, tablesOf } from './fixtures/snapshot-bytes.ts';

// The stateful search's `first` path (StatefulOptions.first): the search goes down it before anything else, which
// changes the order it searches in, never what it searches. The search run again after a dead word was read takes
// the path that read it first (stateful.ts, stopAtDeadRead).

const NEXT = 0xffffc90001000000n;
const SLOTS = 0xffffc90001001000n;

/** Two CPUs take tickets with a load and a store each: both can read the counter before either writes it. */
function tickets(): Machine {
  const m = Machine.create({ cpus: 2, trace: false });
  m.map(NEXT, { writable: true });
  m.map(SLOTS, { writable: true });
  for (const id of [0, 1]) {
    m.load(id, function* (x) {
      const ticket: number = yield x.load(NEXT, 8);
      yield x.store(NEXT, 8, ticket + 1);
      yield x.store(SLOTS + 8n * BigInt(id), 8, ticket + 1);
    });
  }
  return m;
}
const slot = (m: Machine, id: number) => m.memory.read64(m.physicalAddress(SLOTS)! + 8 * id);
const distinct = (m: Machine) => slot(m, 0) === 0 || slot(m, 0) !== slot(m, 1);

function search(o: { first?: string; stopAtViolation: boolean; maxStates?: number; resume?: SearchSnapshot }) {
  return new StatefulSearch(tickets, {
    maxSteps: 1_000,
    tlbEvents: 0,
    check: undefined,
    invariant: distinct,
    maxStates: o.maxStates ?? 10_000,
    samples: 0,
    stopAtViolation: o.stopAtViolation,
    keepSnapshot: true,
    ...(o.first === undefined ? {} : { first: parseSchedule(o.first) }),
    ...(o.resume === undefined ? {} : { resume: o.resume }),
  }).run();
}

/** A snapshot through its byte form (what --save-search writes and --resume reads). */
function throughBytes(s: SearchSnapshot): SearchSnapshot {
  const bytes = snapshotBytes(s, {});
  const header = decodeSnapshotHeader(bytes, 'the snapshot');
  return header.complete(tablesOf(bytes, header));
}

describe("the stateful search's first path", () => {
  it('stopping at the first violation, a search given a path to one reports that path, not the one it meets first', () => {
    // CPU1 reads the counter, CPU0 reads it too, then each writes the same ticket. After its stores CPU1's program
    // returns: a stutter step, which the search takes before any other (stutter-step.ts).
    const path = '1,0,1*3,0*2';
    const plain = search({ stopAtViolation: true });
    expect(plain.violations).toHaveLength(1);
    expect(formatSchedule(plain.violations[0]!.schedule)).not.toBe(path);
    const guided = search({ first: path, stopAtViolation: true });
    expect(guided.violations.map((v) => [v.kind, formatSchedule(v.schedule)])).toEqual([['invariant', path]]);
  });

  it('searched to its end, a search given a path visits the same states and finds the same violations', () => {
    const plain = search({ stopAtViolation: false });
    const guided = search({ first: '1,0,1*3,0*2', stopAtViolation: false });
    expect(guided).toMatchObject({ complete: true, states: plain.states, finalStates: plain.finalStates });
    expect(guided.violations.map((v) => v.kind)).toEqual(plain.violations.map((v) => v.kind));
  });

  it('saved and resumed, a search given a path goes on in its order: it ends as the search run at once does', () => {
    const path = '1,0,1*3,0*2';
    const whole = search({ first: path, stopAtViolation: false });
    const cut = search({ first: path, stopAtViolation: false, maxStates: 8 });
    expect(cut.complete).toBe(false);
    // Resumed with no path given: the snapshot's own decides the order.
    const rest = search({ stopAtViolation: false, resume: throughBytes(cut.snapshot!) });
    const outcome = (r: typeof whole) => ({
      complete: r.complete,
      states: r.states,
      transitions: r.transitions,
      violations: r.violations.map((v) => `${v.kind}: ${formatSchedule(v.schedule)}`),
    });
    expect(outcome(rest)).toEqual(outcome(whole));
    expect(outcome(whole)).not.toEqual(outcome(search({ stopAtViolation: false })));
  });

  it('a path that leaves the choices a state has is followed as far as it goes', () => {
    // CPU 7 does not exist: the search follows '1' and then goes its own way, and still finds the violation.
    const guided = search({ first: '1,7,0', stopAtViolation: false });
    expect(guided.complete).toBe(true);
    expect(guided.violations.map((v) => v.kind)).toEqual(['invariant']);
  });

  it('a dead word read is reported with the schedule whose last step read it', () => {
    const result = explore(frameReader, { strategy: 'exhaustive', search: 'stateful' });
    const named = /by the last step of schedule '([^']*)'/.exec(result.deadWordsOff ?? '');
    expect(named, result.deadWordsOff).not.toBeNull();
    const entries = parseSchedule(named![1]!);
    // The reader is CPU0, after CPU1 has finished (and left an interrupt frame below its stack pointer).
    expect(entries.at(-1)).toBe(0);
    expect(result).toMatchObject({ deadWords: false, complete: true });
  });
});
