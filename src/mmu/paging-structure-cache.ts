import { formatPhysical, formatVirtual } from './address.ts';
import { describeValue, InputError } from './input-error.ts';

// Paging-structure caches (SDM Vol. 3 §4.10.3): besides the TLB, a processor may cache the upper paging-structure
// entries a walk used, so a later walk of a nearby address skips the levels above:
// - a PML4-cache entry (for linear-address bits 47:39) holds the physical address of the PDPT its PML4E references,
//   with that PML4E's R/W, U/S and XD;
// - a PDPTE-cache entry (bits 47:30) holds the page directory's address, with R/W and U/S AND-ed and XD OR-ed over
//   the PML4E and the PDPTE;
// - a PDE-cache entry (bits 47:21) holds the page table's address, the same over three levels. A PDE that maps a
//   2 MiB page (PS=1) is a translation, cached in the TLB, never here (§4.10.3.1).
// What matters for correctness is what the SDM allows, not one implementation's sizes:
// - an entry is made only from present entries with no reserved bit set; it keeps being used after the entry in
//   memory changes, until this processor invalidates it (so a walk can go through a freed page table);
// - INVLPG invalidates every entry of every paging-structure cache (for the current PCID: all of them here, PCIDs
//   are not modelled), whatever its address (§4.10.4.1); so does MOV to CR3 (entries are never global), and a change
//   of CR4.PGE or CR4.PAE;
// - a #PF invalidates the entries that would be used for its linear address (§4.10.4.1, "page faults");
// - the hardware may drop an entry at any time; the checker makes drops and fills events (mmu/tlb.ts does the same
//   for TLB entries).
// Each level is a small fully-associative array with a round-robin victim, deterministic like the TLB's.

/** Paging-structure-cache levels, named by the entry they cache (the level of that entry in the walk). */
export const PSC_LEVEL = { PML4E: 4, PDPTE: 3, PDE: 2 } as const;
export type PscLevel = (typeof PSC_LEVEL)[keyof typeof PSC_LEVEL];

/** The rights an entry carries, combined over the levels above it and its own (SDM §4.10.3.1). */
export const PSC_FLAG = { WRITABLE: 1 << 0, USER: 1 << 1, NO_EXECUTE: 1 << 2 } as const;

/** One cached paging-structure entry, for snapshots, schedules and tests. */
export interface PscEntry {
  readonly level: PscLevel;
  /** The first linear address the entry covers (model form): aligned to 512 GiB, 1 GiB or 2 MiB. */
  readonly va: number;
  /** Physical address of the paging structure the cached entry references. */
  readonly table: number;
  readonly writable: boolean;
  readonly user: boolean;
  readonly noExecute: boolean;
}

/** Bytes of linear address one entry of each level covers, indexed by level (2..4). */
export const PSC_SPAN = [0, 0, 2 ** 21, 2 ** 30, 2 ** 39];

/** The largest per-level capacity: entries are searched linearly, so a typo must not make that slow. */
export const MAX_PSC_ENTRIES = 64;

export class PagingStructureCache {
  /** Entries per level. */
  readonly capacity: number;
  // Per level index (level - 2): the covered region's number (va / span; -1: invalid), the referenced table, its
  // flags, and the referenced table frame's guard generation + 1 when filled (0: not known; see MemoryPort).
  private readonly key: Float64Array;
  private readonly table: Float64Array;
  private readonly flags: Uint8Array;
  private readonly generation: Uint32Array;
  private readonly nextVictim = new Uint8Array(3);
  private count = 0;
  /** Counts changes (fills, drops, invalidations, copies): an unchanged version means unchanged contents. */
  version = 0;
  /** Set by lookup(): the deepest hit's table, flags, slot and generation. */
  hitTable = 0;
  hitFlags = 0;
  hitSlot = -1;
  hitGeneration = 0;

  constructor(entriesPerLevel = 16) {
    if (!Number.isInteger(entriesPerLevel) || entriesPerLevel < 1 || entriesPerLevel > MAX_PSC_ENTRIES) {
      throw new InputError(
        `paging-structure cache entries per level ${describeValue(entriesPerLevel)} must be an integer in 1..${MAX_PSC_ENTRIES}`,
      );
    }
    this.capacity = entriesPerLevel;
    this.key = new Float64Array(3 * entriesPerLevel).fill(-1);
    this.table = new Float64Array(3 * entriesPerLevel);
    this.flags = new Uint8Array(3 * entriesPerLevel);
    this.generation = new Uint32Array(3 * entriesPerLevel);
  }

  /** Valid entries over all levels. */
  get size(): number {
    return this.count;
  }

  private find(level: number, va: number): number {
    const k = Math.floor(va / PSC_SPAN[level]!);
    const base = (level - 2) * this.capacity;
    for (let i = base; i < base + this.capacity; i++) if (this.key[i] === k) return i;
    return -1;
  }

  /**
   * The deepest cached entry a walk of `va` may start from: returns its level (2: a PDE-cache hit, the walk reads
   * the PTE next; 3; 4), or 0 for none. The hit's table, flags and slot are left in hitTable, hitFlags, hitSlot.
   */
  lookup(va: number): number {
    if (this.count === 0) return 0;
    for (let level = 2; level <= 4; level++) {
      const slot = this.find(level, va);
      if (slot >= 0) {
        this.hitTable = this.table[slot]!;
        this.hitFlags = this.flags[slot]!;
        this.hitGeneration = this.generation[slot]!;
        this.hitSlot = slot;
        return level;
      }
    }
    this.hitSlot = -1;
    return 0;
  }

