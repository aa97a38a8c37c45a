// The visited set's form for small searches (visited-set.ts switches to compact-set.ts at COMPACT_AT states): 64-bit
// state fingerprints, stored as two 32-bit halves side by side in Int32Arrays with open addressing and linear
// probing, in SEGMENTS tables, one per value of the fingerprint's top 6 bits, each growing by half on its own when
// three quarters full: 8 bytes a slot, 11 to 16 bytes a state, and 32 KiB when empty. (The form of every set until
// 2026-12-07's third session, and of layout 2's saved searches.)

/** Fingerprint 0:0 marks an empty slot; a state that hashes to it is stored as 0:1. */
const EMPTY = 0;
const SEGMENT_BITS = 6;
/** Segments: 64. */
export const PAIR_SEGMENTS = 1 << SEGMENT_BITS;
const MIN_SEGMENT_SLOTS = 64;
const GROW_LOAD = 3 / 4;
const TWO_32 = 2 ** 32;

/**
 * Where fingerprint `h`:`l` is in `table` (`slots` pairs of 32-bit halves, 0:0 empty), probing linearly from slot
 * `i`: its slot, or, when it is not there, -1 minus the empty slot where it would go. (The parallel search's shared
 * table probes the same way: shared-state-set.ts.)
 */
export function probePairs(table: Int32Array, slots: number, i: number, h: number, l: number): number {
  for (;;) {
    const th = table[2 * i]!;
    const tl = table[2 * i + 1]!;
    if (th === EMPTY && tl === EMPTY) return -1 - i;
    if (th === h && tl === l) return i;
    i = i + 1 === slots ? 0 : i + 1;
  }
}

export class PairSet {
  private readonly tables: Int32Array[] = [];
  /** Per segment: its slots, the states it holds, and how many it may hold before it grows. */
  private readonly slots = new Float64Array(PAIR_SEGMENTS);
  private readonly counts = new Float64Array(PAIR_SEGMENTS);
  private readonly limits = new Float64Array(PAIR_SEGMENTS);
  /** States stored. */
  size = 0;
  /** Bytes the tables take (kept, not summed, as a growth asks it). */
  private tableBytes = 0;

  /** A set sized for `expected` states. */
  constructor(expected = 0) {
    const slots = Math.max(MIN_SEGMENT_SLOTS, Math.ceil(expected / GROW_LOAD / PAIR_SEGMENTS));
    for (let s = 0; s < PAIR_SEGMENTS; s++) this.setSegment(s, new Int32Array(2 * slots));
  }

  private setSegment(s: number, table: Int32Array): void {
    this.tableBytes += table.byteLength - (this.tables[s]?.byteLength ?? 0);
    this.tables[s] = table;
    this.slots[s] = table.length / 2;
    this.limits[s] = Math.floor((table.length / 2) * GROW_LOAD);
  }

  /** The set as stored (its segments, shared, not copied). */
  export(): { readonly segments: readonly Int32Array[]; readonly size: number } {
    return { segments: this.tables.slice(), size: this.size };
  }

  /**
   * A set holding what `export()` gave (the segments taken as they are, not copied), or the fingerprints of one
   * table (layout 1's, added again). Each table is counted, so that a file cut or mixed up is refused here rather
   * than explored from.
   */
  static from(segments: readonly Int32Array[], size: number): PairSet {
    const refuse = (why: string) => new RangeError(`a visited table of ${segments.length} segments ${why}`);
    if (segments.length !== 1 && segments.length !== PAIR_SEGMENTS) {
      throw refuse(`cannot be taken up: this set has ${PAIR_SEGMENTS}`);
    }
    for (const t of segments) {
      if (t.length % 2 !== 0 || t.length < 2) throw refuse(`has a segment of ${t.length} words`);
    }
    const mismatch = (total: number) => refuse(`holds ${total} states, not the ${size} it was saved with`);
    if (segments.length === 1) {
      // Half full, as a segment is right after it grows (three quarters would have each grow at once).
      const set = new PairSet(size * 1.5);
      const t = segments[0]!;
      for (let i = 0; i < t.length; i += 2) if (t[i] !== EMPTY || t[i + 1] !== EMPTY) set.add(t[i]!, t[i + 1]!);
      if (set.size !== size) throw mismatch(set.size);
      return set;
    }
    const set = new PairSet();
    let total = 0;
    segments.forEach((t, s) => {
      let n = 0;
      for (let i = 0; i < t.length; i += 2) if (t[i] !== EMPTY || t[i + 1] !== EMPTY) n++;
      set.setSegment(s, t);
      if (n > set.limits[s]!) throw refuse(`has segment ${s} fuller than three quarters`);
      set.counts[s] = n;
      total += n;
    });
    if (total !== size) throw mismatch(total);
    set.size = size;
    return set;
  }

  /** Bytes the tables take. */
  get bytes(): number {
    return this.tableBytes;
  }

  /** Where fingerprint `h`:`l` is in segment `s` (probePairs), from `h`'s bits below the segment's by a multiply. */
  private probe(s: number, h: number, l: number): number {
    const slots = this.slots[s]!;
    return probePairs(this.tables[s]!, slots, Math.floor(((h << SEGMENT_BITS) >>> 0) * (slots / TWO_32)), h, l);
  }

  /** Adds fingerprint `hi`:`lo` (32-bit halves); returns true when it was not there yet. */
  add(hi: number, lo: number): boolean {
    const h = hi | 0;
    const l = h === EMPTY && (lo | 0) === EMPTY ? 1 : lo | 0;
    const s = h >>> (32 - SEGMENT_BITS);
    const i = this.probe(s, h, l);
    if (i >= 0) return false;
    const table = this.tables[s]!;
    table[2 * (-1 - i)] = h;
    table[2 * (-1 - i) + 1] = l;
    this.size++;
    if (++this.counts[s]! > this.limits[s]!) this.grow(s);
    return true;
  }

  /** Whether fingerprint `hi`:`lo` is stored. */
  has(hi: number, lo: number): boolean {
    const h = hi | 0;
    const l = h === EMPTY && (lo | 0) === EMPTY ? 1 : lo | 0;
    return this.probe(h >>> (32 - SEGMENT_BITS), h, l) >= 0;
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
