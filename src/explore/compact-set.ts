// The visited set's form for large searches (visited-set.ts switches to it at COMPACT_AT states): 64-bit state
// fingerprints in open-addressing tables with linear probing, 6 bytes a slot.
//
// The fingerprint's top 16 bits choose where it goes: 8 a segment (SEGMENTS tables, each growing by half on its own
// when three quarters full, so that a growth needs one segment's memory beside the set, not the set's), 8 a part of
// that segment (PARTS equal runs of slots, each probed on its own: a probe wraps within its part). Everything in a
// part shares those 16 bits, so a slot stores the other 48: three 16-bit words, 6 bytes, where two 32-bit halves take
// 8 (compact hashing as Cleary's, 1984, with the bits a slot's place gives; the fingerprint stays whole). The same
// memory holds a third more states: on this 24 GB machine about 2.9 billion, where 8-byte slots held about 2.4
// (docs/checker.md has the arithmetic). Parts rather than 65,536 segments: a segment's table object is read on
// every add, and 256 of them stay in the cache where 65,536 did not (an add took twice as long). A segment's table
// is made at its first fingerprint. The price is a fixed 0.3 MB of counts and parts that a segment's fullest part
// sizes: a small search's set takes 95 bytes a state (25,000 states), where 8-byte slots take 14; so small sets
// keep those (pair-set.ts).
//
// A set given a memory budget (`maxBytes`: the stateful search gives three quarters of the machine's memory) fills a
// segment to nine tenths instead of growing it where the growth would take the set past the budget: linear probing
// takes longer per add at that load (about 50 slots looked at for a new state, against 8.5 at three quarters: Knuth,
// TAOCP vol. 3, 6.4), but the set holds a fifth more states in the same memory, where growing would have had the
// process killed. A segment at nine tenths grows all the same, by a fifth (the next add may then run out of memory).

/** Fingerprint bits a slot need not store: its segment's and its part's number (SEGMENT_BITS + PART_BITS). */
const IMPLIED_BITS = 16;
const SEGMENT_BITS = 8;
const PART_BITS = IMPLIED_BITS - SEGMENT_BITS;
/** Segments: 256 (a growth takes 0.6% of the set beside it). */
export const SEGMENTS = 1 << SEGMENT_BITS;
/** Parts a segment is cut into: 256, each probed on its own, so that its number need not be stored either. */
export const PARTS = 1 << PART_BITS;
/** 16-bit words a slot: the fingerprint's low 48 bits (hi's low half, lo's high half, lo's low half). */
export const SLOT_WORDS = 3;
/** The load a segment grows at, and the one it may fill to instead when growing would pass the memory budget. */
const GROW_LOAD = 3 / 4;
const MAX_LOAD = 9 / 10;
/** How much larger a segment grows: by half, and by a fifth past the budget (from nine tenths to three quarters). */
const GROWTH = 1.5;
const LATE_GROWTH = 1.2;
/**
 * The load at which one part makes its segment grow whatever the segment's load (a part fills a little faster or
 * slower than its segment: at a billion states a part holds about 15,000, within 2% of the mean at 4 standard
 * deviations).
 */
const PART_LOAD = 0.97;
/** Slots a part has at least: one more than it may hold, so that a probe always meets an empty slot. */
const MIN_PART_SLOTS = 2;
const TWO_32 = 2 ** 32;
/** Bytes of bookkeeping the set takes besides its tables (per segment and per part, their counts and limits). */
const BOOKKEEPING_BYTES = SEGMENTS * 16 + SEGMENTS * PARTS * 4;
/** The table of a segment holding nothing yet (shared: never written, a first add replaces it). */
const NO_TABLE = new Uint16Array(0);

/** The most a part of `partSlots` slots holds before its segment grows (fewer than its slots). */
function partLimit(partSlots: number): number {
  return Math.min(partSlots - 1, Math.floor(partSlots * PART_LOAD));
}

/** A part's slots in a segment taken up from another form, its largest part holding `most` (as full as at growth). */
function partSlotsFor(count: number, most: number): number {
  let slots = Math.max(MIN_PART_SLOTS, Math.ceil(count / GROW_LOAD / PARTS));
  while (partLimit(slots) < most) slots = Math.ceil(slots * GROWTH);
  return slots;
}

