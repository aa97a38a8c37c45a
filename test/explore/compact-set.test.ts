import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CompactSet, compactPairs, emptySegments, PARTS, SEGMENTS, SLOT_WORDS } from '../../src/explore/compact-set.ts';
import { fingerprints, fingerprintsOf, pairTables } from './fixtures/snapshot-bytes.ts';

/** Every fingerprint `segments` hold, as "hi:lo". */
function contentsOf(segments: readonly Uint16Array[]): Set<string> {
  return new Set(fingerprintsOf(segments).map(([hi, lo]) => `${hi}:${lo}`));
}

/** How many fingerprints each part of segment `t` holds. */
function perPart(t: Uint16Array): number[] {
  const partSlots = t.length / SLOT_WORDS / PARTS;
  const out = new Array<number>(PARTS).fill(0);
  for (let slot = 0; slot < t.length / SLOT_WORDS; slot++) {
    const i = SLOT_WORDS * slot;
    if ((t[i]! | t[i + 1]! | t[i + 2]!) !== 0) out[Math.floor(slot / partSlots)]!++;
  }
  return out;
}

const contents = (set: CompactSet) => contentsOf(set.export().segments);

/** `perPart` distinct fingerprints in every part of every segment, from `from` on (a fixed sequence). */
function evenly(perPart: number, from = 0): [number, number][] {
  const out: [number, number][] = [];
  for (let k = from; k < from + perPart; k++) {
    for (let top = 0; top < SEGMENTS * PARTS; top++) {
      out.push([(top << 16) | (Math.imul(k, 0x9e37) & 0xffff), Math.imul(top ^ k, 0x2c1b3c6d) ^ k]);
    }
  }
  return out;
}

