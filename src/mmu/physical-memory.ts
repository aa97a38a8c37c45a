import { formatPhysical, InputError, PAGE_SIZE } from './address.ts';
import type { FrameGuard } from './frame-guard.ts';
import { TypedArena } from './typed-arena.ts';

// Module-local copies of imported constants: V8 reads an imported binding through a cell with a TDZ check on
// every use, while a local const is folded into the optimised code. This file is on the per-step path.
const PAGE = PAGE_SIZE;

/**
 * Sparse physical memory: a frame's bytes exist once written, so a machine of several GiB costs what it touches.
 * Frames can be shared copy-on-write with a frozen image (`freeze()`), so the checker can create one machine per
 * explored execution and pay per frame written, not per MiB.
 *
 * Addresses outside the installed memory behave as on a PC with nothing decoded there: reads return all ones and
 * writes are dropped (so a page-table entry pointing past memory reads as reserved bits set, i.e. RSVD #PF).
 */

/** Frames of a frozen image; never written again. */
export type FrameStore = ReadonlyMap<number, DataView>;

const CACHE_SETS = 256;
/** Frames a reset keeps for reuse (1 MiB): enough for the frames an execution of the checker writes. */
const MAX_SPARE_FRAMES = 256;
const ZERO_FRAME = new DataView(new ArrayBuffer(PAGE_SIZE));
/** The frame cache's initial contents, copied per memory (a slice is faster than filling a new array). */
const EMPTY_CACHE: readonly DataView[] = new Array<DataView>(CACHE_SETS).fill(ZERO_FRAME);

/** Bits 63..32 of a 64-bit value held in a number: a multiply by 2^-32 (exact), not a division, which is slow. */
function highWord(value: number): number {
  return Math.floor(value * 2 ** -32) >>> 0;
}

/** Reads `size` (1, 2, 4 or 8) bytes little-endian at `offset` of a frame; the access must not leave the frame. */
export function readFrame(frame: DataView, offset: number, size: number): number {
  // Eight bytes inline, the narrower sizes out of line: callers on the per-step path inline this, and V8's
  // inlining budget is counted in bytecode.
  if (size === 8) return frame.getUint32(offset + 4, true) * 2 ** 32 + frame.getUint32(offset, true);
  return readNarrow(frame, offset, size);
}

function readNarrow(frame: DataView, offset: number, size: number): number {
  if (size === 4) return frame.getUint32(offset, true);
  if (size === 2) return frame.getUint16(offset, true);
  return frame.getUint8(offset);
}

/** Writes the low `size` bytes of `value` little-endian at `offset` of a frame (a 64-bit value's low 53 bits). */
export function writeFrame(frame: DataView, offset: number, size: number, value: number): void {
  if (size !== 8) return writeNarrow(frame, offset, size, value);
  frame.setUint32(offset, value >>> 0, true);
  frame.setUint32(offset + 4, highWord(value), true);
}

function writeNarrow(frame: DataView, offset: number, size: number, value: number): void {
  if (size === 4) frame.setUint32(offset, value >>> 0, true);
  else if (size === 2) frame.setUint16(offset, value, true);
  else frame.setUint8(offset, value);
}

/** A listener for writes to a watched physical range (a spinning CPU's condition). */
export type WriteWatcher = (owner: number) => void;

/**
 * Told of every write while attached (`PhysicalMemory.tracker`): the stateful checker keeps a hash of memory and an
 * undo log with it. `beforeWrite` comes while [pa, pa + size) still holds the old bytes, `afterWrite` once it holds
 * the new ones; the range is inside one frame and inside installed memory.
 */
export interface WriteTracker {
  beforeWrite(pa: number, size: number): void;
  afterWrite(pa: number, size: number): void;
}

/**
 * The stateful checker's dead words (memory-tracker.ts): 8-byte words a stack pop read, or in a frame freed or
 * copied away, and not written since, whose values the search leaves out of a state (they differ between
 * interleavings that are otherwise the same). Sound only if nothing reads one before writing it, so every read that reaches this memory
 * is checked against them (`readDead`); the CPUs' page caches skip frames that hold any (see MemoryPort.hit).
 */
