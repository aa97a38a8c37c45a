import { type ArenaSize, TypedArena } from '../mmu/typed-arena.ts';

const PAGE = 4096;
/** Entries, direct-mapped by bits 12+ of the address: enough that a task's stack and a few data pages coexist. */
export const PAGE_CACHE_ENTRIES = 32;
const INDEX_MASK = PAGE_CACHE_ENTRIES - 1;
const EMPTY_FRAME = new DataView(new ArrayBuffer(0));

/**
 * Pages a CPU recently reached through TLB hits, each with the frame's bytes: the model's counterpart of QEMU's
 * softmmu TLB fast path (accel/tcg/cputlb.c: a direct-mapped table indexed by page number, a tag per access
 * kind, an addend to the host page) and of the host page pointer Bochs keeps per TLB entry (cpu/tlb.h). It is a
 * shortcut, not a second TLB: the owner empties it whenever the architectural TLB changes (any fill,
 * invalidation or flush) or the frame table does (PhysicalMemory's frame listeners), so a hit here is exactly a
 * hit through the TLB entry it copied.
 *
 * Entry i holds one page whose number is i modulo the size. `readTag`/`writeTag` are the page's virtual base when
 * reads/writes may use the entry, else -1: an entry is filled for writes only from a TLB entry that is writable
 * with D set and with the frame owned by this memory (not shared copy-on-write), and a writable entry also serves
 * reads. The one right left to check on a hit is U/S (`user`).
 */
export class PageCache {
  /** The typed-array storage a page cache takes from an arena. */
  static readonly storage: ArenaSize = { float64: 3 * PAGE_CACHE_ENTRIES, uint8: PAGE_CACHE_ENTRIES };
  readonly readTag: Float64Array;
  readonly writeTag: Float64Array;
  /** Physical base of the page. */
  readonly base: Float64Array;
  /** 1 when the TLB entry allows CPL 3. */
  readonly user: Uint8Array;
  readonly frames: DataView[] = new Array<DataView>(PAGE_CACHE_ENTRIES).fill(EMPTY_FRAME);

  /** Arrays come from `arena` when given (a machine carves all its CPUs' caches from one buffer), else a new one. */
  constructor(arena: TypedArena = new TypedArena(PageCache.storage)) {
    this.readTag = arena.float64(PAGE_CACHE_ENTRIES).fill(-1);
    this.writeTag = arena.float64(PAGE_CACHE_ENTRIES).fill(-1);
    this.base = arena.float64(PAGE_CACHE_ENTRIES);
    this.user = arena.uint8(PAGE_CACHE_ENTRIES);
  }
  /** Bit i set: entry i may hold a page (32 entries, one 32-bit mask), so clear() touches only those. */
  private filled = 0;

  /** The entry for `va`: bits 12..16 of the address (`>>>` takes the low 32 bits, which hold them). */
  static index(va: number): number {
    return (va >>> 12) & INDEX_MASK;
  }

  /**
   * Remembers the page of `va` at physical `base`, whose bytes are `frame`, for reads and (when `writable`) for
   * writes. The caller gets `frame` from PhysicalMemory.frame() first: materialising a frame empties the cache.
   */
  fill(va: number, base: number, user: boolean, writable: boolean, frame: DataView): void {
    const i = PageCache.index(va);
    const page = va - (va % PAGE);
    // A new page in the entry loses the old one's write permission with its frame.
    if (this.readTag[i] !== page) this.writeTag[i] = -1;
    this.readTag[i] = page;
    if (writable) this.writeTag[i] = page;
    this.user[i] = user ? 1 : 0;
    this.base[i] = base;
    this.frames[i] = frame;
    this.filled |= 1 << i;
  }

  clear(): void {
    let mask = this.filled;
    if (mask === 0) return;
    // Most of the time one to three pages are in use: forget those, not all 32 entries.
    while (mask !== 0) {
      const i = 31 - Math.clz32(mask);
      mask &= ~(1 << i);
      this.readTag[i] = -1;
      this.writeTag[i] = -1;
      this.frames[i] = EMPTY_FRAME;
    }
    this.filled = 0;
  }
}
