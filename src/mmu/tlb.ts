import { formatPhysical, formatVirtual, PAGE_SIZE } from './address.ts';
import { describeValue, InputError, requireOptions } from './input-error.ts';
import { type ArenaSize, TypedArena } from './typed-arena.ts';
import type { WalkResult } from './walker.ts';

// Module-local copies of imported constants: V8 reads an imported binding through a cell with a TDZ check on
// every use, while a local const is folded into the optimised code. This file is on the per-step path.
const PAGE = PAGE_SIZE;

// A per-CPU TLB with the architecture's semantics (SDM Vol. 3 §4.10), not one implementation's:
// - only translations that were present at every level are cached (fill takes a successful walk);
// - an entry keeps translating after its PTE is cleared or changed, until this CPU invalidates it;
// - INVLPG removes every entry for the page, global and large ones too; MOV to CR3 removes non-global entries;
//   toggling CR4.PGE removes all;
// - hardware may drop an entry or fill one speculatively at any time (`evict`, `fill` from the checker).
// Layout follows Bochs cpu/tlb.h and real L1 DTLBs: a set-associative array for 4 KiB pages and a small
// fully-associative array for 2 MiB / 1 GiB pages. Replacement is deterministic: a free way if there is one, else
// a round-robin victim pointer per set (any choice is legal; this one replays bit for bit).

export const TLB_FLAG = {
  WRITABLE: 1 << 0,
  USER: 1 << 1,
  NO_EXECUTE: 1 << 2,
  DIRTY: 1 << 3,
  GLOBAL: 1 << 4,
} as const;

export interface TlbConfig {
  /** Number of 4 KiB entries (power of two). Default 64. */
  readonly entries?: number;
  /** Associativity of the 4 KiB array (power of two dividing `entries`). Default 4. */
  readonly ways?: number;
  /** Number of large-page (2 MiB / 1 GiB) entries. Default 32. */
  readonly largeEntries?: number;
}

/** One cached translation, for snapshots and tests. */
export interface TlbEntry {
  /** Virtual address of the page (model form). */
  readonly va: number;
  /** Physical base of the page. */
  readonly pa: number;
  readonly pageSize: number;
  readonly writable: boolean;
  readonly user: boolean;
  readonly noExecute: boolean;
  readonly dirty: boolean;
  readonly global: boolean;
}

/** A TLB's arrays, read-only (see Tlb.storage). */
export interface TlbStorage {
  readonly tag: Float64Array;
  readonly frame: Float64Array;
  readonly flags: Uint8Array;
  readonly nextVictim: Uint32Array;
  readonly largeBase: Float64Array;
  readonly largeSize: Float64Array;
  readonly largeFrame: Float64Array;
  readonly largeFlags: Uint8Array;
}

/** The largest 4 KiB array a TLB may have: it is allocated up front, so the bound keeps a typo from costing GiBs. */
export const MAX_TLB_ENTRIES = 65536;

