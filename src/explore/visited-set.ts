// The stateful search's visited set: 64-bit state fingerprints, stored as two 32-bit halves side by side in
// Int32Arrays with open addressing and linear probing (SPIN's and TLC's fingerprint sets work the same way). A
// fingerprint is never stored twice, so the only error is a collision: two states with one fingerprint, the second
// taken for the first (see collisionProbability).
//
// The set is SEGMENTS tables, one per value of the fingerprint's top SEGMENT_BITS bits, each growing by half on its
// own when three quarters full (8 bytes a slot, so at most 16 bytes a state right after a growth, 10.7 on average
// over a growth cycle). One table grown whole needs the old and the new at once, two and a half times the table:
// a search of 995 million states would have needed 26.5 GB to grow past its 10.6 GB table, more than this 24 GB
// machine has (the csd cell of docs/scenarios/migration.md is expected past a billion). A segment grows with one
// segment's memory beside the table (1.5 / SEGMENTS of it); the segments fill evenly and so grow in one wave, so the
// table before a wave can take two thirds of memory (about 1.4 billion states in 22 GB).
//
// Past that, a set given a memory budget (`maxBytes`: the stateful search gives three quarters of the machine's
// memory) fills a segment to nine tenths instead of growing it where the growth would take the set past the budget:
// linear probing takes longer per add at that load (about 50 slots looked at for a new state, against 8.5 at three
// quarters: Knuth, TAOCP vol. 3, 6.4), but the set holds a fifth more states in the same memory, where growing would
// have had the process killed. A segment at nine tenths grows all the same (the next add may then run out of memory).

/** Fingerprint 0:0 marks an empty slot; a state that hashes to it is stored as 0:1. */
const EMPTY = 0;
const SEGMENT_BITS = 6;
/** Segments: 64, so that a growth takes 2.3% of the table beside it, and an empty set is 32 KiB. */
export const SEGMENTS = 1 << SEGMENT_BITS;
const MIN_SEGMENT_SLOTS = 64;
/** The load a segment grows at, and the one it may fill to instead when growing would pass the memory budget. */
const GROW_LOAD = 3 / 4;
const MAX_LOAD = 9 / 10;
const TWO_32 = 2 ** 32;

export class VisitedSet {
  private readonly tables: Int32Array[] = [];
  /** Per segment: its slots, the states it holds, and how many it may hold before it grows. */
  private readonly slots = new Float64Array(SEGMENTS);
  private readonly counts = new Float64Array(SEGMENTS);
  private readonly limits = new Float64Array(SEGMENTS);
  /** States stored. */
  size = 0;
  /** Bytes the tables take (kept, not summed, as a growth asks it). */
  private tableBytes = 0;