describe("the visited set's compact form (6-byte slots)", () => {
  it('stores each fingerprint once, 0:0 included, in at most 12.5 bytes a state past two million', () => {
    const set = new CompactSet();
    expect(set.add(0, 0)).toBe(true);
    expect(set.add(0, 0)).toBe(false);
    expect(set.has(0, 2)).toBe(false);
    const n = 2_000_000;
    let added = 0;
    for (const [hi, lo] of fingerprints(n)) if (set.add(hi, lo)) added++;
    expect(added).toBe(n);
    expect(set.size).toBe(n + 1);
    // 6-byte slots at half to three quarters full, and the segments' bookkeeping.
    expect(set.bytes / set.size).toBeLessThanOrEqual(12.5);
    let found = 0;
    for (const [hi, lo] of fingerprints(n)) if (set.has(hi, lo) && !set.add(hi, lo)) found++;
    expect(found).toBe(n);
  });

  it('keeps all 64 bits: fingerprints that differ in one bit anywhere are two', () => {
    const set = new CompactSet();
    const base: [number, number] = [0x12345678, 0x9abcdef0 | 0];
    expect(set.add(...base)).toBe(true);
    for (let bit = 0; bit < 64; bit++) {
      const hi = bit >= 32 ? base[0] ^ (1 << (bit - 32)) : base[0];
      const lo = bit < 32 ? base[1] ^ (1 << bit) : base[1];
      expect(set.has(hi, lo)).toBe(false);
      expect(set.add(hi, lo)).toBe(true);
    }
    expect(set.size).toBe(65);
    expect(set.has(...base)).toBe(true);
  });

  it('makes a segment at its first fingerprint, so that a small search has a small set', () => {
    const set = new CompactSet();
    expect(set.bytes).toBeLessThan(300_000);
    set.add(0x12345678, 9);
    expect(set.export().segments.filter((t) => t.length > 0)).toHaveLength(1);
    for (const [hi, lo] of fingerprints(1_000)) set.add(hi, lo);
    expect(set.bytes).toBeLessThan(1_200_000);
  });

  it('answers as a set of pairs does, and a set taken up from its export holds the same (property)', () => {
    // Few distinct high halves, so that fingerprints crowd into a few segments and probe past each other; some share
    // their top 16 bits (one segment) and differ in the low 16.
    const highs = [0, 1, -1, 0x7fffffff, -0x80000000, 0x04000000, 0x00010000, 0x0001ffff, 0x00018000];
    const pair = fc.tuple(fc.constantFrom(...highs), fc.oneof(fc.integer(), fc.constantFrom(0, 1, 0x10000, -1)));
    fc.assert(
      fc.property(fc.array(pair, { maxLength: 3000 }), (pairs) => {
        const set = new CompactSet();
        const model = new Set<string>();
        // 48 low zero bits would read as an empty slot: such a fingerprint is stored with lo 1.
        const key = (hi: number, lo: number) => `${hi}:${(hi & 0xffff) === 0 && lo === 0 ? 1 : lo}`;
        for (const [hi, lo] of pairs) {
          expect(set.add(hi, lo)).toBe(!model.has(key(hi, lo)));
          model.add(key(hi, lo));
        }
        expect(set.size).toBe(model.size);
        for (const [hi, lo] of pairs) expect(set.has(hi, lo ^ 0x55)).toBe(model.has(key(hi, lo ^ 0x55)));
        const copy = CompactSet.from(set.export().segments, set.size);
        expect(contents(copy)).toEqual(model);
        for (const [hi, lo] of pairs) expect(copy.add(hi, lo)).toBe(false);
      }),
      { numRuns: 60 },
    );
  });

  it('fills segments to nine tenths rather than grow past its memory budget, then grows all the same', () => {
    // Sized for 30 states a part (40 slots, so 61,440 bytes a segment), the budget has room for a growth (92,160
    // bytes beside the table while its fingerprints move) until 184,320 bytes more are taken: seven segments grow
    // (30,720 bytes each).
    const segmentBytes = PARTS * 40 * 2 * SLOT_WORDS;
    const budget = SEGMENTS * segmentBytes + 3 * 92_160;
    const set = new CompactSet(SEGMENTS * PARTS * 30, budget);
    const free = new CompactSet(SEGMENTS * PARTS * 30);
    const start = set.bytes;
    const pairs = evenly(32);
    for (const [hi, lo] of pairs) {
      set.add(hi, lo);
      free.add(hi, lo);
    }
    const grownIn = (v: CompactSet) => v.export().segments.filter((t) => t.length > SLOT_WORDS * PARTS * 40).length;
    expect(grownIn(free)).toBe(SEGMENTS);
    expect(grownIn(set)).toBe(7);
    expect(set.bytes).toBe(start + 7 * 30_720);
    expect(set.bytes - start + SEGMENTS * segmentBytes).toBeLessThanOrEqual(budget);
    expect(set.size).toBe(pairs.length);
    expect(pairs.every(([hi, lo]) => set.has(hi, lo) && !set.add(hi, lo))).toBe(true);
    // A set taken up from it keeps the segments as full, under the same budget.
    const copy = CompactSet.from(set.export().segments, set.size, budget);
    expect(copy.bytes).toBe(set.bytes);
    expect(pairs.every(([hi, lo]) => copy.has(hi, lo))).toBe(true);
    // Past nine tenths a segment grows, budget or not (the alternative is a table that cannot take a state), by a
    // fifth (40 part slots to 48), where the seven grew by half within it (60); a part grows its segment before it is
    // full.
    for (const [hi, lo] of evenly(8, 32)) copy.add(hi, lo);
    const partSlots = copy.export().segments.map((t) => t.length / SLOT_WORDS / PARTS);
    expect(partSlots.filter((n) => n === 48)).toHaveLength(SEGMENTS - 7);
    expect(partSlots.filter((n) => n === 60)).toHaveLength(7);
    for (const t of copy.export().segments) {
      const slots = t.length / SLOT_WORDS;
      const parts = perPart(t);
      expect(parts.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(Math.floor(slots * 0.9));
      expect(Math.max(...parts)).toBeLessThan(slots / PARTS);
    }
    expect(() => new CompactSet(0, 0)).toThrow(/memory budget must be positive bytes, not 0/);
  });

  it('grows a segment when one of its parts fills, however empty the rest', () => {
    // Every fingerprint in one part: the segment grows past three quarters of that part, not of the segment.
    const set = new CompactSet();
    const pairs = fingerprints(5_000).map(([, lo], k): [number, number] => [0x00050000 | (k & 0xffff), lo]);
    for (const [hi, lo] of pairs) expect(set.add(hi, lo)).toBe(true);
    const t = set.export().segments[0]!;
    const parts = perPart(t);
    expect(parts[5]).toBe(5_000);
    expect(parts[5]).toBeLessThan(t.length / SLOT_WORDS / PARTS);
    expect(pairs.every(([hi, lo]) => set.has(hi, lo))).toBe(true);
    expect(set.has(0x00050000, 12345)).toBe(false);
  });

  it('takes up the tables of a search saved with 8-byte slots, one table at a time', () => {
    const pairs = fingerprints(50_000);
    pairs.push([0, 1], [0x00030000, 0]); // 0:1 stands for 0:0 there; ...:0 is stored as ...:1 here
    const old = pairTables(pairs, 64);
    const segments = emptySegments();
    let added = 0;
    for (const t of old) added += compactPairs(t, segments);
    expect(added).toBe(pairs.length);
    const set = CompactSet.from(segments, pairs.length);
    expect(pairs.every(([hi, lo]) => set.has(hi, lo))).toBe(true);
    expect(set.has(0, 0) && set.has(0x00030000, 1)).toBe(true);
    expect(set.has(123, 456)).toBe(false);
    // A table whose segments another table filled already is not a saved search's (layout 2's tables are disjoint).
    expect(() => compactPairs(old[5]!, segments)).toThrow(/segment \d+ is filled by two tables/);
    const twice = new Int32Array([7, 8, 0, 0, 7, 8]);
    expect(() => compactPairs(twice, emptySegments())).toThrow(/holds 7:8 twice/);
    expect(() => compactPairs(new Int32Array(3), emptySegments())).toThrow(/8-byte slots has 3 words/);
  });

  it('refuses tables that do not hold the states they were saved with, or are cut into another number of segments', () => {
    const set = new CompactSet();
    for (const [hi, lo] of fingerprints(100_000)) set.add(hi, lo);
    const { segments } = set.export();
    expect(() => CompactSet.from(segments, 100_001)).toThrow(
      /a visited table of 256 segments holds 100000 states, not the 100001 it was saved with/,
    );
    expect(() => CompactSet.from(segments.slice(0, 64), 3)).toThrow(
      /64 segments .*cannot be taken up: this set has 256/,
    );
    const odd = segments.slice();
    odd[9] = new Uint16Array(SLOT_WORDS * PARTS + 3);
    expect(() => CompactSet.from(odd, 0)).toThrow(/has a segment of 771 words/);
    // A part fuller than any set fills one: the file is not a visited table.
    const crowded = segments.slice();
    const t = crowded[17]!.slice();
    const before = perPart(t)[0]!;
    const partSlots = t.length / SLOT_WORDS / PARTS;
    for (let slot = 0; slot < partSlots; slot++)
      if ((t[3 * slot]! | t[3 * slot + 1]! | t[3 * slot + 2]!) === 0) t[3 * slot + 2] = 7 + slot;
    crowded[17] = t;
    expect(() => CompactSet.from(crowded, 100_000 - before + partSlots)).toThrow(
      /segment 17 fuller than a set fills one/,
    );
  });
});
