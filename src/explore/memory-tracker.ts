import { FRAME_COPIED } from '../mmu/frame-guard.ts';
import type { DeadWords, PhysicalMemory, WriteTracker } from '../mmu/physical-memory.ts';
import { deadTermA, deadTermB, wordTermA, wordTermB } from './hash.ts';

// Memory's share of the stateful search's fingerprint and undo log: attached to a PhysicalMemory (memory.track), it
// is told of every write, before and after. The hash is the sum, mod 2^32 per lane, of a term per 8-byte word that is
// not zero (hash.ts), so a write of n bytes changes it in O(n). The undo log keeps each word's old value, so the
// search goes back to an earlier state by writing them back (rollback), newest first.
//
// Dead words (with `deadWords`): a word a stack pop read (POP, RET, IRET) is dead until something writes it: its
// value is left out of the hash (a term for its deadness goes in instead), so that states that differ only in what
// lies below a stack pointer (a pushed value popped again, an interrupt frame returned from: the words a different
// interleaving left there) are one state. Every word of a frame the kernel's allocator frees, or a migration marks
// copied away (PhysicalMemory.guardChanged), is dead too: what such a frame holds is garbage (a stack page's old
// copy holds the interrupt frames of every interleaving). A copy of a dead word is dead (migration copies stacks). Sound
// only while nothing reads a dead word before writing it (two states merged could then go different ways), so
// every read that reaches a frame with dead words is checked (PhysicalMemory.dead; the CPUs' page caches skip those
// frames), and one that reads a dead word is recorded in `deadRead`: the search then runs again without dead words
// (stateful.ts). As in SPIN's dead variable reduction, but checked as it runs rather than proved from the code.
// With `copiedLive`, a copied-away frame's words stay in the state until it is freed: a CPU still translating to it
// (a remote reader before the flush reaches it) reads them legitimately, and the search that read one runs again
// so, keeping the other dead words (stateful.ts), rather than with none.

const PAGE = 4096;
const WORDS_PER_PAGE = PAGE / 8;

const NO_FRAMES = new Int32Array(0);
/** Zeros per frame count, shared by trackers until they hold a dead word (never written). */
const sharedZeros = new Map<number, Int32Array>();
function zeros(length: number): Int32Array {
  let z = sharedZeros.get(length);
  if (z === undefined) {
    z = new Int32Array(length);
    sharedZeros.set(length, z);
  }
  return z;
}

export class MemoryTracker implements WriteTracker, DeadWords {
  /** The hash's lanes: the sums of the word terms. */
  sumA = 0;
  sumB = 0;
  // The undo log: per entry, the word's index and its old halves.
  private logIndex = new Float64Array(0);
  private logLo = new Int32Array(0);
  private logHi = new Int32Array(0);
  /** Per log entry: whether the word was dead. */
  private logDead = new Uint8Array(0);
  /** Entries in the undo log (a checkpoint is this length). */
  length = 0;
  /** Whether writes are logged for rollback (the contract check's re-runs only hash). */
  private readonly undo: boolean;
  /** Whether dead words are left out of the hash (see above). */
  readonly deadWords: boolean;
  /** Whether a frame copied away keeps its words live until it is freed (see above). */
  readonly copiedLive: boolean;
  /** Whether the frame of the dead word read (deadRead) was a copied-away one then. */
  deadReadCopied = false;
  /** Per frame: its dead words, one byte each (made at the frame's first), and how many. */
  private readonly deadBits: (Uint8Array | undefined)[] = [];
  /** Shared zeros until the first dead word (a tracker is made per execution by the soundness harness). */
  perFrame: Int32Array;
  /** Dead words now. */
  deadCount = 0;
  /** The physical address of the first read of a dead word, or -1. */
  deadRead = -1;

  /**
   * Attaches to `memory`, hashing what it holds now; `initial`, when given, is that hash already known (the same
   * machine built again), so that the frames are not read again.
   */
  constructor(
    private readonly memory: PhysicalMemory,
    options: {
      readonly undo: boolean;
      readonly initial?: readonly [number, number];
      readonly deadWords?: boolean;
      readonly copiedLive?: boolean;
    },
  ) {
    this.undo = options.undo;
    this.deadWords = options.deadWords === true;
    this.copiedLive = options.copiedLive === true;
    this.perFrame = this.deadWords ? zeros(Math.ceil(memory.size / PAGE)) : NO_FRAMES;
    if (options.initial) [this.sumA, this.sumB] = options.initial;
    else this.hashAll();
    memory.track(this);
    if (this.deadWords) memory.watchDeadWords(this);
  }

