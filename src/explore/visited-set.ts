// The stateful search's visited set: 64-bit state fingerprints, stored as two 32-bit halves side by side in one
// Int32Array with open addressing and linear probing (SPIN's and TLC's fingerprint sets work the same way). The
// table grows by half when three quarters full, so it holds 8 bytes per slot and at most 16 bytes per state
// right after a growth (10.7 on average over a growth cycle). A fingerprint is never stored twice, so the only
// error is a collision: two states with one fingerprint, the second taken for the first (see collisionProbability).

/** Fingerprint 0:0 marks an empty slot; a state that hashes to it is stored as 0:1. */
const EMPTY = 0;
const MIN_SLOTS = 1024;

export class VisitedSet {
  private table: Int32Array;
  private slots: number;
  /** States stored. */
  size = 0;
  private limit: number;

  constructor(expected = MIN_SLOTS) {
    this.slots = Math.max(MIN_SLOTS, Math.ceil((expected * 4) / 3));
    this.table = new Int32Array(2 * this.slots);
    this.limit = Math.floor((this.slots * 3) / 4);
  }

  /** The set as stored (its table, shared, not copied), for a saved search (search-snapshot.ts). */
  export(): { readonly table: Int32Array; readonly size: number } {
    return { table: this.table, size: this.size };
  }

  /** A set holding what `export()` gave: `table` is taken as it is (not copied). */
  static from(table: Int32Array, size: number): VisitedSet {
    const set = new VisitedSet();
    const slots = table.length / 2;
    if (!Number.isInteger(slots) || slots < MIN_SLOTS || size > Math.floor((slots * 3) / 4)) {
      throw new RangeError(`a visited table of ${table.length} words cannot hold ${size} states`);
    }
    set.table = table;
    set.slots = slots;
    set.limit = Math.floor((slots * 3) / 4);
    set.size = size;
    return set;
  }

  /** Bytes the table takes. */
  get bytes(): number {
    return this.table.byteLength;
  }

  /** The slot a fingerprint starts probing at: its high half mapped onto [0, slots) by a multiply (no modulo). */
  private home(hi: number): number {
    return Math.floor((hi >>> 0) * (this.slots / 2 ** 32));
  }

  /** Adds fingerprint `hi`:`lo` (32-bit halves); returns true when it was not there yet. */
  add(hi: number, lo: number): boolean {
    const h = hi | 0;
    let l = lo | 0;
    if (h === EMPTY && l === EMPTY) l = 1;
    const table = this.table;
    const slots = this.slots;
    let i = this.home(h);
    for (;;) {
      const th = table[2 * i]!;
      const tl = table[2 * i + 1]!;
      if (th === EMPTY && tl === EMPTY) break;
      if (th === h && tl === l) return false;
      i = i + 1 === slots ? 0 : i + 1;
    }
    table[2 * i] = h;
    table[2 * i + 1] = l;
    if (++this.size > this.limit) this.grow();
    return true;
  }

  /** Whether fingerprint `hi`:`lo` is stored. */
  has(hi: number, lo: number): boolean {
    const h = hi | 0;
    let l = lo | 0;
    if (h === EMPTY && l === EMPTY) l = 1;
    const table = this.table;
    let i = this.home(h);
    for (;;) {
      const th = table[2 * i]!;
      const tl = table[2 * i + 1]!;
      if (th === EMPTY && tl === EMPTY) return false;
      if (th === h && tl === l) return true;
      i = i + 1 === this.slots ? 0 : i + 1;
    }
  }

  private grow(): void {
    const old = this.table;
    const oldSlots = this.slots;
    this.slots = Math.ceil(oldSlots * 1.5);
    this.table = new Int32Array(2 * this.slots);
    this.limit = Math.floor((this.slots * 3) / 4);
    this.size = 0;
    for (let i = 0; i < oldSlots; i++) {
      const h = old[2 * i]!;
      const l = old[2 * i + 1]!;
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
