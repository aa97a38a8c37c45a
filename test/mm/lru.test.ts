import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LRU, LruLists } from '../../src/mm/lru.ts';

const FIRST = 100;
const FRAMES = 32;

type Op =
  | { kind: 'add'; frame: number; list: 1 | 2 }
  | { kind: 'remove' | 'isolate' | 'putback'; frame: number }
  | { kind: 'drop'; id: number; list: 1 | 2 };

const list = fc.constantFrom(LRU.FILE, LRU.ANON);
const frame = fc.nat(FRAMES - 1);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('add' as const), frame, list }),
  fc.record({ kind: fc.constantFrom('remove' as const, 'isolate' as const, 'putback' as const), frame }),
  fc.record({ kind: fc.constant('drop' as const), id: fc.nat(40), list }),
);

/** Applies `ops` as reclaim and compaction do (each only where it is allowed); returns what each returned. */
function apply(lru: LruLists, ops: readonly Op[]): number[] {
  const out: number[] = [];
  for (const o of ops) {
    if (o.kind === 'drop') {
      out.push(lru.drop(o.id, o.list));
      continue;
    }
    const pfn = FIRST + o.frame;
    if (o.kind === 'add') {
      if (lru.kindOf(pfn) === LRU.NONE) lru.add(pfn, o.frame + 40 * (o.list - 1), o.list);
    } else if (o.kind === 'remove') out.push(lru.remove(pfn));
    else if (o.kind === 'isolate') out.push(lru.isolate(pfn));
    else if (lru.isolated(pfn)) out.push(lru.putback(pfn, pfn) ? 1 : 0);
  }
  return out;
}

function state(lru: LruLists): unknown {
  const words: number[] = [];
  lru.stateWords(words);
  const frames = Array.from({ length: FRAMES }, (_, f) => [lru.kindOf(FIRST + f), lru.idOf(FIRST + f)]);
  return { words, frames };
}

describe('going back to a saved state (the stateful checker)', () => {
  it('property: copyFrom, which copies nothing when no write came since the lists were shared, leaves them as a restore does', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 40 }),
        fc.array(op, { maxLength: 20 }),
        fc.array(op, { minLength: 1, maxLength: 40 }),
        (before, after, later) => {
          const lru = new LruLists(FIRST, FRAMES);
          apply(lru, before);
          const saved = lru.clone();
          const expected = state(saved);
          apply(lru, after); // none at all, or only refused ones, in some runs: the lists are still shared
          lru.copyFrom(saved);
          expect(state(lru)).toEqual(expected);
          // Its future is a restored copy's, and the saved lists are left as they were.
          const restored = new LruLists(FIRST, FRAMES);
          restored.restore(saved);
          expect(apply(lru, later)).toEqual(apply(restored, later));
          expect(state(lru)).toEqual(state(restored));
          expect(state(saved)).toEqual(expected);
          lru.copyFrom(saved);
          expect(state(lru)).toEqual(expected);
        },
      ),
      { numRuns: 300, seed: 5 },
    );
  });

  it('a write after going back copies the arrays first: the saved lists do not change', () => {
    const lru = new LruLists(FIRST, FRAMES);
    lru.add(FIRST, 1, LRU.FILE);
    const saved = lru.clone();
    lru.copyFrom(saved);
    lru.add(FIRST + 1, 2, LRU.FILE);
    lru.remove(FIRST);
    expect([...saved.entries(LRU.FILE)]).toEqual([[1, FIRST]]);
    lru.copyFrom(saved);
    expect([...lru.entries(LRU.FILE)]).toEqual([[1, FIRST]]);
  });
});
