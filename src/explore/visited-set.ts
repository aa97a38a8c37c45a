import { CompactSet, compactPairs, emptySegments } from './compact-set.ts';
import { PairSet } from './pair-set.ts';

// The stateful search's visited set: 64-bit state fingerprints (SPIN's and TLC's fingerprint sets work the same
// way). A fingerprint is never stored twice, so the only error is a collision: two states with one fingerprint, the
// second taken for the first (see collisionProbability).
//
// Two forms: a small set keeps both 32-bit halves, 8 bytes a slot (pair-set.ts: 32 KiB empty, 11 to 16 bytes a
// state); at COMPACT_AT states it turns into 6-byte slots whose place gives the fingerprint's top 16 bits
// (compact-set.ts: 6 to 12 bytes a state, but 0.3 MB fixed, and parts sized by their fullest, which a small set
// pays for: 95 bytes a state at 25,000 states). The compact form has the memory budget (`maxBytes`).

/** States at which a set turns compact: past it 6-byte slots take less (12.3 bytes a state at 2 million, 8.4 at 10). */
export const COMPACT_AT = 1 << 22;

/** A visited set's tables as stored: 8-byte slots (64 segments, or one table from a layout-1 file), or 6-byte ones. */
export type VisitedTables = readonly Int32Array[] | readonly Uint16Array[];

export class VisitedSet {
  private set: PairSet | CompactSet;

  /**
   * A set sized for `expected` states, whose compact tables may take up to `maxBytes` (a growth that would pass it is
   * put off while the segment can fill to nine tenths: compact-set.ts).
   */
  constructor(
    expected = 0,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {
    if (!(maxBytes > 0)) throw new RangeError(`a visited set's memory budget must be positive bytes, not ${maxBytes}`);
    this.set = expected >= COMPACT_AT ? new CompactSet(expected, maxBytes) : new PairSet(expected);
  }

  /** States stored. */
  get size(): number {
    return this.set.size;
  }

  /** Bytes the tables (and the compact form's bookkeeping) take. */
  get bytes(): number {
    return this.set.bytes;
  }

  /** Whether the set has turned compact (6-byte slots). */
  get compact(): boolean {
    return this.set instanceof CompactSet;
  }

  /** Adds fingerprint `hi`:`lo` (32-bit halves); returns true when it was not there yet. */
  add(hi: number, lo: number): boolean {
    const set = this.set;
    if (!set.add(hi, lo)) return false;
    if (set.size === COMPACT_AT && set instanceof PairSet) this.set = VisitedSet.compacted(set, this.maxBytes);
    return true;
  }

  /** Whether fingerprint `hi`:`lo` is stored. */
  has(hi: number, lo: number): boolean {
    return this.set.has(hi, lo);
  }

  /** The set as stored (its tables, shared, not copied), for a saved search (search-snapshot.ts). */
  export(): { readonly segments: VisitedTables; readonly size: number } {
    return this.set.export();
  }

  /**
   * A set holding what `export()` gave, taken as it is (6-byte segments stay compact, 8-byte ones turn compact only
   * past COMPACT_AT states), or the one table of a layout-1 file (its fingerprints added again).
   */
  static from(tables: VisitedTables, size: number, maxBytes = Number.POSITIVE_INFINITY): VisitedSet {
    const set = new VisitedSet(0, maxBytes);
    if (tables.length > 0 && tables.every((t) => t instanceof Uint16Array)) {
      set.set = CompactSet.from(tables as readonly Uint16Array[], size, maxBytes);
    } else if (tables.every((t) => t instanceof Int32Array)) {
      const pairs = PairSet.from(tables as readonly Int32Array[], size);
      set.set = size >= COMPACT_AT ? VisitedSet.compacted(pairs, maxBytes) : pairs;
    } else {
      throw new RangeError('a visited table mixes 8-byte and 6-byte segments');
    }
    return set;
  }

  /** `pairs`' fingerprints in a compact set (its tables one at a time, each dropped once added). */
  private static compacted(pairs: PairSet, maxBytes: number): CompactSet {
    const { segments, size } = pairs.export();
    const into = emptySegments();
    for (const t of segments) compactPairs(t, into);
    return CompactSet.from(into, size, maxBytes);
  }
}

/**
 * The probability that two of `n` states stored share a 64-bit fingerprint, so that one was taken for the other
 * and not explored: about n^2 / 2^65 (the birthday bound, as SPIN's hash-compact and TLC report it).
 */
export function collisionProbability(n: number): number {
  return Math.min(1, (n * n) / 2 ** 65);
}