function isPowerOfTwo(n: unknown): n is number {
  // Not (n & (n - 1)): bitwise operators truncate to 32 bits, so 3 * 2^32 would pass.
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

export class Tlb {
  readonly capacity: number;
  readonly ways: number;
  readonly largeCapacity: number;
  private readonly sets: number;
  // 4 KiB array: tag = virtual page number (-1 = invalid), frame = physical page base.
  private readonly tag: Float64Array;
  private readonly frame: Float64Array;
  private readonly flags: Uint8Array;
  private readonly nextVictim: Uint32Array;
  // Large array: virtual base (-1 = invalid), size, physical base.
  private readonly largeBase: Float64Array;
  private readonly largeSize: Float64Array;
  private readonly largeFrame: Float64Array;
  private readonly largeFlags: Uint8Array;
  private largeNextVictim = 0;
  private largeCount = 0;
  hits = 0;
  misses = 0;
  /**
   * The most entries in use that a fill of a new page found in its 4 KiB set, and in the large-page array, since
   * the counts were last set to 0. The stateful search's TLB-event reduction holds only while no set comes close
   * to full (src/explore/tlb-event-reduction.ts). Not copied with the contents.
   */
  fullestSet = 0;
  fullestLarge = 0;
  private readonly listeners: (() => void)[] = [];

  /** The checked geometry of `config` (defaults: 64 entries, 4 ways, 32 large entries); refuses a bad one. */
  static geometry(config: TlbConfig = {}): { entries: number; ways: number; largeEntries: number } {
    const c = requireOptions<TlbConfig>(config, 'TLB config', ['entries', 'ways', 'largeEntries']);
    const entries = c.entries === undefined ? 64 : c.entries;
    const ways = c.ways === undefined ? 4 : c.ways;
    const largeEntries = c.largeEntries === undefined ? 32 : c.largeEntries;
    if (!isPowerOfTwo(entries) || entries > MAX_TLB_ENTRIES) {
      throw new InputError(
        `TLB entries ${describeValue(entries)} must be a power of two in 1..${MAX_TLB_ENTRIES} (real L1 and L2 TLBs hold 64 to a few thousand)`,
      );
    }
    if (!isPowerOfTwo(ways) || ways > entries) {
      throw new InputError(
        `TLB ways ${describeValue(ways)} must be a power of two no larger than entries (${entries})`,
      );
    }
    if (typeof largeEntries !== 'number' || !Number.isInteger(largeEntries) || largeEntries < 0 || largeEntries > 255) {
      throw new InputError(`TLB largeEntries ${describeValue(largeEntries)} must be an integer in 0..255`);
    }
    return { entries, ways, largeEntries };
  }

  /** The typed-array storage a TLB of `config` takes from an arena; refuses a bad config as the constructor does. */
  static storage(config: TlbConfig = {}): ArenaSize {
    const { entries, ways, largeEntries } = Tlb.geometry(config);
    return { float64: 2 * entries + 3 * largeEntries, uint32: entries / ways, uint8: entries + largeEntries };
  }

  /** Arrays come from `arena` when given (a machine carves all its CPUs' TLBs from one buffer), else a new one. */
  constructor(config: TlbConfig = {}, arena?: TypedArena) {
    const { entries, ways, largeEntries } = Tlb.geometry(config);
    this.capacity = entries;
    this.ways = ways;
    this.sets = entries / ways;
    this.largeCapacity = largeEntries;
    // One buffer for all the arrays (see TypedArena): a TLB is made per CPU per machine instance.
    const a = arena ?? new TypedArena(Tlb.storage(config));
    this.tag = a.float64(entries).fill(-1);
    this.frame = a.float64(entries);
    this.largeBase = a.float64(largeEntries).fill(-1);
    this.largeSize = a.float64(largeEntries);
    this.largeFrame = a.float64(largeEntries);
    this.nextVictim = a.uint32(this.sets);
    this.flags = a.uint8(entries);
    this.largeFlags = a.uint8(largeEntries);
  }

  /** Calls `listener` after every change to the cached translations (a cache derived from entries drops itself). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Counts changes (see changed()): an unchanged generation means unchanged contents (a machine reset's test). */
  generation = 0;

  /** Every change to the cached translations (fill, invalidation, flush, copy) tells the listeners. */
  private changed(): void {
    this.generation++;
    for (const listener of this.listeners) listener();
  }

  /** Slot holding a translation for `va`, or -1. Slots >= capacity are large-page entries. Counts hit/miss. */
  lookup(va: number): number {
    const vpn = Math.floor(va / PAGE);
    const first = (vpn & (this.sets - 1)) * this.ways;
    for (let i = first; i < first + this.ways; i++) {
      if (this.tag[i] === vpn) {
        this.hits++;
        return i;
      }
    }
    if (this.largeCount !== 0) {
      for (let j = 0; j < this.largeCapacity; j++) {
        const base = this.largeBase[j]!;
        if (base >= 0 && va >= base && va < base + this.largeSize[j]!) {
          this.hits++;
          return this.capacity + j;
        }
      }
    }
    this.misses++;
    return -1;
  }

  /**
   * The 4 KiB slot translating `va`, or -1, without counting a hit or miss: the CPU's fast path probes first
   * and counts only the hits it uses (a miss goes on to lookup(), which counts it).
   */
  probe(va: number): number {
    const vpn = Math.floor(va / PAGE);
    const first = (vpn & (this.sets - 1)) * this.ways;
    for (let i = first; i < first + this.ways; i++) if (this.tag[i] === vpn) return i;
    return -1;
  }

  /** Flags and physical page base of a 4 KiB slot from probe(). */
  smallFlags(slot: number): number {
    return this.flags[slot]!;
  }
  smallFrame(slot: number): number {
    return this.frame[slot]!;
  }

  /** Cached flags (TLB_FLAG bits) of a slot. */
  flagsOf(slot: number): number {
    return slot < this.capacity ? this.flags[slot]! : this.largeFlags[slot - this.capacity]!;
  }

  /** Physical address of `va` through a slot returned by lookup(va). */
  physical(slot: number, va: number): number {
    if (slot < this.capacity) return this.frame[slot]! + (va & 0xfff);
    const j = slot - this.capacity;
    return this.largeFrame[j]! + (va - this.largeBase[j]!);
  }

  /**
   * Caches the translation of a successful walk for `va`, replacing any entry for the same page.
   * `global` must already account for CR4.PGE (G is ignored without it). Returns the slot.
   */
  fill(va: number, walk: WalkResult, global: boolean): number {
    if (!walk.ok) throw new InputError('a TLB caches only successful translations: fill() got a faulting walk');
    this.changed();
    const flags =
      (walk.writable ? TLB_FLAG.WRITABLE : 0) |
      (walk.user ? TLB_FLAG.USER : 0) |
      (walk.noExecute ? TLB_FLAG.NO_EXECUTE : 0) |
      (walk.dirty ? TLB_FLAG.DIRTY : 0) |
      (global ? TLB_FLAG.GLOBAL : 0);
    if (walk.pageSize === PAGE) {
      const vpn = Math.floor(va / PAGE);
      const set = vpn & (this.sets - 1);
      const first = set * this.ways;
      let slot = -1;
      let used = 0;
      for (let i = first; i < first + this.ways; i++) {
        if (this.tag[i] === vpn) slot = i;
        if (this.tag[i]! >= 0) used++;
      }
      if (slot < 0) {
        if (used > this.fullestSet) this.fullestSet = used;
        for (let i = first; i < first + this.ways && slot < 0; i++) if (this.tag[i] === -1) slot = i;
      }
      if (slot < 0) {
        slot = first + this.nextVictim[set]!;
        this.nextVictim[set] = (this.nextVictim[set]! + 1) % this.ways;
      }
      this.tag[slot] = vpn;
      this.frame[slot] = walk.pageBase;
      this.flags[slot] = flags;
      return slot;
    }
    if (this.largeCapacity === 0) return -1;
    const base = Math.floor(va / walk.pageSize) * walk.pageSize;
    let j = -1;
    for (let k = 0; k < this.largeCapacity; k++) if (this.largeBase[k] === base) j = k;
    if (j < 0) {
      if (this.largeCount > this.fullestLarge) this.fullestLarge = this.largeCount;
      for (let k = 0; k < this.largeCapacity && j < 0; k++) if (this.largeBase[k] === -1) j = k;
    }
    if (j < 0) {
      // The victim stays a valid slot, so the count of valid large entries does not change.
      j = this.largeNextVictim;
      this.largeNextVictim = (this.largeNextVictim + 1) % this.largeCapacity;
    }
    if (this.largeBase[j] === -1) this.largeCount++;
    this.largeBase[j] = base;
    this.largeSize[j] = walk.pageSize;
    this.largeFrame[j] = walk.pageBase;
    this.largeFlags[j] = flags;
    return this.capacity + j;
  }

  /** INVLPG: removes every entry translating `va` (global and large-page ones too). Returns how many. */
  invalidatePage(va: number): number {
    this.changed();
    let removed = 0;
    const vpn = Math.floor(va / PAGE);
    const first = (vpn & (this.sets - 1)) * this.ways;
    for (let i = first; i < first + this.ways; i++) {
      if (this.tag[i] === vpn) {
        this.tag[i] = -1;
        removed++;
      }
    }
    for (let j = 0; j < this.largeCapacity && this.largeCount !== 0; j++) {
      const base = this.largeBase[j]!;
      if (base >= 0 && va >= base && va < base + this.largeSize[j]!) {
        this.largeBase[j] = -1;
        this.largeCount--;
        removed++;
      }
    }
    return removed;
  }

  /** MOV to CR3 (without PCID): removes all non-global entries. */
  flushNonGlobal(): void {
    this.flushWhere(true);
  }

  /** CR4.PGE toggle (or a full flush): removes everything. */
  flushAll(): void {
    this.flushWhere(false);
  }

  private flushWhere(keepGlobal: boolean): void {
    this.changed();
    for (let i = 0; i < this.capacity; i++) {
      if (!keepGlobal || (this.flags[i]! & TLB_FLAG.GLOBAL) === 0) this.tag[i] = -1;
    }
    for (let j = 0; j < this.largeCapacity; j++) {
      if (this.largeBase[j]! >= 0 && (!keepGlobal || (this.largeFlags[j]! & TLB_FLAG.GLOBAL) === 0)) {
        this.largeBase[j] = -1;
        this.largeCount--;
      }
    }
  }

  /** Number of valid entries. */
  get size(): number {
    let n = this.largeCount;
    for (let i = 0; i < this.capacity; i++) if (this.tag[i]! >= 0) n++;
    return n;
  }

  /** The cached translations, 4 KiB array first (slot order), then large pages. Off the hot path. */
  entries(): TlbEntry[] {
    const out: TlbEntry[] = [];
    const entry = (va: number, pa: number, pageSize: number, f: number): TlbEntry => ({
      va,
      pa,
      pageSize,
      writable: (f & TLB_FLAG.WRITABLE) !== 0,
      user: (f & TLB_FLAG.USER) !== 0,
      noExecute: (f & TLB_FLAG.NO_EXECUTE) !== 0,
      dirty: (f & TLB_FLAG.DIRTY) !== 0,
      global: (f & TLB_FLAG.GLOBAL) !== 0,
    });
    for (let i = 0; i < this.capacity; i++) {
      const vpn = this.tag[i]!;
      if (vpn >= 0) out.push(entry(vpn * PAGE, this.frame[i]!, PAGE, this.flags[i]!));
    }
    for (let j = 0; j < this.largeCapacity; j++) {
      const base = this.largeBase[j]!;
      if (base >= 0) out.push(entry(base, this.largeFrame[j]!, this.largeSize[j]!, this.largeFlags[j]!));
    }
    return out;
  }

  /**
   * Internal (the stateful checker, which hashes a TLB's contents): the arrays behind the entries, to read only.
   * `tag` holds 4 KiB slots' virtual page numbers (-1: invalid), `largeBase` large slots' virtual bases (-1: invalid).
   */
  get storage(): TlbStorage {
    this.arrays ??= {
      tag: this.tag,
      frame: this.frame,
      flags: this.flags,
      nextVictim: this.nextVictim,
      largeBase: this.largeBase,
      largeSize: this.largeSize,
      largeFrame: this.largeFrame,
      largeFlags: this.largeFlags,
    };
    return this.arrays;
  }
  private arrays: TlbStorage | undefined;

  /** Internal (the stateful checker): valid large-page entries, and the large array's replacement pointer. */
  get largeEntryCount(): number {
    return this.largeCount;
  }
  get largeReplacement(): number {
    return this.largeNextVictim;
  }

  /** Copies another TLB's contents and counters into this one (same geometry), for machine clones. */
  copyFrom(other: Tlb): void {
    if (other.capacity !== this.capacity || other.ways !== this.ways || other.largeCapacity !== this.largeCapacity) {
      throw new InputError('cannot copy a TLB of a different geometry');
    }
    this.changed();
    this.tag.set(other.tag);
    this.frame.set(other.frame);
    this.flags.set(other.flags);
    this.nextVictim.set(other.nextVictim);
    // With no large entry on either side there is nothing to copy: an invalid entry's fields are never read.
    if (this.largeCount !== 0 || other.largeCount !== 0) {
      this.largeBase.set(other.largeBase);
      this.largeSize.set(other.largeSize);
      this.largeFrame.set(other.largeFrame);
      this.largeFlags.set(other.largeFlags);
    }
    this.largeNextVictim = other.largeNextVictim;
    this.largeCount = other.largeCount;
    this.hits = other.hits;
    this.misses = other.misses;
  }

  toString(): string {
    return this.entries()
      .map((e) => `${formatVirtual(e.va)} -> ${formatPhysical(e.pa)}${e.global ? ' G' : ''}${e.dirty ? ' D' : ''}`)
      .join('\n');
  }
}
