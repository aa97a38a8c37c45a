import { formatVirtual, HUGE_PAGE_SIZE, InputError, isCanonical, LARGE_PAGE_SIZE, PAGE_SIZE } from '../mmu/address.ts';

const HUGE = HUGE_PAGE_SIZE;
const LARGE = LARGE_PAGE_SIZE;
const TWO_32 = 2 ** 32;

import type { PhysicalMemory } from '../mmu/physical-memory.ts';
import { decodePte, encodePte, entryFrame, PTE_LO, type PteFields, tableIndex } from '../mmu/pte.ts';
import { lookupTables } from '../mmu/table-lookup.ts';

// Boot-time page-table editing: the firmware/early-boot view, writing entries straight into physical memory
// (DESIGN.md allows explicitly named physical accesses by the kernel). Running programs change page tables with
// ordinary stores through the direct map instead, so the checker sees those writes.

/** A bump allocator handing out zeroed 4 KiB frames from a range. */
export class BootFrameAllocator {
  constructor(
    private next: number,
    private readonly end: number,
  ) {}

  /** Back to handing out frames from `next` (a machine image's reset). */
  rewind(next: number): void {
    this.next = next;
  }

  /** Allocates one frame; returns its physical address. */
  alloc(): number {
    if (this.next + PAGE_SIZE > this.end) {
      throw new InputError(`out of boot memory: no frame left below 0x${this.end.toString(16)}; give the machine more`);
    }
    const pa = this.next;
    this.next += PAGE_SIZE;
    return pa;
  }

  get used(): number {
    return this.next;
  }

  /** Frames left to hand out. */
  get remaining(): number {
    return Math.floor((this.end - this.next) / PAGE_SIZE);
  }

  /** State for cloning. */
  get position(): number {
    return this.next;
  }
}

/**
 * Flags of a leaf mapping. `accessed` and `dirty` default to true for supervisor pages (Linux's PAGE_KERNEL sets
 * both) and false for user pages (set by the walker on first use).
 */
export type MapFlags = Partial<Pick<PteFields, 'writable' | 'user' | 'global' | 'noExecute' | 'accessed' | 'dirty'>>;

export interface PageMapping {
  readonly level: 1 | 2 | 3;
  readonly pageSize: number;
  /** Physical address of the leaf entry. */
  readonly entry: number;
  readonly pte: PteFields;
}

/** Creates and edits 4-level page tables rooted at `pml4` in physical memory. */
export class PageTableEditor {
  constructor(
    readonly memory: PhysicalMemory,
    readonly pml4: number,
    private readonly frames: BootFrameAllocator,
  ) {}

  private checkVa(va: number, align: number): void {
    if (!isCanonical(va) || va % align !== 0) {
      throw new InputError(`cannot map ${formatVirtual(va)}: it must be canonical and ${align}-byte aligned`);
    }
  }

  /** Physical address of the entry for `va` at `level`, creating intermediate tables down to it. */
  private entryFor(va: number, level: 1 | 2 | 3): number {
    let table = this.pml4;
    for (let l = 4; l > level; l--) {
      const entry = table + tableIndex(va, l as 1 | 2 | 3 | 4) * 8;
      const lo = this.memory.read32(entry);
      const hi = this.memory.read32(entry + 4);
      if ((lo & PTE_LO.P) === 0) {
        const next = this.frames.alloc();
        // Intermediate entries are permissive; the leaf decides. They are created accessed, as Linux's _PAGE_TABLE
        // and _KERNPG_TABLE are: no walk writes them, so machine clones share the tables and the checker sees no
        // race between two CPUs' first walks.
        const e = encodePte({ address: next, present: true, writable: true, user: true, accessed: true });
        this.memory.write32(entry, e.lo);
        this.memory.write32(entry + 4, e.hi);
        table = next;
      } else {
        if ((lo & PTE_LO.PS) !== 0) {
          throw new InputError(`cannot map ${formatVirtual(va)} at level ${level}: a large page already covers it`);
        }
        table = entryFrame(lo, hi);
      }
    }
    return table + tableIndex(va, level) * 8;
  }

  private writeLeaf(entry: number, pa: number, flags: MapFlags, pageSize: boolean): void {
    const user = flags.user ?? false;
    const e = encodePte({
      address: pa,
      present: true,
      writable: flags.writable ?? true,
      user,
      // Kernel mappings are made accessed and dirty, as Linux's PAGE_KERNEL is: no walk writes their PTEs, so
      // machine clones share the page tables instead of copying a table frame on the first access.
      accessed: flags.accessed ?? !user,
      dirty: flags.dirty ?? !user,
      global: flags.global ?? false,
      noExecute: flags.noExecute ?? true,
      pageSize,
    });
    this.memory.write32(entry, e.lo);
    this.memory.write32(entry + 4, e.hi);
  }

  /** Makes sure the table holding `va`'s entry at `level` exists (creating tables above it); returns the entry. */
  ensureTable(va: number, level: 1 | 2 | 3): number {
    this.checkVa(va, PAGE_SIZE);
    return this.entryFor(va, level);
  }