export interface DeadWords {
  /** Per frame: how many of its words are dead. */
  readonly perFrame: Int32Array;
  /** How many words are dead. */
  readonly deadCount: number;
  /** A read of [pa, pa + size) reached a frame with dead words: the watcher judges whether it read one. */
  readDead(pa: number, size: number): void;
  /** Bytes were copied from `src` to `dst` (the write is told to the WriteTracker first): a dead word's copy is dead. */
  copied(src: number, dst: number, size: number): void;
  /** The aligned word at `pa` was just read by a stack pop (POP, RET, IRET): it is dead until written. */
  popped(pa: number): void;
  /**
   * The frames [pa, pa + size) were freed, or copied away by a migration: every word is dead (what they hold is
   * read only through a use after free, which the frame guard stops, through a stale translation, or after the
   * frame is allocated again and before it is written; a read is caught like any read of a dead word).
   */
  freed(pa: number, size: number): void;
  /** Whether the 8-byte word holding `pa` is dead. */
  deadAt(pa: number): boolean;
}

/** A stack pop read the aligned word at `pa`: dead until written, while the stateful checker watches (DeadWords). */
export function poppedWord(memory: PhysicalMemory, pa: number): void {
  if (pa >= 0 && pa % 8 === 0 && pa + 8 <= memory.size) memory.dead!.popped(pa);
}

export class PhysicalMemory {
  readonly size: number;
  private readonly own = new Map<number, DataView>();
  /** Own frames a reset dropped, kept for the next copies-on-write (see reset()). */
  private readonly spare: DataView[] = [];
  private base: FrameStore | undefined;
  // Direct-mapped cache of pfn -> frame for the hot path; `cacheOwned` says the cached frame may be written.
  // One buffer for the cache and watch arrays (see TypedArena): a memory is made per machine instance.
  private readonly arena: TypedArena;
  private readonly cachePfn: Float64Array;
  private readonly cacheFrame: DataView[] = EMPTY_CACHE.slice();
  private readonly cacheOwned: Uint8Array;
  // Write watches: one range per owner (a CPU id), checked only while at least one is armed.
  private watchCount = 0;
  /** Armed watches plus an attached tracker: while non-zero, every write takes the path that tells them. */
  private slowWrites = 0;
  /** See WriteTracker; attach with track(). */
  private tracker: WriteTracker | undefined;
  /** See DeadWords; attach with watchDeadWords(). Undefined outside the stateful checker. */
  dead: DeadWords | undefined;
  private readonly watchStart: Float64Array;
  private readonly watchEnd: Float64Array;
  private watcher: WriteWatcher | undefined;
  /** Told when frames handed out by `frame()` stop being good to use (see onFramesChange). */
  private readonly frameListeners: (() => void)[] = [];

  constructor(size: number, base?: FrameStore, watchOwners = 64) {
    if (!Number.isInteger(size) || size <= 0 || size % PAGE !== 0) {
      throw new InputError(`memory size ${size} must be a positive multiple of the page size (${PAGE})`);
    }
    this.size = size;
    this.base = base;
    this.arena = new TypedArena({ float64: CACHE_SETS + 2 * watchOwners, uint8: CACHE_SETS });
    this.cachePfn = this.arena.float64(CACHE_SETS).fill(-1);
    this.watchStart = this.arena.float64(watchOwners).fill(-1);
    this.watchEnd = this.arena.float64(watchOwners).fill(-1);
    this.cacheOwned = this.arena.uint8(CACHE_SETS);
  }

  /** Number of frames materialised in this memory (not counting frames shared with an image). */
  get ownFrameCount(): number {
    return this.own.size;
  }

