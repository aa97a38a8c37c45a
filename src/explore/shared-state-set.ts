import { InputError } from '../mmu/input-error.ts';
import { probePairs } from './pair-set.ts';

// The parallel stateful search's set of finished states (stateful-parallel.ts), shared by its threads: the same
// 64-bit fingerprints in the same open-addressing layout as visited-set.ts, in SharedArrayBuffers every thread
// maps. Adds take a spin lock (one Atomics word): a few probes a state, and a worker adds the states it finished in
// batches (addAll), one lock round trip for them all (a round trip per state cost the workers about 5% of their
// speedup on the 3-CPU switcheroo). Lookups take no lock: an entry being written may be missed, which only makes a
// thread explore a state again.
//
// The table grows by half when three quarters full, as visited-set.ts does, into the next of a series of buffers
// made at the start (1,024 slots, then each half as large again, up to the budget of states): the thread that
// fills one copies it into the next under the lock and bumps the generation, and the others follow at their next
// lookup. A buffer's memory is only taken as it is written, so the series costs address space, not memory. Not one
// growable SharedArrayBuffer: V8 reads a typed array over one about six times slower (61 vs 9 ns an access,
// measured here), on the search's hot path; nor a buffer made when needed, which the other threads could only get
// by message.
//
// Beside the tables, control words: the lock, the states stored, the generation, and a stop flag (set when a thread
// has finished the initial state, so every reachable state is finished, or when the search must stop).

/** Fingerprint 0:0 marks an empty slot; a state that hashes to it is stored as 0:1 (as visited-set.ts). */
const EMPTY = 0;
const MIN_SLOTS = 1024;
// Each control word on its own 64-byte cache line: every lookup reads GENERATION, and a line that another core
// writes on every add (LOCK, SIZE) would be fetched again on each.
const LINE = 16;
const LOCK = 0;
/** Threads asleep on the lock (so that an unlock wakes one only when one sleeps: a notify costs more than the add). */
const SLEEPERS = 1;
const SIZE = LINE;
const STOP = 2 * LINE;
const GENERATION = 3 * LINE;
/** The initial state's fingerprint, published by the first thread to start (see agreeOnRoot): flag, lanes. */
const ROOT = 4 * LINE;
const CONTROL_WORDS = 5 * LINE;
const CACHE_ENTRIES = 1 << 16;

/** What a thread is sent to map the set: the series of tables and the control words. */
export interface SharedStateSetBuffers {
  readonly tables: readonly SharedArrayBuffer[];
  readonly control: SharedArrayBuffer;
}

export class SharedStateSet {
  private table: Int32Array;
  private slots: number;
  private generation = 0;
  private readonly control: Int32Array;
  /**
   * This thread's cache of fingerprints known to be in the set (direct-mapped, 512 KiB): many states a thread meets
   * again are ones it finished itself a little before, and a look in its own cache reads no line another core
   * writes. Added for a slowdown of the threads it turned out not to explain (2 workers ran as fast without it on
   * this VM, within its noise; the slowdown is the machine's: two independent searches slow each other as much).
   */
  private readonly cache = new Int32Array(2 * CACHE_ENTRIES);

  constructor(readonly buffers: SharedStateSetBuffers) {
    this.table = new Int32Array(buffers.tables[0]!);
    this.slots = this.table.length / 2;
    this.control = new Int32Array(buffers.control);
  }

  /** A set for `capacity` states at most (its series of tables ends at the one that holds them). */
  static create(capacity: number): SharedStateSet {
    const tables: SharedArrayBuffer[] = [];
    for (let slots = MIN_SLOTS; ; slots = Math.ceil(slots * 1.5)) {
      tables.push(new SharedArrayBuffer(8 * slots));
      if (Math.floor((slots * 3) / 4) >= capacity) break;
    }
    return new SharedStateSet({ tables, control: new SharedArrayBuffer(4 * CONTROL_WORDS) });
  }

  /** States stored. */
  get size(): number {
    return Atomics.load(this.control, SIZE);
  }

  /** Bytes the table in use takes. */
  get bytes(): number {
    return this.buffers.tables[Atomics.load(this.control, GENERATION)]!.byteLength;
  }

  /** Whether the search should stop (see above). */
  get stopped(): boolean {
    return Atomics.load(this.control, STOP) !== 0;
  }

  stop(): void {
    Atomics.store(this.control, STOP, 1);
  }

  /**
   * Whether this thread's initial state has the fingerprint the first thread to start published (it publishes its
   * own when it is the first). Threads that loaded the build differently (a program's fingerprint hashes its source
   * text) would search two disjoint copies of the state space and count every state twice.
   */
  agreeOnRoot(a: number, b: number): boolean {
    const c = this.control;
    if (Atomics.compareExchange(c, ROOT, 0, 1) === 0) {
      c[ROOT + 1] = a;
      c[ROOT + 2] = b;
      Atomics.store(c, ROOT, 2);
      Atomics.notify(c, ROOT);
      return true;
    }
    while (Atomics.load(c, ROOT) !== 2) Atomics.wait(c, ROOT, 1, 10);
    return c[ROOT + 1] === (a | 0) && c[ROOT + 2] === (b | 0);
  }

