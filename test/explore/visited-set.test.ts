import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAIR_SEGMENTS } from '../../src/explore/pair-set.ts';
import { COMPACT_AT, collisionProbability, VisitedSet } from '../../src/explore/visited-set.ts';
import { fingerprints, fingerprintsOf } from './fixtures/snapshot-bytes.ts';

/** Every fingerprint `set` holds, as "hi:lo". */
function contents(set: VisitedSet): Set<string> {
  return new Set(fingerprintsOf(set.export().segments).map(([hi, lo]) => `${hi}:${lo}`));
}

describe('the visited set', () => {
  it('stores each fingerprint once, 0:0 included, in 8-byte slots while small: at most 16 bytes a state', () => {
    const set = new VisitedSet(16);
    expect(set.add(0, 0)).toBe(true);
    expect(set.add(0, 0)).toBe(false);
    expect(set.has(0, 2)).toBe(false);
    const n = 200_000;
    let added = 0;
    for (const [hi, lo] of fingerprints(n)) if (set.add(hi, lo)) added++;
    expect(added).toBe(n);
    expect(set.size).toBe(n + 1);
    expect(set.compact).toBe(false);
    expect(set.bytes / set.size).toBeLessThanOrEqual(16);
    let found = 0;
    for (const [hi, lo] of fingerprints(n)) if (set.has(hi, lo) && !set.add(hi, lo)) found++;
    expect(found).toBe(n);
  });

  it('turns to 6-byte slots at COMPACT_AT states, keeping every fingerprint, and is taken up so', () => {
    const set = new VisitedSet();
    const pairs = fingerprints(COMPACT_AT + 500_000);
    let added = 0;
    let compactBefore = true;
    for (let k = 0; k < pairs.length; k++) {
      if (set.add(pairs[k]![0], pairs[k]![1])) added++;
      if (k === COMPACT_AT - 2) compactBefore = set.compact;
    }
    expect([added, compactBefore]).toEqual([pairs.length, false]);
    expect(set.compact).toBe(true);
    expect(set.size).toBe(pairs.length);
    expect(set.bytes / set.size).toBeLessThanOrEqual(12.5);
    expect(pairs.every(([hi, lo]) => set.has(hi, lo) && !set.add(hi, lo))).toBe(true);
    expect(set.has(123, 456)).toBe(false);
    const copy = VisitedSet.from(set.export().segments, set.size);
    expect(copy.compact).toBe(true);
    expect(pairs.every(([hi, lo]) => copy.has(hi, lo))).toBe(true);
  });

  it('answers as a set of pairs does, and a set taken up from its export holds the same (property)', () => {
    // Few distinct high halves, so that fingerprints crowd into a few segments and probe past each other.
    const pair = fc.tuple(fc.constantFrom(0, 1, -1, 0x7fffffff, -0x80000000, 0x04000000), fc.integer());
    fc.assert(
      fc.property(fc.array(pair, { maxLength: 3000 }), (pairs) => {
        const set = new VisitedSet();
        const model = new Set<string>();
        for (const [hi, lo] of pairs) {
          const key = `${hi}:${hi === 0 && lo === 0 ? 1 : lo}`;
          expect(set.add(hi, lo)).toBe(!model.has(key));
          model.add(key);
        }
        expect(set.size).toBe(model.size);
        for (const [hi, lo] of pairs) expect(set.has(hi, lo ^ 0x55)).toBe(model.has(`${hi}:${lo ^ 0x55}`));
        const copy = VisitedSet.from(set.export().segments, set.size);
        expect(contents(copy)).toEqual(model);
        for (const [hi, lo] of pairs) expect(copy.add(hi, lo)).toBe(false);
      }),
      { numRuns: 60 },
    );
  });

  it('takes up the one table of a search saved before segments, its fingerprints added again', () => {
    const pairs = fingerprints(5_000);
    // Layout 1's table: one open-addressing table; where each fingerprint sits does not matter to the new set.
    const old = new Int32Array(2 * 8192);
    pairs.forEach(([hi, lo], k) => {
      old[2 * (k + 7)] = hi;
      old[2 * (k + 7) + 1] = lo;
    });
    const set = VisitedSet.from([old], pairs.length);
    expect(set.size).toBe(pairs.length);
    expect(set.export().segments).toHaveLength(PAIR_SEGMENTS);
    expect(pairs.every(([hi, lo]) => set.has(hi, lo))).toBe(true);
    expect(set.has(123, 456)).toBe(false);
  });

  it('refuses tables that do not hold the states they were saved with, or are cut into another number of segments', () => {
    const set = new VisitedSet();
    for (const [hi, lo] of fingerprints(1_000)) set.add(hi, lo);
    const segments = set.export().segments as readonly Int32Array[];
    expect(() => VisitedSet.from(segments, 1_001)).toThrow(
      /a visited table of 64 segments holds 1000 states, not the 1001 it was saved with/,
    );
    expect(() => VisitedSet.from(segments.slice(0, 3), 3)).toThrow(/3 segments .*cannot be taken up: this set has 64/);
    expect(() => VisitedSet.from([new Int32Array(3)], 0)).toThrow(/has a segment of 3 words/);
    expect(() => VisitedSet.from([new Int32Array(2), new Uint16Array(3)] as unknown as Int32Array[], 0)).toThrow(
      /mixes 8-byte and 6-byte segments/,
    );
    // A segment fuller than a set fills one (three quarters): the file is not a visited table.
    const crowded = segments.map((t) => t.slice());
    const t = crowded[0]!;
    let before = 0;
    for (let i = 0; i < t.length; i += 2) {
      if (t[i] !== 0 || t[i + 1] !== 0) before++;
      else t[i + 1] = 7 + i;
    }
    expect(() => VisitedSet.from(crowded, 1_000 - before + t.length / 2)).toThrow(
      /segment 0 fuller than three quarters/,
    );
    expect(() => new VisitedSet(0, 0)).toThrow(/memory budget must be positive bytes, not 0/);
  });

  it('reports the collision probability n^2 / 2^65', () => {
    expect(collisionProbability(2 ** 20)).toBe(2 ** -25);
    expect(collisionProbability(2 ** 40)).toBe(1);
  });
});