  /**
   * Back to the contents of the image it shares (or all zero without one): own frames are dropped and write
   * watches disarmed. How a machine image resets an instance for the next execution without building a new one.
   */
  reset(): void {
    if (this.watchCount !== 0) {
      this.watchStart.fill(-1);
      this.watchEnd.fill(-1);
      this.slowWrites -= this.watchCount;
      this.watchCount = 0;
    }
    if (this.own.size === 0) return;
    // Cached shared frames stay good; only own frames are gone (each can be cached in one set only).
    for (const [pfn, frame] of this.own) {
      if (this.spare.length < MAX_SPARE_FRAMES) this.spare.push(frame);
      const set = pfn & (CACHE_SETS - 1);
      if (this.cachePfn[set] === pfn) {
        this.cachePfn[set] = -1;
        this.cacheOwned[set] = 0;
      }
    }
    this.own.clear();
    this.framesChanged();
  }

  /**
   * The kernel allocator's frame states, when a kernel is booted: the CPUs check every translation against them
   * (see FrameGuard). Set by the kernel's boot and by each image instance.
   */
  guard: FrameGuard | undefined;

  /**
   * The guard's frames changed state (a free, a migration's copy): cached pages are dropped, so the next access
   * checks. The frames (`frames` from `pfn`) hold nothing anyone should read: their words are dead to the stateful
   * checker (DeadWords).
   */
  guardChanged(pfn?: number, frames?: number): void {
    this.framesChanged();
    if (this.dead !== undefined && pfn !== undefined && frames !== undefined) {
      this.dead.freed(pfn * PAGE, Math.min(frames * PAGE, this.size - pfn * PAGE));
    }
  }

  /** Page numbers of the frames this memory owns (written since it was made or frozen), in order. */
  ownFramePfns(): number[] {
    const pfns = [...this.own.keys()];
    return pfns.length > 1 ? pfns.sort((a, b) => a - b) : pfns;
  }

  /** Frames holding data, own or shared. */
  materialisedFrames(): number[] {
    const pfns = new Set<number>(this.own.keys());
    if (this.base) for (const pfn of this.base.keys()) pfns.add(pfn);
    return [...pfns].sort((a, b) => a - b);
  }

  /**
   * Freezes the current contents into an image that any number of memories can share copy-on-write.
   * This memory keeps working on top of the image.
   */
  freeze(): FrameStore {
    const store = new Map<number, DataView>(this.base ?? []);
    for (const [pfn, frame] of this.own) store.set(pfn, frame);
    this.own.clear();
    this.base = store;
    this.cachePfn.fill(-1);
    this.framesChanged();
    return store;
  }

  /**
   * Calls `listener` whenever the frame object behind a page number changes (a frame materialises or is copied on
   * write, or `freeze()` hands the own frames to an image), and when the first write watch is armed: whoever
   * holds frames from `frame()` drops them.
   */
  onFramesChange(listener: () => void): void {
    this.frameListeners.push(listener);
  }

  private framesChanged(): void {
    for (const listener of this.frameListeners) listener();
  }

  /**
   * The bytes of frame `pfn` (inside installed memory) for direct access: for `write`, a frame this memory owns
   * (copied from the image or materialised now). Good until the frame listeners are told otherwise; writes
   * through it bypass write watches, so a caller may write through it only while `watching` is false.
   */
  frame(pfn: number, write: boolean): DataView {
    return write ? this.frameForWrite(pfn) : this.frameForRead(pfn);
  }

  /** Whether any write watch is armed or a tracker attached (a write must then go through write() to tell them). */
  get watching(): boolean {
    return this.slowWrites !== 0;
  }

  /**
   * Attaches `tracker` (undefined detaches it): from now on it is told of every write. Whoever holds frames from
   * `frame()` drops them, as when the first watch is armed, so that no write bypasses it.
   */
  track(tracker: WriteTracker | undefined): void {
    if (tracker === this.tracker) return;
    if (this.tracker === undefined) this.slowWrites++;
    if (tracker === undefined) this.slowWrites--;
    this.tracker = tracker;
    this.framesChanged();
  }