  private lock(): void {
    const c = this.control;
    let spins = 0;
    while (Atomics.compareExchange(c, LOCK, 0, 1) !== 0) {
      // Held for a few probes, or for a growth (milliseconds): spin a little, then sleep until released.
      if (++spins > 100) {
        Atomics.add(c, SLEEPERS, 1);
        Atomics.wait(c, LOCK, 1, 1);
        Atomics.sub(c, SLEEPERS, 1);
      }
    }
  }

  private unlock(): void {
    Atomics.store(this.control, LOCK, 0);
    if (Atomics.load(this.control, SLEEPERS) !== 0) Atomics.notify(this.control, LOCK, 1);
  }

  /** Moves to the table of generation `g` (another thread grew the set). */
  private follow(g: number): void {
    this.generation = g;
    this.table = new Int32Array(this.buffers.tables[g]!);
    this.slots = this.table.length / 2;
  }

  /** The slot fingerprint `h`:`l` is at, or the empty slot where its probe ends (-1 - slot). */
  private find(h: number, l: number): number {
    const slots = this.slots;
    return probePairs(this.table, slots, Math.floor((h >>> 0) * (slots / 2 ** 32)), h, l);
  }

  /** Whether fingerprint `hi`:`lo` is stored (an entry being added may be missed: see above). */
  has(hi: number, lo: number): boolean {
    const g = Atomics.load(this.control, GENERATION);
    if (g !== this.generation) this.follow(g);
    const h = hi | 0;
    const l = lowLane(h, lo);
    const c = 2 * (l & (CACHE_ENTRIES - 1));
    if (this.cache[c] === h && this.cache[c + 1] === l) return true;
    return this.find(h, l) >= 0;
  }

  /** Notes fingerprint `hi`:`lo` in this thread's cache (a state it finished and will add with addAll). */
  remember(hi: number, lo: number): void {
    const h = hi | 0;
    const l = lowLane(h, lo);
    const c = 2 * (l & (CACHE_ENTRIES - 1));
    this.cache[c] = h;
    this.cache[c + 1] = l;
  }

  /**
   * Adds the `n` fingerprints `his[k]`:`los[k]` under one lock (a worker publishes the states it finished in
   * batches: a lock round trip per state cost more than the probes); `fresh[k]` says whether each was new.
   */
  addAll(his: Int32Array, los: Int32Array, n: number, fresh: Uint8Array): void {
    this.lock();
    try {
      for (let k = 0; k < n; k++) fresh[k] = this.insert(his[k]! | 0, lowLane(his[k]! | 0, los[k]!)) ? 1 : 0;
    } finally {
      this.unlock();
    }
  }

  /**
   * Adds fingerprint `hi`:`lo`; returns true when it was not there yet. Past the capacity it was made for, an
   * InputError (the search stops at its budget of states first).
   */
  add(hi: number, lo: number): boolean {
    const h = hi | 0;
    const l = lowLane(h, lo);
    const c = 2 * (l & (CACHE_ENTRIES - 1));
    if (this.cache[c] === h && this.cache[c + 1] === l) return false;
    this.cache[c] = h;
    this.cache[c + 1] = l;
    this.lock();
    try {
      return this.insert(h, l);
    } finally {
      this.unlock();
    }
  }

  /** Under the lock: puts `h`:`l` in the table unless it is there; true when it was not. */
  private insert(h: number, l: number): boolean {
    const g = Atomics.load(this.control, GENERATION);
    if (g !== this.generation) this.follow(g);
    const at = this.find(h, l);
    if (at >= 0) return false;
    const i = -1 - at;
    this.table[2 * i] = h;
    this.table[2 * i + 1] = l;
    const size = this.control[SIZE]! + 1;
    Atomics.store(this.control, SIZE, size);
    if (size > Math.floor((this.slots * 3) / 4)) this.grow();
    return true;
  }

  /** Copies the table into the next of the series (under the lock), and tells the others by the generation. */
  private grow(): void {
    const next = this.generation + 1;
    if (next >= this.buffers.tables.length) {
      throw new InputError(`the parallel stateful search's set of states is full at ${this.size} states`);
    }
    const old = this.table;
    const oldSlots = this.slots;
    this.follow(next);
    for (let k = 0; k < oldSlots; k++) {
      const h = old[2 * k]!;
      const l = old[2 * k + 1]!;
      if (h === EMPTY && l === EMPTY) continue;
      const i = -1 - this.find(h, l);
      this.table[2 * i] = h;
      this.table[2 * i + 1] = l;
    }
    Atomics.store(this.control, GENERATION, next);
  }
}

/** A fingerprint's low lane as the table holds it: the pair 0:0 marks an empty slot, so 0:0 is stored as 0:1. */
function lowLane(h: number, lo: number): number {
  return h === EMPTY && (lo | 0) === EMPTY ? 1 : lo | 0;
}