  /**
   * A set sized for `expected` states, whose tables may take up to `maxBytes` (a growth that would pass it is put
   * off while the segment can fill to nine tenths).
   */
  constructor(
    expected = 0,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {
    if (!(maxBytes > 0)) throw new RangeError(`a visited set's memory budget must be positive bytes, not ${maxBytes}`);
    const slots = Math.max(MIN_SEGMENT_SLOTS, Math.ceil(expected / GROW_LOAD / SEGMENTS));
    for (let s = 0; s < SEGMENTS; s++) this.setSegment(s, new Int32Array(2 * slots));
  }

  private setSegment(s: number, table: Int32Array): void {
    const slots = table.length / 2;
    this.tableBytes += table.byteLength - (this.tables[s]?.byteLength ?? 0);
    this.tables[s] = table;
    this.slots[s] = slots;
    this.limits[s] = Math.floor(slots * GROW_LOAD);
  }

  /** The set as stored (its segments, shared, not copied), for a saved search (search-snapshot.ts). */
  export(): { readonly segments: readonly Int32Array[]; readonly size: number } {
    return { segments: this.tables.slice(), size: this.size };
  }

  /**
   * A set holding what `export()` gave (the segments taken as they are, not copied), or one table of a search saved
   * before segments (its fingerprints added again). Each table is counted, so that a file cut or mixed up is refused
   * here rather than explored from.
   */
  static from(segments: readonly Int32Array[], size: number, maxBytes = Number.POSITIVE_INFINITY): VisitedSet {
    const refuse = (why: string) => new RangeError(`a visited table of ${segments.length} segments ${why}`);
    if (segments.length !== 1 && segments.length !== SEGMENTS)
      throw refuse(`cannot be taken up: this set has ${SEGMENTS}`);
    for (const t of segments) {
      if (t.length % 2 !== 0 || t.length < 2) throw refuse(`has a segment of ${t.length} words`);
    }
    const mismatch = (total: number) => refuse(`holds ${total} states, not the ${size} it was saved with`);
    if (segments.length === 1) {
      // Half full, as a segment is right after it grows (three quarters would have each grow at once).
      const set = new VisitedSet(size * 1.5, maxBytes);
      const t = segments[0]!;
      for (let i = 0; i < t.length; i += 2) if (t[i] !== EMPTY || t[i + 1] !== EMPTY) set.add(t[i]!, t[i + 1]!);
      if (set.size !== size) throw mismatch(set.size);
      return set;
    }
    const counted = segments.map((t) => {
      let n = 0;
      for (let i = 0; i < t.length; i += 2) if (t[i] !== EMPTY || t[i + 1] !== EMPTY) n++;
      return n;
    });
    const total = counted.reduce((a, b) => a + b, 0);
    if (total !== size) throw mismatch(total);
    const set = new VisitedSet(0, maxBytes);
    segments.forEach((t, s) => {
      set.setSegment(s, t);
      // A segment filled past three quarters (the budget put its growth off) keeps filling to nine tenths.
      if (counted[s]! > set.limits[s]!) set.limits[s] = Math.floor(set.slots[s]! * MAX_LOAD);
      if (counted[s]! > set.limits[s]!) throw refuse(`has segment ${s} fuller than nine tenths`);
      set.counts[s] = counted[s]!;
    });
    set.size = size;
    return set;
  }

  /** Bytes the tables take. */
  get bytes(): number {
    return this.tableBytes;
  }

  /**
   * Adds fingerprint `hi`:`lo` (32-bit halves); returns true when it was not there yet. Its segment is `hi`'s top
   * bits; it starts probing at `hi`'s other 26 bits mapped onto the segment's slots by a multiply (no modulo), which
   * reaches every slot while a segment has at most 2^26 (4 billion slots in all, 34 GB).
   */
  add(hi: number, lo: number): boolean {
    const h = hi | 0;
    let l = lo | 0;
    if (h === EMPTY && l === EMPTY) l = 1;
    const s = h >>> (32 - SEGMENT_BITS);
    const table = this.tables[s]!;
    const slots = this.slots[s]!;
    let i = Math.floor(((h << SEGMENT_BITS) >>> 0) * (slots / TWO_32));
    for (;;) {
      const th = table[2 * i]!;
      const tl = table[2 * i + 1]!;
      if (th === EMPTY && tl === EMPTY) break;
      if (th === h && tl === l) return false;
      i = i + 1 === slots ? 0 : i + 1;
    }
    table[2 * i] = h;
    table[2 * i + 1] = l;
    this.size++;
    if (++this.counts[s]! > this.limits[s]!) this.full(s);
    return true;
  }

  /** Whether fingerprint `hi`:`lo` is stored. */
  has(hi: number, lo: number): boolean {
    const h = hi | 0;
    let l = lo | 0;
    if (h === EMPTY && l === EMPTY) l = 1;
    const s = h >>> (32 - SEGMENT_BITS);
    const table = this.tables[s]!;
    const slots = this.slots[s]!;
    let i = Math.floor(((h << SEGMENT_BITS) >>> 0) * (slots / TWO_32));
    for (;;) {
      const th = table[2 * i]!;
      const tl = table[2 * i + 1]!;
      if (th === EMPTY && tl === EMPTY) return false;
      if (th === h && tl === l) return true;
      i = i + 1 === slots ? 0 : i + 1;
    }
  }

  /**
   * Segment `s` is at its limit: it grows, unless the growth (the new table beside the old, for the copy) would take
   * the set past its budget while the segment is short of nine tenths: then it fills further.
   */
  private full(s: number): void {
    const slots = this.slots[s]!;
    const fuller = Math.floor(slots * MAX_LOAD);
    const grownBytes = 8 * Math.ceil(slots * 1.5);
    if (this.limits[s]! < fuller && this.tableBytes + grownBytes > this.maxBytes) {
      this.limits[s] = fuller;
      return;
    }
    this.grow(s);
  }

  /** Segment `s`, half as large again, its fingerprints added again. */
  private grow(s: number): void {
    const old = this.tables[s]!;
    this.setSegment(s, new Int32Array(2 * Math.ceil((old.length / 2) * 1.5)));
    this.size -= this.counts[s]!;
    this.counts[s] = 0;
    for (let i = 0; i < old.length; i += 2) {
      const h = old[i]!;
      const l = old[i + 1]!;
      if (h !== EMPTY || l !== EMPTY) this.add(h, l);
    }
  }
}

/**
 * The probability that two of `n` states stored share a 64-bit fingerprint, so that one was taken for the other
 * and not explored: about n^2 / 2^65 (the birthday bound, as SPIN's hash-compact and TLC report it).
 */
export function collisionProbability(n: number): number {
  return Math.min(1, (n * n) / 2 ** 65);
}