/** Where fingerprint `h`:`l` starts probing in its part (of `partSlots`): hi's low 16 and lo's high 16 bits. */
function homeSlot(h: number, l: number, partSlots: number): number {
  return Math.floor((((h << 16) | (l >>> 16)) >>> 0) * (partSlots / TWO_32));
}

/**
 * Where fingerprint `h`:`l` is in its part of `table` (the part's first slot and its slots): its slot, or, when it is
 * not there, -1 minus the empty slot where it would go.
 */
function probe(table: Uint16Array, first: number, slots: number, h: number, l: number): number {
  const a = h & 0xffff;
  const b = l >>> 16;
  const c = l & 0xffff;
  const end = first + slots;
  let i = first + homeSlot(h, l, slots);
  for (;;) {
    const k = SLOT_WORDS * i;
    const tc = table[k + 2]!;
    const ta = table[k]!;
    const tb = table[k + 1]!;
    if ((ta | tb | tc) === 0) return -1 - i;
    if (tc === c && ta === a && tb === b) return i;
    i = i + 1 === end ? first : i + 1;
  }
}

/** Stores the low 48 bits of `h`:`l` in slot `i` of `table`. */
function put(table: Uint16Array, i: number, h: number, l: number): void {
  table[SLOT_WORDS * i] = h & 0xffff;
  table[SLOT_WORDS * i + 1] = l >>> 16;
  table[SLOT_WORDS * i + 2] = l & 0xffff;
}