  /** Attaches `dead` (undefined detaches it): reads are checked against its words from now on. */
  watchDeadWords(dead: DeadWords | undefined): void {
    this.dead = dead;
    this.framesChanged();
  }

  /** Whoever holds frames from `frame()` drops them (the dead words of a frame that held none appeared). */
  dropHeldFrames(): void {
    this.framesChanged();
  }

  /** The range owner `owner` watches, as [start, end), or [-1, -1] (the checker saves and restores watches). */
  watchedRange(owner: number, out: Float64Array, at: number): void {
    out[at] = this.watchStart[owner]!;
    out[at + 1] = this.watchEnd[owner]!;
  }

  private frameForRead(pfn: number): DataView {
    const set = pfn & (CACHE_SETS - 1);
    if (this.cachePfn[set] === pfn) return this.cacheFrame[set]!;
    const own = this.own.get(pfn);
    const frame = own ?? this.base?.get(pfn) ?? ZERO_FRAME;
    this.cachePfn[set] = pfn;
    this.cacheFrame[set] = frame;
    this.cacheOwned[set] = own ? 1 : 0;
    return frame;
  }

  private frameForWrite(pfn: number): DataView {
    const set = pfn & (CACHE_SETS - 1);
    if (this.cachePfn[set] === pfn && this.cacheOwned[set] === 1) return this.cacheFrame[set]!;
    let frame = this.own.get(pfn);
    if (!frame) {
      const shared = this.base?.get(pfn);
      frame = this.spare.pop();
      if (frame) {
        // A frame a reset gave back: refill it rather than allocate (the checker resets for every execution).
        const bytes = new Uint8Array(frame.buffer);
        if (shared) bytes.set(new Uint8Array(shared.buffer, shared.byteOffset, PAGE));
        else bytes.fill(0);
      } else {
        frame = new DataView(shared ? shared.buffer.slice(0) : new ArrayBuffer(PAGE));
      }
      this.own.set(pfn, frame);
      this.framesChanged();
    }
    this.cachePfn[set] = pfn;
    this.cacheFrame[set] = frame;
    this.cacheOwned[set] = 1;
    return frame;
  }

  private inRange(pa: number, size: number): boolean {
    return pa >= 0 && pa + size <= this.size;
  }

  // Accesses must not cross a frame boundary; the CPU splits those (they translate two pages anyway).
  read8(pa: number): number {
    if (!this.inRange(pa, 1)) return 0xff;
    if (this.dead !== undefined) this.checkDead(pa, 1);
    return this.frameForRead(Math.floor(pa / PAGE)).getUint8(pa & 0xfff);
  }
  read16(pa: number): number {
    if (!this.inRange(pa, 2)) return 0xffff;
    if (this.dead !== undefined) this.checkDead(pa, 2);
    return this.frameForRead(Math.floor(pa / PAGE)).getUint16(pa & 0xfff, true);
  }
  read32(pa: number): number {
    if (!this.inRange(pa, 4)) return 0xffffffff;
    if (this.dead !== undefined) this.checkDead(pa, 4);
    return this.frameForRead(Math.floor(pa / PAGE)).getUint32(pa & 0xfff, true);
  }
  /** 64-bit read as a number: exact below 2^53 (DESIGN.md: numbers on the hot path, BigInt only at the edge). */
  read64(pa: number): number {
    const offset = pa & 0xfff;
    if (offset > PAGE - 8 || !this.inRange(pa, 8)) return this.read32(pa + 4) * 2 ** 32 + this.read32(pa);
    if (this.dead !== undefined) this.checkDead(pa, 8);
    const frame = this.frameForRead(Math.floor(pa / PAGE));
    return frame.getUint32(offset + 4, true) * 2 ** 32 + frame.getUint32(offset, true);
  }
  /** Reads `size` bytes (1, 2, 4 or 8) little-endian. */
  read(pa: number, size: number): number {
    // The common case first: an aligned access inside installed memory, one cache probe.
    const offset = pa & 0xfff;
    if (offset + size <= PAGE && pa >= 0 && pa + size <= this.size) {
      if (this.dead !== undefined) this.checkDead(pa, size);
      return readFrame(this.frameForRead(Math.floor(pa / PAGE)), offset, size);
    }
    switch (size) {
      case 1:
        return this.read8(pa);
      case 2:
        return this.read16(pa);
      case 4:
        return this.read32(pa);
      default:
        return this.read64(pa);
    }
  }