  /** Stops being told of writes (and reads). */
  detach(): void {
    this.memory.track(undefined);
    if (this.deadWords) this.memory.watchDeadWords(undefined);
  }

  private isDead(w: number): boolean {
    // Most frames hold no dead word: the count answers for them (every write asks, on the search's step path).
    const pfn = Math.floor(w / WORDS_PER_PAGE);
    if (this.perFrame[pfn] === 0) return false;
    return this.deadBits[pfn]![w % WORDS_PER_PAGE] === 1;
  }

  /** Marks word `w` dead or live (its hash terms are the caller's); true when its frame had no dead word before. */
  private setDead(w: number, dead: boolean): boolean {
    const pfn = Math.floor(w / WORDS_PER_PAGE);
    let bits = this.deadBits[pfn];
    if (bits === undefined) {
      if (!dead) return false;
      bits = new Uint8Array(WORDS_PER_PAGE);
      this.deadBits[pfn] = bits;
      if (this.perFrame === zeros(this.perFrame.length)) this.perFrame = new Int32Array(this.perFrame.length);
    }
    bits[w % WORDS_PER_PAGE] = dead ? 1 : 0;
    this.deadCount += dead ? 1 : -1;
    const count = this.perFrame[pfn]! + (dead ? 1 : -1);
    this.perFrame[pfn] = count;
    return dead && count === 1;
  }

  deadAt(pa: number): boolean {
    return this.deadWords && this.isDead(Math.floor(pa / 8));
  }

  popped(pa: number): void {
    // The CPUs' page caches may hold the frame: from now on its reads must be checked.
    if (this.makeDead(pa / 8, this.undo)) this.memory.dropHeldFrames();
  }

  freed(pa: number, size: number): void {
    if (this.copiedLive && this.copiedAway(pa)) return;
    let drop = false;
    const end = Math.floor((pa + size) / 8);
    for (let w = Math.ceil(pa / 8); w < end; ) {
      const pfn = Math.floor(w / WORDS_PER_PAGE);
      const stop = Math.min(end, (pfn + 1) * WORDS_PER_PAGE);
      if (this.killWords(pfn, w, stop)) drop = true;
      w = stop;
    }
    if (drop) this.memory.dropHeldFrames();
  }

  /**
   * makeDead (logged when undoing) for words [from, to) of frame `pfn`, with the frame's lookups made once: a freed
   * or copied-away page is 512 words at a time, on the search's path. True when the frame had no dead word before.
   */
  private killWords(pfn: number, from: number, to: number): boolean {
    let bits = this.deadBits[pfn];
    if (bits === undefined) {
      bits = new Uint8Array(WORDS_PER_PAGE);
      this.deadBits[pfn] = bits;
      if (this.perFrame === zeros(this.perFrame.length)) this.perFrame = new Int32Array(this.perFrame.length);
    }
    const before = this.perFrame[pfn]!;
    const frame = this.memory.frame(pfn, false);
    const base = pfn * WORDS_PER_PAGE;
    let a = this.sumA;
    let b = this.sumB;
    let killed = 0;
    for (let w = from; w < to; w++) {
      const i = w - base;
      if (bits[i] === 1) continue;
      const lo = frame.getInt32(i * 8, true);
      const hi = frame.getInt32(i * 8 + 4, true);
      // A zero word has no term in the sum (hashAll, afterWrite).
      if ((lo | hi) !== 0) {
        a = (a - wordTermA(w, lo, hi)) | 0;
        b = (b - wordTermB(w, lo, hi)) | 0;
      }
      a = (a + deadTermA(w)) | 0;
      b = (b + deadTermB(w)) | 0;
      if (this.undo) this.log(w, lo, hi, 0);
      bits[i] = 1;
      killed++;
    }
    this.sumA = a;
    this.sumB = b;
    this.deadCount += killed;
    this.perFrame[pfn] = before + killed;
    return before === 0 && killed > 0;
  }

  copied(src: number, dst: number, size: number): void {
    if ((src - dst) % 8 !== 0) return;
    const shift = (src - dst) / 8;
    let drop = false;
    for (let w = Math.ceil(dst / 8), end = Math.floor((dst + size) / 8); w < end; w++) {
      // beforeWrite logged the word as it was before the copy, and left it live: nothing more to log.
      if (this.isDead(w + shift) && this.makeDead(w, false)) drop = true;
    }
    if (drop) this.memory.dropHeldFrames();
  }