export class CompactSet {
  private readonly tables: Uint16Array[] = new Array<Uint16Array>(SEGMENTS).fill(NO_TABLE);
  /** Per segment: its parts' slots, the states it holds, how many it may hold before it grows, a part's most. */
  private readonly partSlots = new Float64Array(SEGMENTS);
  private readonly counts = new Float64Array(SEGMENTS);
  private readonly limits = new Float64Array(SEGMENTS);
  private readonly partLimits = new Float64Array(SEGMENTS);
  /** Per part (segment * PARTS + part): the states it holds. */
  private readonly partCounts = new Uint32Array(SEGMENTS * PARTS);
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
    if (expected > 0) {
      const partSlots = Math.max(MIN_PART_SLOTS, Math.ceil(expected / GROW_LOAD / (SEGMENTS * PARTS)));
      for (let s = 0; s < SEGMENTS; s++) this.setSegment(s, new Uint16Array(SLOT_WORDS * PARTS * partSlots));
    }
  }

  private setSegment(s: number, table: Uint16Array): void {
    this.tableBytes += table.byteLength - this.tables[s]!.byteLength;
    this.tables[s] = table;
    const partSlots = table.length / (SLOT_WORDS * PARTS);
    this.partSlots[s] = partSlots;
    this.limits[s] = Math.floor(partSlots * PARTS * GROW_LOAD);
    this.partLimits[s] = partSlots === 0 ? 0 : partLimit(partSlots);
  }

  /**
   * The set as stored (its segments, shared, not copied; an empty one for a segment holding nothing), for a saved
   * search (search-snapshot.ts).
   */
  export(): { readonly segments: readonly Uint16Array[]; readonly size: number } {
    return { segments: this.tables.slice(), size: this.size };
  }

  /**
   * A set holding what `export()` gave (the segments taken as they are, not copied; see compactPairs for the tables
   * of a search saved with 8-byte slots). Each part is counted, so that a file cut or mixed up is refused here
   * rather than explored from.
   */
  static from(segments: readonly Uint16Array[], size: number, maxBytes = Number.POSITIVE_INFINITY): CompactSet {
    const refuse = (why: string) => new RangeError(`a visited table of ${segments.length} segments ${why}`);
    if (segments.length !== SEGMENTS) throw refuse(`cannot be taken up: this set has ${SEGMENTS}`);
    const set = new CompactSet(0, maxBytes);
    let total = 0;
    for (let s = 0; s < SEGMENTS; s++) {
      const t = segments[s]!;
      if (t.length % (SLOT_WORDS * PARTS) !== 0) throw refuse(`has a segment of ${t.length} words`);
      if (t.length === 0) continue;
      set.setSegment(s, t);
      const partSlots = t.length / (SLOT_WORDS * PARTS);
      let n = 0;
      for (let p = 0; p < PARTS; p++) {
        let inPart = 0;
        const end = SLOT_WORDS * partSlots * (p + 1);
        for (let i = SLOT_WORDS * partSlots * p; i < end; i += SLOT_WORDS)
          if ((t[i]! | t[i + 1]! | t[i + 2]!) !== 0) inPart++;
        if (inPart > set.partLimits[s]!) throw refuse(`has segment ${s} fuller than a set fills one`);
        set.partCounts[s * PARTS + p] = inPart;
        n += inPart;
      }
      // A segment filled past three quarters (the budget put its growth off) keeps filling to nine tenths.
      if (n > set.limits[s]!) set.limits[s] = Math.floor(partSlots * PARTS * MAX_LOAD);
      if (n > set.limits[s]!) throw refuse(`has segment ${s} fuller than a set fills one`);
      set.counts[s] = n;
      total += n;
    }
    if (total !== size) throw refuse(`holds ${total} states, not the ${size} it was saved with`);
    set.size = size;
    return set;
  }

  /** Bytes the tables and the bookkeeping take. */
  get bytes(): number {
    return this.tableBytes + BOOKKEEPING_BYTES;
  }

  /**
   * Adds fingerprint `hi`:`lo` (32-bit halves); returns true when it was not there yet. Its segment and part are
   * `hi`'s top 16 bits; it starts probing in its part at hi's low 16 and lo's high 16 bits, mapped onto the part's
   * slots by a multiply (no modulo). 0 in the low 48 bits would read as an empty slot: such a fingerprint is stored
   * with lo 1.
   */
  add(hi: number, lo: number): boolean {
    const h = hi | 0;
    const l = (h & 0xffff) === 0 && (lo | 0) === 0 ? 1 : lo | 0;
    const part = h >>> (32 - IMPLIED_BITS);
    const s = part >>> PART_BITS;
    if (this.counts[s]! >= this.limits[s]! || this.partCounts[part]! >= this.partLimits[s]!) this.full(s, part);
    const table = this.tables[s]!;
    const slots = this.partSlots[s]!;
    const first = (part & (PARTS - 1)) * slots;
    const i = probe(table, first, slots, h, l);
    if (i >= 0) return false;
    put(table, -1 - i, h, l);
    this.size++;
    this.counts[s]!++;
    this.partCounts[part]!++;
    return true;
  }

  /** Whether fingerprint `hi`:`lo` is stored. */
  has(hi: number, lo: number): boolean {
    const h = hi | 0;
    const l = (h & 0xffff) === 0 && (lo | 0) === 0 ? 1 : lo | 0;
    const part = h >>> (32 - IMPLIED_BITS);
    const s = part >>> PART_BITS;
    const slots = this.partSlots[s]!;
    return slots !== 0 && probe(this.tables[s]!, (part & (PARTS - 1)) * slots, slots, h, l) >= 0;
  }

  /**
   * Segment `s` is at its limit, or its part `part` at its own, before an add: it grows by half while that keeps the
   * set within its budget (the new table beside the old, for the copy). Past that it fills to nine tenths, then
   * grows by a fifth, past the budget if it must: in small steps, so that the set holds as many states as memory
   * can (growing by half past the budget, a 24 GB machine's set stopped at about 2.4 billion states, where it can
   * hold 2.9).
   */
  private full(s: number, part: number): void {
    const partSlots = this.partSlots[s]!;
    const grownBytes = 2 * SLOT_WORDS * PARTS * Math.ceil(partSlots * GROWTH);
    if (partSlots === 0 || this.tableBytes + grownBytes <= this.maxBytes) {
      this.grow(s, GROWTH);
    } else if (
      this.partCounts[part]! < this.partLimits[s]! &&
      this.limits[s]! < Math.floor(partSlots * PARTS * MAX_LOAD)
    ) {
      this.limits[s] = Math.floor(partSlots * PARTS * MAX_LOAD);
    } else {
      this.grow(s, LATE_GROWTH);
    }
  }

  /** Segment `s`, its parts `factor` times as large (or made), its fingerprints stored again, each in its part. */
  private grow(s: number, factor: number): void {
    const old = this.tables[s]!;
    const oldSlots = this.partSlots[s]!;
    // At least one slot more: the part that made it grow then has room under its limit (partLimit).
    const slots = Math.max(MIN_PART_SLOTS, oldSlots + 1, Math.ceil(oldSlots * factor));
    const table = new Uint16Array(SLOT_WORDS * PARTS * slots);
    this.setSegment(s, table);
    for (let p = 0; p < PARTS; p++) {
      const h16 = ((s << PART_BITS) | p) << 16;
      const oldEnd = SLOT_WORDS * oldSlots * (p + 1);
      const first = p * slots;
      const end = first + slots;
      for (let k = SLOT_WORDS * oldSlots * p; k < oldEnd; k += SLOT_WORDS) {
        const a = old[k]!;
        const b = old[k + 1]!;
        const c = old[k + 2]!;
        if ((a | b | c) === 0) continue;
        // The fingerprints are distinct: the first empty slot from the home slot is the one.
        let i = first + homeSlot(h16 | a, (b << 16) | c, slots);
        while ((table[SLOT_WORDS * i]! | table[SLOT_WORDS * i + 1]! | table[SLOT_WORDS * i + 2]!) !== 0) {
          i = i + 1 === end ? first : i + 1;
        }
        table[SLOT_WORDS * i] = a;
        table[SLOT_WORDS * i + 1] = b;
        table[SLOT_WORDS * i + 2] = c;
      }
    }
  }
}