  /**
   * Caches the `level` entry used to translate `va`: it references `table` with `flags` (PSC_FLAG) combined over
   * the levels above. Replaces an entry for the same region, else a free slot, else the level's round-robin victim.
   */
  fill(level: PscLevel, va: number, table: number, flags: number, generation = 0): void {
    this.version++;
    let slot = this.find(level, va);
    if (slot < 0) {
      const base = (level - 2) * this.capacity;
      for (let i = base; i < base + this.capacity && slot < 0; i++) if (this.key[i] === -1) slot = i;
      if (slot < 0) {
        const v = this.nextVictim[level - 2]!;
        slot = base + v;
        this.nextVictim[level - 2] = (v + 1) % this.capacity;
      } else this.count++;
      this.key[slot] = Math.floor(va / PSC_SPAN[level]!);
    }
    this.table[slot] = table;
    this.flags[slot] = flags;
    this.generation[slot] = generation;
  }

  /** Drops the `level` entry covering `va` (the hardware's freedom, a checker event); returns whether one was held. */
  drop(level: PscLevel, va: number): boolean {
    const slot = this.find(level, va);
    if (slot < 0) return false;
    this.key[slot] = -1;
    this.count--;
    this.version++;
    return true;
  }

  /**
   * The cached entry of `level` or above (the deepest) that covers `va`, as lookup() gives it: its level, or 0.
   * For a walk that must not start below `level` (a speculative fill of that level).
   */
  lookupFrom(level: PscLevel, va: number): number {
    if (this.count === 0) return 0;
    for (let l = level; l <= 4; l++) {
      const slot = this.find(l, va);
      if (slot >= 0) {
        this.hitTable = this.table[slot]!;
        this.hitFlags = this.flags[slot]!;
        this.hitGeneration = this.generation[slot]!;
        this.hitSlot = slot;
        return l;
      }
    }
    this.hitSlot = -1;
    return 0;
  }

  /** Whether a `level` entry covering `va` is cached (no side effects). */
  holds(level: PscLevel, va: number): boolean {
    return this.find(level, va) >= 0;
  }

  /** Empty, as made (a machine reset: an image instance starts with nothing cached). */
  clear(): void {
    this.key.fill(-1);
    this.nextVictim.fill(0);
    this.count = 0;
    this.version++;
  }

  /** INVLPG, MOV to CR3, a change of CR4.PGE: every entry goes (SDM §4.10.4.1). Returns how many were held. */
  invalidateAll(): number {
    const n = this.count;
    if (n !== 0) {
      this.key.fill(-1);
      this.nextVictim.fill(0);
      this.count = 0;
      this.version++;
    }
    return n;
  }

  /** A #PF for `va`: the entries that would be used to translate it go (SDM §4.10.4.1). Returns how many. */
  invalidateAddress(va: number): number {
    let n = 0;
    for (let level = 2; level <= 4; level++) {
      if (this.drop(level as PscLevel, va)) n++;
    }
    return n;
  }

  /** Every valid entry, deepest level first, then by address. */
  entries(): PscEntry[] {
    const out: PscEntry[] = [];
    for (let level = 2; level <= 4; level++) {
      const base = (level - 2) * this.capacity;
      for (let i = base; i < base + this.capacity; i++) {
        const k = this.key[i]!;
        if (k === -1) continue;
        const f = this.flags[i]!;
        out.push({
          level: level as PscLevel,
          va: k * PSC_SPAN[level]!,
          table: this.table[i]!,
          writable: (f & PSC_FLAG.WRITABLE) !== 0,
          user: (f & PSC_FLAG.USER) !== 0,
          noExecute: (f & PSC_FLAG.NO_EXECUTE) !== 0,
        });
      }
    }
    return out.sort((a, b) => a.level - b.level || a.va - b.va);
  }

  /** Becomes a copy of `other` (same capacity): machine images copy a CPU's caches. */
  copyFrom(other: PagingStructureCache): void {
    if (other.capacity !== this.capacity) {
      throw new InputError(`paging-structure cache copy: capacity ${other.capacity} into ${this.capacity}`);
    }
    this.key.set(other.key);
    this.table.set(other.table);
    this.flags.set(other.flags);
    this.generation.set(other.generation);
    this.nextVictim.set(other.nextVictim);
    this.count = other.count;
    this.version++;
  }

  /**
   * Internal (the stateful checker hashes a cache's contents): calls `visit` for each valid slot with its index,
   * level, region number, table, flags and generation, then gives the replacement pointers as slot -1.
   */
  forEachSlot(visit: (slot: number, region: number, table: number, flags: number, generation: number) => void): void {
    for (let i = 0; i < this.key.length; i++) {
      const k = this.key[i]!;
      if (k !== -1) visit(i, k, this.table[i]!, this.flags[i]!, this.generation[i]!);
    }
    visit(-1, this.nextVictim[0]!, this.nextVictim[1]!, this.nextVictim[2]!, this.count);
  }

  /** "PDE 0xffffc90000000000 -> 0x1234000": an entry as schedules and reports name it. */
  static describe(entry: PscEntry): string {
    const name = entry.level === 4 ? 'PML4E' : entry.level === 3 ? 'PDPTE' : 'PDE';
    return `${name} ${formatVirtual(entry.va)} -> ${formatPhysical(entry.table)}`;
  }
}