  /** A read of [pa, pa + size) (inside one frame) while dead words are watched. */
  private checkDead(pa: number, size: number): void {
    const dead = this.dead!;
    if (dead.perFrame[Math.floor(pa / PAGE)] !== 0) dead.readDead(pa, size);
  }

  /** As read (within one frame), unchecked against dead words: a look that changes nothing (stutter-step.ts). */
  peek(pa: number, size: number): number {
    if (!this.inRange(pa, size) || (pa & 0xfff) + size > PAGE) return -1;
    return readFrame(this.frameForRead(Math.floor(pa / PAGE)), pa & 0xfff, size);
  }

  /** As read32, unchecked against dead words: for the tracker that keeps them. */
  peek32(pa: number): number {
    if (!this.inRange(pa, 4)) return 0xffffffff;
    return this.frameForRead(Math.floor(pa / PAGE)).getUint32(pa & 0xfff, true);
  }

  write8(pa: number, value: number): void {
    if (!this.inRange(pa, 1)) return;
    if (this.tracker !== undefined) this.tracker.beforeWrite(pa, 1);
    this.frameForWrite(Math.floor(pa / PAGE)).setUint8(pa & 0xfff, value);
    if (this.slowWrites !== 0) this.wrote(pa, 1);
  }
  write16(pa: number, value: number): void {
    if (!this.inRange(pa, 2)) return;
    if (this.tracker !== undefined) this.tracker.beforeWrite(pa, 2);
    this.frameForWrite(Math.floor(pa / PAGE)).setUint16(pa & 0xfff, value, true);
    if (this.slowWrites !== 0) this.wrote(pa, 2);
  }
  write32(pa: number, value: number): void {
    if (!this.inRange(pa, 4)) return;
    if (this.tracker !== undefined) this.tracker.beforeWrite(pa, 4);
    this.frameForWrite(Math.floor(pa / PAGE)).setUint32(pa & 0xfff, value >>> 0, true);
    if (this.slowWrites !== 0) this.wrote(pa, 4);
  }
  /** 64-bit write of a number (its low 53 bits are exact) or of two 32-bit halves via write32. */
  write64(pa: number, value: number): void {
    const offset = pa & 0xfff;
    if (offset > PAGE - 8 || !this.inRange(pa, 8)) {
      this.write32(pa, value >>> 0);
      this.write32(pa + 4, highWord(value));
      return;
    }
    if (this.tracker !== undefined) this.tracker.beforeWrite(pa, 8);
    const frame = this.frameForWrite(Math.floor(pa / PAGE));
    frame.setUint32(offset, value >>> 0, true);
    frame.setUint32(offset + 4, highWord(value), true);
    if (this.slowWrites !== 0) this.wrote(pa, 8);
  }
  write(pa: number, size: number, value: number): void {
    // The common case first, as in read(): an aligned access inside installed memory, nobody spinning on it and no
    // tracker attached.
    const offset = pa & 0xfff;
    if (offset + size <= PAGE && pa >= 0 && pa + size <= this.size && this.slowWrites === 0) {
      writeFrame(this.frameForWrite(Math.floor(pa / PAGE)), offset, size, value);
      return;
    }
    switch (size) {
      case 1:
        this.write8(pa, value);
        return;
      case 2:
        this.write16(pa, value);
        return;
      case 4:
        this.write32(pa, value);
        return;
      default:
        this.write64(pa, value);
    }
  }