  /** Maps a 4 KiB page; returns the physical address of its PTE. */
  map4k(va: number, pa: number, flags: MapFlags = {}): number {
    this.checkVa(va, PAGE_SIZE);
    const entry = this.entryFor(va, 1);
    this.writeLeaf(entry, pa, flags, false);
    return entry;
  }

  /** Maps a 2 MiB page (PDE with PS). */
  map2m(va: number, pa: number, flags: MapFlags = {}): number {
    this.checkVa(va, 2 * 1024 * 1024);
    const entry = this.entryFor(va, 2);
    this.writeLeaf(entry, pa, flags, true);
    return entry;
  }

  /** Maps a 1 GiB page (PDPTE with PS). */
  map1g(va: number, pa: number, flags: MapFlags = {}): number {
    this.checkVa(va, 1024 * 1024 * 1024);
    const entry = this.entryFor(va, 3);
    this.writeLeaf(entry, pa, flags, true);
    return entry;
  }

  /**
   * Maps [va, va + bytes) to [pa, pa + bytes) with the largest pages that fit: 1 GiB where both addresses are
   * 1 GiB aligned and a whole GiB remains, else 2 MiB (the last one may reach past `bytes`, as Linux's direct map
   * of a partial 2 MiB does). The entry is encoded once and the table found once per 512 entries, so mapping
   * 1 TiB costs about what mapping 64 MiB does.
   */
  mapLargeRange(va: number, pa: number, bytes: number, flags: MapFlags = {}): void {
    const template = encodePte({
      address: 0,
      present: true,
      writable: flags.writable ?? true,
      user: flags.user ?? false,
      global: flags.global ?? false,
      noExecute: flags.noExecute ?? true,
      pageSize: true,
    });
    this.checkVa(va, LARGE);
    this.checkVa(va + bytes - 1 - ((va + bytes - 1) % LARGE), LARGE);
    // Where va and pa stand within a 1 GiB page, in 2 MiB units: a 1 GiB entry fits where both are 0 (mod 512).
    // Counted in integers: `%` on addresses near 2^64 is a floating-point remainder, and was most of the time of
    // creating a machine of 1 TiB (1,024 entries).
    // (va is 2 MiB aligned, checked above; a pa that is not takes 2 MiB entries throughout, as before.)
    const vaUnit = (va % HUGE) / LARGE;
    const paUnit = pa % LARGE === 0 ? (pa % HUGE) / LARGE : Number.NaN;
    const units = Math.ceil(bytes / LARGE);
    let table = -1;
    let tableLevel = 0;
    let frame: DataView | undefined;
    for (let unit = 0; unit < units; ) {
      const offset = unit * LARGE;
      const huge = (vaUnit + unit) % 512 === 0 && (paUnit + unit) % 512 === 0 && bytes - offset >= HUGE;
      const level: 2 | 3 = huge ? 3 : 2;
      const v = va + offset;
      const index = tableIndex(v, level);
      // A new table is looked up when the level changes or the index wraps to 0 (the next table); its frame is
      // then written directly (boot time: no CPU runs, no write watch is armed).
      if (table < 0 || tableLevel !== level || index === 0) {
        table = this.entryFor(v, level) - index * 8;
        tableLevel = level;
        frame = this.memory.frame(table / PAGE_SIZE, true);
      }
      const p = pa + offset;
      const high = Math.floor(p / TWO_32);
      frame!.setUint32(index * 8, (template.lo | (p - high * TWO_32)) >>> 0, true);
      frame!.setUint32(index * 8 + 4, (template.hi | high) >>> 0, true);
      unit += huge ? 512 : 1;
    }
  }

  /** The leaf mapping of `va`, or undefined when some level is not present. Reads only. */
  lookup(va: number): PageMapping | undefined {
    if (!isCanonical(va)) return undefined;
    // The walk is lookupTables'; a leaf is where it stopped when present, or a non-present PTE (or a non-present
    // entry with PS set), whose slot a caller may still want to edit.
    const t = lookupTables(this.memory, this.pml4, va);
    const entry = t.entries[t.level]!;
    const pte = decodePte(this.memory.read32(entry), this.memory.read32(entry + 4));
    if (t.level === 4 || (!t.present && t.level !== 1 && !pte.pageSize)) return undefined;
    const level = t.level as 1 | 2 | 3;
    return { level, pageSize: PAGE_SIZE * 512 ** (level - 1), entry, pte };
  }

  /** Physical address of the leaf entry mapping `va` (present or not), creating no tables. */
  leafEntry(va: number): number {
    const m = this.lookup(va);
    if (!m) throw new InputError(`${formatVirtual(va)} has no page table down to its leaf entry`);
    return m.entry;
  }

  /** Clears the present bit of the leaf entry for `va` (the entry keeps its frame, like a PTE being migrated). */
  clearPresent(va: number): number {
    const entry = this.leafEntry(va);
    this.memory.write32(entry, this.memory.read32(entry) & ~PTE_LO.P);
    return entry;
  }
}