  /**
   * Word `w` becomes dead (if it is not): its value's terms leave the sums and its deadness's come in, logged for
   * rollback when `log`. True when its frame had no dead word before (the CPUs' cached pages must then go).
   */
  private makeDead(w: number, log: boolean): boolean {
    if (this.isDead(w)) return false;
    const lo = this.memory.peek32(w * 8) | 0;
    const hi = this.memory.peek32(w * 8 + 4) | 0;
    this.sumA = (this.sumA - wordTermA(w, lo, hi) + deadTermA(w)) | 0;
    this.sumB = (this.sumB - wordTermB(w, lo, hi) + deadTermB(w)) | 0;
    if (log) this.log(w, lo, hi, 0);
    return this.setDead(w, true);
  }

  readDead(pa: number, size: number): void {
    if (this.deadRead >= 0) return;
    const last = Math.floor((pa + size - 1) / 8);
    for (let w = Math.floor(pa / 8); w <= last; w++) {
      if (this.isDead(w)) {
        this.deadRead = pa;
        this.deadReadCopied = this.copiedAway(pa);
        return;
      }
    }
  }

  /** Whether the frame at `pa` is one a migration copied away and has not freed (the kernel's frame guard). */
  private copiedAway(pa: number): boolean {
    const g = this.memory.guard;
    if (g === undefined) return false;
    const i = Math.floor(pa / PAGE) - g.firstPfn;
    return i >= 0 && i < g.frames && g.owner[i] === FRAME_COPIED;
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
      const lo = memory.peek32(w * 8) | 0;
      const hi = memory.peek32(w * 8 + 4) | 0;
      // A dead word written comes alive (a write of part of it brings its old bytes back into the hash).
      const dead = this.deadWords && this.isDead(w);
      if (dead) {
        a = (a - deadTermA(w)) | 0;
        b = (b - deadTermB(w)) | 0;
        this.setDead(w, false);
      } else if ((lo | hi) !== 0) {
        a = (a - wordTermA(w, lo, hi)) | 0;
        b = (b - wordTermB(w, lo, hi)) | 0;
      }
      if (this.undo) this.log(w, lo, hi, dead ? 1 : 0);
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
      const lo = memory.peek32(w * 8) | 0;
      const hi = memory.peek32(w * 8 + 4) | 0;
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

  private log(index: number, lo: number, hi: number, dead: number): void {
    if (this.length === this.logIndex.length) this.grow();
    const n = this.length++;
    this.logIndex[n] = index;
    this.logLo[n] = lo;
    this.logHi[n] = hi;
    this.logDead[n] = dead;
  }

  private grow(): void {
    // Made at the first write (a re-run of the contract check, or a tracker of dead words alone, logs nothing).
    const size = Math.max(1024, this.logIndex.length * 2);
    const index = new Float64Array(size);
    index.set(this.logIndex);
    const lo = new Int32Array(size);
    lo.set(this.logLo);
    const hi = new Int32Array(size);
    hi.set(this.logHi);
    const dead = new Uint8Array(size);
    dead.set(this.logDead);
    this.logDead = dead;
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
    let drop = false;
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
      if (this.deadWords && this.isDead(w)) {
        a = (a - deadTermA(w)) | 0;
        b = (b - deadTermB(w)) | 0;
        this.setDead(w, false);
      } else if ((lo | hi) !== 0) {
        a = (a - wordTermA(w, lo, hi)) | 0;
        b = (b - wordTermB(w, lo, hi)) | 0;
      }
      const oldLo = this.logLo[n]!;
      const oldHi = this.logHi[n]!;
      frame.setInt32(offset, oldLo, true);
      frame.setInt32(offset + 4, oldHi, true);
      if (this.logDead[n] === 1) {
        a = (a + deadTermA(w)) | 0;
        b = (b + deadTermB(w)) | 0;
        if (this.setDead(w, true)) drop = true;
      } else if ((oldLo | oldHi) !== 0) {
        a = (a + wordTermA(w, oldLo, oldHi)) | 0;
        b = (b + wordTermB(w, oldLo, oldHi)) | 0;
      }
    }
    if (drop) memory.dropHeldFrames();
    this.length = mark;
    this.sumA = a;
    this.sumB = b;
  }
}
