import type { PhysicalMemory, WriteTracker } from '../mmu/physical-memory.ts';
import { wordTermA, wordTermB } from './hash.ts';

// Memory's share of the stateful search's fingerprint and undo log: attached to a PhysicalMemory (memory.track), it
// is told of every write, before and after. The hash is the sum, mod 2^32 per lane, of a term per 8-byte word that is
// not zero (hash.ts), so a write of n bytes changes it in O(n). The undo log keeps each word's old value, so the
// search goes back to an earlier state by writing them back (rollback), newest first.

const PAGE = 4096;
const WORDS_PER_PAGE = PAGE / 8;

export class MemoryTracker implements WriteTracker {
  /** The hash's lanes: the sums of the word terms. */
  sumA = 0;
  sumB = 0;
  // The undo log: per entry, the word's index and its old halves.
  private logIndex = new Float64Array(1024);
  private logLo = new Int32Array(1024);
  private logHi = new Int32Array(1024);
  /** Entries in the undo log (a checkpoint is this length). */
  length = 0;
  /** Whether writes are logged for rollback (the contract check's re-runs only hash). */
  private readonly undo: boolean;

  /**
   * Attaches to `memory`, hashing what it holds now; `initial`, when given, is that hash already known (the same
   * machine built again), so that the frames are not read again.
   */
  constructor(
    private readonly memory: PhysicalMemory,
    options: { readonly undo: boolean; readonly initial?: readonly [number, number] },
  ) {
    this.undo = options.undo;
    if (options.initial) [this.sumA, this.sumB] = options.initial;
    else this.hashAll();
    memory.track(this);
  }

  /** Stops being told of writes. */
  detach(): void {
    this.memory.track(undefined);
  }

  private hashAll(): void {
    let a = 0;
    let b = 0;
    for (const pfn of this.memory.materialisedFrames()) {
      const frame = this.memory.frame(pfn, false);
      const base = pfn * WORDS_PER_PAGE;
      for (let w = 0; w < WORDS_PER_PAGE; w++) {
        const lo = frame.getInt32(w * 8, true);
        const hi = frame.getInt32(w * 8 + 4, true);
        if ((lo | hi) === 0) continue;
        a = (a + wordTermA(base + w, lo, hi)) | 0;
        b = (b + wordTermB(base + w, lo, hi)) | 0;
      }
    }
    this.sumA = a;
    this.sumB = b;
  }

  beforeWrite(pa: number, size: number): void {
    const first = Math.floor(pa / 8);
    const last = Math.floor((pa + size - 1) / 8);
    const memory = this.memory;
    let a = this.sumA;
    let b = this.sumB;
    for (let w = first; w <= last; w++) {
      const lo = memory.read32(w * 8) | 0;
      const hi = memory.read32(w * 8 + 4) | 0;
      if ((lo | hi) !== 0) {
        a = (a - wordTermA(w, lo, hi)) | 0;
        b = (b - wordTermB(w, lo, hi)) | 0;
      }
      if (this.undo) this.log(w, lo, hi);
    }
    this.sumA = a;
    this.sumB = b;
  }

  afterWrite(pa: number, size: number): void {
    const first = Math.floor(pa / 8);
    const last = Math.floor((pa + size - 1) / 8);
    const memory = this.memory;
    let a = this.sumA;
    let b = this.sumB;
    for (let w = first; w <= last; w++) {
      const lo = memory.read32(w * 8) | 0;
      const hi = memory.read32(w * 8 + 4) | 0;
      if ((lo | hi) === 0) continue;
      a = (a + wordTermA(w, lo, hi)) | 0;
      b = (b + wordTermB(w, lo, hi)) | 0;
    }
    this.sumA = a;
    this.sumB = b;
  }

  /** Whether a word logged from entry `mark` on (written since then) lies in one of the frames `pfns[0..count)`. */
  wroteIn(mark: number, pfns: Float64Array, count: number): boolean {
    for (let n = mark; n < this.length; n++) {
      const pfn = Math.floor(this.logIndex[n]! / WORDS_PER_PAGE);
      for (let k = 0; k < count; k++) if (pfns[k] === pfn) return true;
    }
    return false;
  }

  private log(index: number, lo: number, hi: number): void {
    if (this.length === this.logIndex.length) this.grow();
    const n = this.length++;
    this.logIndex[n] = index;
    this.logLo[n] = lo;
    this.logHi[n] = hi;
  }

  private grow(): void {
    const size = this.logIndex.length * 2;
    const index = new Float64Array(size);
    index.set(this.logIndex);
    const lo = new Int32Array(size);
    lo.set(this.logLo);
    const hi = new Int32Array(size);
    hi.set(this.logHi);
    this.logIndex = index;
    this.logLo = lo;
    this.logHi = hi;
  }

  /**
   * Writes back the old words logged from entry `mark` on, newest first, and truncates the log there: memory is as
   * it was when the log had `mark` entries. The writes bypass the tracker (and the write watches: the search
   * restores those itself).
   */
  rollback(mark: number): void {
    const memory = this.memory;
    let a = this.sumA;
    let b = this.sumB;
    let pfn = -1;
    let frame: DataView | undefined;
    for (let n = this.length - 1; n >= mark; n--) {
      const w = this.logIndex[n]!;
      const page = Math.floor(w / WORDS_PER_PAGE);
      if (page !== pfn || frame === undefined) {
        pfn = page;
        frame = memory.frame(page, true);
      }
      const offset = (w % WORDS_PER_PAGE) * 8;
      const lo = frame.getInt32(offset, true);
      const hi = frame.getInt32(offset + 4, true);
      if ((lo | hi) !== 0) {
        a = (a - wordTermA(w, lo, hi)) | 0;
        b = (b - wordTermB(w, lo, hi)) | 0;
      }
      const oldLo = this.logLo[n]!;
      const oldHi = this.logHi[n]!;
      frame.setInt32(offset, oldLo, true);
      frame.setInt32(offset + 4, oldHi, true);
      if ((oldLo | oldHi) !== 0) {
        a = (a + wordTermA(w, oldLo, oldHi)) | 0;
        b = (b + wordTermB(w, oldLo, oldHi)) | 0;
      }
    }
    this.length = mark;
    this.sumA = a;
    this.sumB = b;
  }
}
