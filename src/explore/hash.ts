// 64-bit hashing for the stateful search (stateful.ts): fingerprints are two 32-bit lanes with different constants,
// kept in numbers (no BigInt on the step path). A sequence is hashed by a Hasher, one value at a time; memory is
// hashed as a sum of per-word terms (wordTermA/B), so that a store changes the sum in O(1) (AdHash: Bellare and
// Micciancio, EUROCRYPT 1997), and a zero word adds nothing, so that memory never written costs nothing.

/** The murmur3 finaliser: every input bit flips each output bit with probability about one half. */
export function fmix32(h: number): number {
  let x = h;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x;
}

const TWO_32 = 2 ** 32;

/** The low 32 bits of a number holding an integer (negative ones in two's complement; NaN as 0). */
export function low32(v: number): number {
  return v | 0;
}

/** Bits 63..32 of a number holding an integer (exact below 2^53; -1 gives all ones). */
export function high32(v: number): number {
  return Math.floor(v / TWO_32) | 0;
}

/** Lane A of a hash `acc` after adding the two lanes `a`, `b` of another (Hasher.add2). */
function laneA(acc: number, a: number, b: number): number {
  let x = Math.imul(acc ^ a, 0xcc9e2d51);
  x = (x << 15) | (x >>> 17);
  return Math.imul(x ^ b, 0x1b873593);
}

/**
 * Lane B of the same. The sum is wrapped to 32 bits (`| 0`): every reader of a lane wraps it (`^`, `|`, an
 * Int32Array), so the hash is the one the unwrapped sum gave, and the lane stays an integer the compiler keeps in a
 * register rather than a double it converts at every step.
 */
function laneB(acc: number, a: number, b: number): number {
  let y = Math.imul(acc ^ b, 0x85ebca6b);
  y = (y << 17) | (y >>> 15);
  return (Math.imul(y ^ a, 0xc2b2ae35) + 0x2545f491) | 0;
}

/** Bits 63..32 of integer `v` as add hashes them (exact below 2^53; -1 for a negative v above -2^32). */
function highHalf(v: number): number {
  return (v >= TWO_32 || v < -TWO_32 ? Math.floor(v / TWO_32) : v < 0 ? -1 : 0) | 0;
}

/** Lane A of a hash `acc` after adding a value of halves `lo`, `hi` (Hasher.add). */
function valueA(acc: number, lo: number, hi: number): number {
  let a = Math.imul(acc ^ lo, 0xcc9e2d51);
  a = (a << 15) | (a >>> 17);
  a = Math.imul(a ^ hi, 0x1b873593);
  return (a << 13) | (a >>> 19);
}

/** Lane B of the same, wrapped to 32 bits as laneB's. */
function valueB(acc: number, lo: number, hi: number): number {
  let b = Math.imul(acc ^ hi, 0x85ebca6b);
  b = (b << 17) | (b >>> 15);
  b = Math.imul(b ^ lo, 0xc2b2ae35);
  return (((b << 11) | (b >>> 21)) + 0x6b43a9b5) | 0;
}

/** Hashes a sequence of numbers into two 32-bit lanes. Reused: `reset(seed)` starts a new sequence. */
export class Hasher {
  a = 0;
  b = 0;

  reset(seedA: number, seedB: number): this {
    this.a = seedA | 0;
    this.b = seedB | 0;
    return this;
  }

  /** Adds an integer (any size a number holds: both 32-bit halves go in). */
  add(v: number): this {
    const hi = highHalf(v);
    this.a = valueA(this.a, v | 0, hi);
    this.b = valueB(this.b, v | 0, hi);
    return this;
  }

  /** Adds `values[0..n)` as add would one at a time, in locals (a CPU's registers, at every step: hashCpu). */
  addValues(values: Float64Array, n: number): this {
    let a = this.a;
    let b = this.b;
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      const hi = highHalf(v);
      a = valueA(a, v | 0, hi);
      b = valueB(b, v | 0, hi);
    }
    this.a = a;
    this.b = b;
    return this;
  }

  /** Adds two lanes of another hash. */
  add2(a: number, b: number): this {
    this.a = laneA(this.a, a, b);
    this.b = laneB(this.b, a, b);
    return this;
  }

  /**
   * Adds the lanes in `lanes` (pairs: a, b, a, b, ...), as add2 would one pair at a time, in locals: the fingerprint
   * of every state hashes 21 pairs, and the fields' stores between them took 5% of the stateful search.
   */
  addLanes(lanes: Int32Array): this {
    let a = this.a;
    let b = this.b;
    for (let i = 0; i < lanes.length; i += 2) {
      const x = lanes[i]!;
      const y = lanes[i + 1]!;
      a = laneA(a, x, y);
      b = laneB(b, x, y);
    }
    this.a = a;
    this.b = b;
    return this;
  }

  /** The lanes, finalised (the Hasher keeps its running state). */
  get finalA(): number {
    return fmix32(this.a ^ 0x3c6ef372);
  }

  get finalB(): number {
    return fmix32(this.b ^ 0xa54ff53a);
  }
}

/**
 * Lane A of memory word `index` (physical address / 8) holding `lo`, `hi`: 0 for a zero word. `index` may exceed
 * 32 bits (memories above 32 GiB), so both its halves go in.
 */
export function wordTermA(index: number, lo: number, hi: number): number {
  if ((lo | hi) === 0) return 0;
  const ih = Math.floor(index / TWO_32) | 0;
  let h = fmix32(Math.imul(index | 0, 0x9e3779b1) ^ ih ^ lo);
  h = fmix32(Math.imul(h ^ hi, 0x85ebca6b) + 0x27d4eb2f);
  return h;
}

/** Lane B of the same word, with other constants. */
export function wordTermB(index: number, lo: number, hi: number): number {
  if ((lo | hi) === 0) return 0;
  const ih = Math.floor(index / TWO_32) | 0;
  let h = fmix32(Math.imul((index | 0) ^ 0x5bd1e995, 0xcc9e2d51) + ih + hi);
  h = fmix32(Math.imul(h ^ lo, 0x1b873593) ^ 0x165667b1);
  return h;
}

/** Where dead words' terms start in the index space: past any word of memory (2^44 words: 128 TiB). */
const DEAD_INDEX = 2 ** 44;

/** Lane A of memory word `index` while it is dead (memory-tracker.ts): its value left out, its deadness kept. */
export function deadTermA(index: number): number {
  return wordTermA(DEAD_INDEX + index, 0x6a09e667, 0);
}

/** Lane B of the same. */
export function deadTermB(index: number): number {
  return wordTermB(DEAD_INDEX + index, 0x6a09e667, 0);
}
