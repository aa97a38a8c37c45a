import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collisionProbability, SEGMENTS, VisitedSet } from '../../src/explore/visited-set.ts';

/** Every fingerprint `set` holds, as "hi:lo" (read from its exported tables). */
function contents(set: VisitedSet): Set<string> {
  const out = new Set<string>();
  for (const t of set.export().segments) {
    for (let i = 0; i < t.length; i += 2) if (t[i] !== 0 || t[i + 1] !== 0) out.add(`${t[i]}:${t[i + 1]}`);
  }
  return out;
}

/** `n` distinct pseudo-random fingerprints (a fixed sequence). */
function fingerprints(n: number): [number, number][] {
  const out: [number, number][] = [];
  let x = 1;
  for (let i = 0; i < n; i++) {
    x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + i;
    out.push([x | 0, i]);
  }
  return out;
}

describe('the visited set', () => {
  it('stores each fingerprint once, 0:0 included, and grows keeping at most 16 bytes a state', () => {
    const set = new VisitedSet(16);
    expect(set.add(0, 0)).toBe(true);
    expect(set.add(0, 0)).toBe(false);
    expect(set.has(0, 2)).toBe(false);
    const n = 200_000;
    let added = 0;
    for (const [hi, lo] of fingerprints(n)) if (set.add(hi, lo)) added++;
    expect(added).toBe(n);
    expect(set.size).toBe(n + 1);
    expect(set.bytes / set.size).toBeLessThanOrEqual(16);
    let found = 0;
    for (const [hi, lo] of fingerprints(n)) if (set.has(hi, lo) && !set.add(hi, lo)) found++;
    expect(found).toBe(n);
  });

  it('grows a segment at a time, so that a growth needs a small part of the table beside it, not the table', () => {
    // One table grown whole needed the old and the new at once: 26.5 GB to grow past 995 million states.
    const set = new VisitedSet();
    for (const [hi, lo] of fingerprints(300_000)) set.add(hi, lo);
    const { segments } = set.export();
    expect(segments).toHaveLength(SEGMENTS);
    const largest = Math.max(...segments.map((t) => t.byteLength));
    expect(largest).toBeLessThanOrEqual(set.bytes / 32);
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

  it('fills segments to nine tenths rather than grow past its memory budget, then grows all the same', () => {
    // Sized for 48,000 states (1,000 slots a segment, 8 KB each), the budget has room for a growth (12 KB beside
    // the table while its fingerprints move) until 24 KB more are taken: seven segments grow.
    const budget = 64 * 8 * 1_000 + 3 * 8 * 1_500;
    const set = new VisitedSet(48_000, budget);
    const free = new VisitedSet(48_000);
    const start = set.bytes;
    const pairs = fingerprints(64 * 800);
    for (const [hi, lo] of pairs) {
      set.add(hi, lo);
      free.add(hi, lo);
    }
    const grownIn = (v: VisitedSet) => v.export().segments.filter((t) => t.length > 2 * 1_000).length;
    expect(grownIn(free)).toBeGreaterThan(48);
    expect(grownIn(set)).toBe(7);
    expect(set.bytes).toBe(start + 7 * 8 * 500);
    expect(set.bytes).toBeLessThanOrEqual(budget);
    expect(set.size).toBe(pairs.length);
    expect(pairs.every(([hi, lo]) => set.has(hi, lo) && !set.add(hi, lo))).toBe(true);
    // A set taken up from it keeps the segments as full, under the same budget.
    const copy = VisitedSet.from(set.export().segments, set.size, budget);
    expect(contents(copy)).toEqual(contents(set));
    // Past nine tenths a segment grows, budget or not (the alternative is a table that cannot take a state).
    for (const [hi, lo] of fingerprints(64 * 1_000)) copy.add(hi, lo);
    expect(copy.bytes).toBeGreaterThan(budget);
    for (const t of copy.export().segments) {
      let n = 0;
      for (let i = 0; i < t.length; i += 2) if (t[i] !== 0 || t[i + 1] !== 0) n++;
      expect(n).toBeLessThanOrEqual(Math.floor((t.length / 2) * 0.9));
    }
    expect(() => new VisitedSet(0, 0)).toThrow(/memory budget must be positive bytes, not 0/);
  });

  it('takes up the one table of a search saved before segments, its fingerprints added again', () => {
    const pairs = fingerprints(5_000);
    // Format 1's table: one open-addressing table; where each fingerprint sits does not matter to the new set.
    const old = new Int32Array(2 * 8192);
    pairs.forEach(([hi, lo], k) => {
      old[2 * (k + 7)] = hi;
      old[2 * (k + 7) + 1] = lo;
    });
    const set = VisitedSet.from([old], pairs.length);
    expect(set.size).toBe(pairs.length);
    expect(set.export().segments).toHaveLength(SEGMENTS);
    expect(pairs.every(([hi, lo]) => set.has(hi, lo))).toBe(true);
    expect(set.has(123, 456)).toBe(false);
  });

  it('refuses tables that do not hold the states they were saved with, or are cut into another number of segments', () => {
    const set = new VisitedSet();
    for (const [hi, lo] of fingerprints(1_000)) set.add(hi, lo);
    const { segments } = set.export();
    expect(() => VisitedSet.from(segments, 1_001)).toThrow(
      /a visited table of 64 segments holds 1000 states, not the 1001 it was saved with/,
    );
    expect(() => VisitedSet.from(segments.slice(0, 3), 3)).toThrow(/3 segments .*cannot be taken up: this set has 64/);
    expect(() => VisitedSet.from([new Int32Array(3)], 0)).toThrow(/has a segment of 3 words/);
    // A segment fuller than any set fills one (nine tenths): the file is not a visited table.
    const crowded = segments.map((t) => t.slice());
    const t = crowded[0]!;
    let before = 0;
    for (let i = 0; i < t.length; i += 2) {
      if (t[i] !== 0 || t[i + 1] !== 0) before++;
      else t[i + 1] = 7 + i;
    }
    expect(() => VisitedSet.from(crowded, 1_000 - before + t.length / 2)).toThrow(/segment 0 fuller than nine tenths/);
  });

  it('reports the collision probability n^2 / 2^65', () => {
    expect(collisionProbability(2 ** 20)).toBe(2 ** -25);
    expect(collisionProbability(2 ** 40)).toBe(1);
  });
});