  /** Copies one 4 KiB frame (migration's copy step). */
  copyFrame(srcPfn: number, dstPfn: number): void {
    this.copy(srcPfn * PAGE, dstPfn * PAGE, PAGE);
  }

  /**
   * Copies `size` bytes from `src` to `dst`, each range inside one frame (a CPU's copy chunk): bytes move as bytes,
   * so no value is rounded. Outside installed memory reads are all ones and writes are dropped, as elsewhere.
   */
  copy(src: number, dst: number, size: number): void {
    if (!this.inRange(dst, size)) return;
    // Zeros onto zeros: a source frame never written, onto a destination never written, changes nothing (a
    // migration of a page nobody wrote need not materialise its new frame).
    const spfn = Math.floor(src / PAGE);
    const dpfn = Math.floor(dst / PAGE);
    if (this.inRange(src, size) && !this.materialised(spfn) && !this.materialised(dpfn)) {
      if (this.watchCount !== 0) this.notify(dst, size);
      return;
    }
    if (this.tracker !== undefined) this.tracker.beforeWrite(dst, size);
    const target = new Uint8Array(this.frameForWrite(Math.floor(dst / PAGE)).buffer, dst & 0xfff, size);
    if (this.inRange(src, size)) {
      target.set(new Uint8Array(this.frameForRead(Math.floor(src / PAGE)).buffer, src & 0xfff, size));
    } else {
      target.fill(0xff);
    }
    if (this.slowWrites !== 0) this.wrote(dst, size);
    // A copy moves a dead word without reading it as a value: its copy is dead too (a migration's copy of a stack).
    if (this.dead !== undefined && this.inRange(src, size)) this.dead.copied(src, dst, size);
  }

  /** Whether frame `pfn` holds data (own or shared): one never written reads as zeros. */
  private materialised(pfn: number): boolean {
    return this.own.has(pfn) || this.base?.has(pfn) === true;
  }

  /** A copy of a frame's bytes (for inspection and tests). */
  frameBytes(pfn: number): Uint8Array {
    return new Uint8Array(this.frameForRead(pfn).buffer.slice(0));
  }

  /** Sets the function told when a watched range is written (the machine wakes that CPU). */
  setWatcher(watcher: WriteWatcher): void {
    this.watcher = watcher;
  }

  /** Arms a write watch for `owner` over [pa, pa + size); a write overlapping it calls the watcher once. */
  watch(owner: number, pa: number, size: number): void {
    if (owner < 0 || owner >= this.watchStart.length) {
      throw new InputError(`watch owner ${owner} is out of range 0..${this.watchStart.length - 1}`);
    }
    const armed = this.watchStart[owner]! >= 0;
    this.watchStart[owner] = pa;
    this.watchEnd[owner] = pa + size;
    if (armed) return;
    this.slowWrites++;
    // Writes through frame() bypass the watches, so whoever holds frames drops them when the first is armed.
    if (this.watchCount++ === 0) this.framesChanged();
  }

  unwatch(owner: number): void {
    if (this.watchStart[owner]! >= 0) {
      this.watchCount--;
      this.slowWrites--;
      this.watchStart[owner] = -1;
      this.watchEnd[owner] = -1;
    }
  }

  /** After a write on the slow path: the tracker, then the watches. */
  private wrote(pa: number, size: number): void {
    if (this.tracker !== undefined) this.tracker.afterWrite(pa, size);
    if (this.watchCount !== 0) this.notify(pa, size);
  }

  private notify(pa: number, size: number): void {
    const end = pa + size;
    for (let owner = 0; owner < this.watchStart.length; owner++) {
      const start = this.watchStart[owner]!;
      if (start >= 0 && pa < this.watchEnd[owner]! && end > start) {
        this.unwatch(owner);
        this.watcher?.(owner);
      }
    }
  }

  toString(): string {
    return `PhysicalMemory(${formatPhysical(this.size)} bytes, ${this.own.size} own frames)`;
  }
}