/**
 * Adds the fingerprints of `table`, a table of 8-byte slots (two 32-bit halves, 0:0 empty) as searches saved them
 * before 6-byte slots (layout 1: one table; layout 2: 64 tables, by the top 6 bits), into segments `into` (from
 * emptySegments()), so that a saved search's tables can be taken one at a time and dropped, never all beside the
 * set. A segment a table adds to must be empty before (each of layout 2's tables fills 4 of the 256 segments).
 * Returns the states added.
 */
export function compactPairs(table: Int32Array, into: Uint16Array[]): number {
  if (into.length !== SEGMENTS) throw new RangeError(`compactPairs: ${into.length} segments, not ${SEGMENTS}`);
  if (table.length % 2 !== 0) throw new RangeError(`a visited table of 8-byte slots has ${table.length} words`);
  const inPart = new Uint32Array(SEGMENTS * PARTS);
  let total = 0;
  for (let i = 0; i < table.length; i += 2) {
    const h = table[i]!;
    if ((h | table[i + 1]!) === 0) continue;
    inPart[h >>> (32 - IMPLIED_BITS)]!++;
    total++;
  }
  for (let s = 0; s < SEGMENTS; s++) {
    let count = 0;
    let most = 0;
    for (let p = s * PARTS; p < (s + 1) * PARTS; p++) {
      count += inPart[p]!;
      most = Math.max(most, inPart[p]!);
    }
    if (count === 0) continue;
    if (into[s]!.length !== 0) throw new RangeError(`compactPairs: segment ${s} is filled by two tables`);
    into[s] = new Uint16Array(SLOT_WORDS * PARTS * partSlotsFor(count, most));
  }
  for (let i = 0; i < table.length; i += 2) {
    const h = table[i]!;
    const lo = table[i + 1]!;
    if ((h | lo) === 0) continue;
    // 0:1 was 0:0 in layouts 1 and 2 as here; another fingerprint with 48 low zero bits is stored as ...:1 now.
    const l = (h & 0xffff) === 0 && lo === 0 ? 1 : lo;
    const part = h >>> (32 - IMPLIED_BITS);
    const t = into[part >>> PART_BITS]!;
    const slots = t.length / (SLOT_WORDS * PARTS);
    const k = probe(t, (part & (PARTS - 1)) * slots, slots, h, l);
    if (k >= 0) throw new RangeError(`a visited table of 8-byte slots holds ${h}:${lo} twice`);
    put(t, -1 - k, h, l);
  }
  return total;
}

/** SEGMENTS empty segments, for compactPairs. */
export function emptySegments(): Uint16Array[] {
  return new Array<Uint16Array>(SEGMENTS).fill(NO_TABLE);
}
