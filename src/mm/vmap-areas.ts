import { PAGE_SIZE } from '../mmu/address.ts';
import { describeHex, InputError, requireInteger } from '../mmu/input-error.ts';
import { sameItems } from './same-items.ts';

// The vmap area allocator (mm/vmalloc.c alloc_vmap_area / find_vmap_area / free_vmap_area): ranges of the vmalloc
// space handed to vmalloc and vmap, each followed by an unmapped guard page. Bookkeeping beside the machine:
// kernel programs reach it through `atomic('vmap_area', ...)` steps, as under vmap_area_lock.

/** A block of 2^order frames backing part of an area, mapped at `va`. */
export interface BackingBlock {
  readonly va: number;
  readonly pfn: number;
  readonly order: number;
}

export interface VmapArea {
  /** First address of the area (the mapping starts here). */
  readonly start: number;
  /** Bytes the caller may use; the guard page follows. */
  readonly size: number;
  /**
   * The blocks as the page allocator gave them, in address order (how the area was backed), recorded in the step
   * that allocated each. Copied with the area (vmalloc appends to it).
   */
  blocks: BackingBlock[];
  /**
   * The frame of each 4 KiB page, in address order (vm_struct's pages[]). Higher-order blocks are split into
   * order-0 pages (split_page()), so each page is freed, and may be migrated, on its own.
   */
  pages: number[];
  /** Whether it is mapped with 2 MiB PMD entries (vmalloc_huge) rather than PTEs. */
  huge: boolean;
  /** vfree()d, its pages freed, waiting for the lazy purge to flush the TLBs and free the range. */
  lazy: boolean;
  /** Taken by a purge in progress (its TLB flush has not finished). */
  purging: boolean;
}

/** First-fit allocator over [start, end), areas kept sorted by address. */
export class VmapAreas {
  private areas: VmapArea[] = [];

  constructor(
    readonly start: number,
    readonly end: number,
  ) {}

  /** A copy with its own area list (machine images copy bookkeeping per instance). */
  clone(): VmapAreas {
    const c = new VmapAreas(this.start, this.end);
    c.areas = this.areas.map(copyArea);
    return c;
  }

  /** Takes `from`'s areas (copied): this object, which programs may hold, returns to that state. */
  restore(from: VmapAreas): void {
    this.areas = from.areas.map(copyArea);
  }

  /**
   * Internal (the stateful checker, which goes back to saved states many times): as restore(), but an area equal to
   * `from`'s is kept (this object's own copy already), so only the areas that differ are copied. Most restores
   * differ in the zone or a task, not in the areas: copying every area and its page array was 3% of a search.
   */
  copyFrom(from: VmapAreas): void {
    const mine = this.areas;
    const theirs = from.areas;
    if (mine.length !== theirs.length) {
      this.restore(from);
      return;
    }
    for (let i = 0; i < theirs.length; i++) {
      const a = theirs[i]!;
      if (!sameArea(mine[i]!, a)) mine[i] = copyArea(a);
    }
  }

  /** Every area, in address order. */
  get list(): readonly VmapArea[] {
    return this.areas;
  }

  /**
   * Reserves `size` bytes (a page multiple) aligned to `align`, plus a guard page after them; returns the start, or
   * -1 when the space is exhausted.
   */
  reserve(size: number, align = PAGE_SIZE, from = this.start, to = this.end): number {
    requireInteger(size, 'vmap area size', PAGE_SIZE, this.end - this.start);
    if (size % PAGE_SIZE !== 0) throw new InputError(`vmap area size ${describeHex(size)} is not a page multiple`);
    if (from < this.start || to > this.end || from >= to) {
      throw new InputError(`vmap range ${describeHex(from)}..${describeHex(to)} is not inside the vmalloc space`);
    }
    let candidate = this.alignUp(from, align);
    let index = 0;
    for (; index < this.areas.length; index++) {
      const a = this.areas[index]!;
      if (a.start + a.size + PAGE_SIZE <= candidate) continue;
      if (candidate + size + PAGE_SIZE <= a.start) break;
      candidate = this.alignUp(a.start + a.size + PAGE_SIZE, align);
    }
    if (candidate + size + PAGE_SIZE > to) return -1;
    this.areas.splice(index, 0, {
      start: candidate,
      size,
      blocks: [],
      pages: [],
      huge: false,
      lazy: false,
      purging: false,
    });
    return candidate;
  }

  /**
   * Reserves [start, start + size) as an area that exists before any program runs (the boot's VMAP stacks);
   * refused when it overlaps one.
   */
  reserveFixed(start: number, size: number): void {
    const end = start + size + PAGE_SIZE;
    if (this.areas.some((a) => start < a.start + a.size + PAGE_SIZE && a.start < end)) {
      throw new InputError(`vmap area ${describeHex(start)}+${describeHex(size)} overlaps another`);
    }
    const index = this.areas.findIndex((a) => a.start > start);
    this.areas.splice(index < 0 ? this.areas.length : index, 0, {
      start,
      size,
      blocks: [],
      pages: [],
      huge: false,
      lazy: false,
      purging: false,
    });
  }

  private alignUp(va: number, align: number): number {
    return Math.ceil(va / align) * align;
  }

  /** The live area that starts at `start`, if any (vfree takes the address vmalloc returned). */
  find(start: number): VmapArea | undefined {
    const a = this.at(start);
    return a?.start === start && !a.lazy ? a : undefined;
  }

  /** The live area whose range (guard page excluded) holds `va`. */
  containing(va: number): VmapArea | undefined {
    const a = this.at(va);
    return a && !a.lazy && va < a.start + a.size ? a : undefined;
  }

  /** The area (live or lazy) whose start is the last at or below `va` (a binary search: areas are sorted). */
  private at(va: number): VmapArea | undefined {
    let lo = 0;
    let hi = this.areas.length - 1;
    let found: VmapArea | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const a = this.areas[mid]!;
      if (a.start <= va) {
        found = a;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** Areas vfree()d and not yet purged. */
  lazyAreas(): VmapArea[] {
    return this.areas.filter((a) => a.lazy && !a.purging);
  }

  /** Releases the area that starts at `start`; returns whether there was one. */
  release(start: number): boolean {
    const i = this.areas.findIndex((a) => a.start === start);
    if (i < 0) return false;
    this.areas.splice(i, 1);
    return true;
  }
}

/** An area's own copy (vmalloc appends to its blocks, migration changes its pages in place). */
function copyArea(a: VmapArea): VmapArea {
  return { ...a, blocks: a.blocks.slice(), pages: a.pages.slice() };
}

/** Whether two areas hold the same: every field of VmapArea (one added there must be compared here too). */
function sameArea(a: VmapArea, b: VmapArea): boolean {
  if (a.start !== b.start || a.size !== b.size || a.huge !== b.huge || a.lazy !== b.lazy) return false;
  if (a.purging !== b.purging || a.blocks.length !== b.blocks.length || !sameItems(a.pages, b.pages)) return false;
  for (let i = 0; i < a.blocks.length; i++) {
    const x = a.blocks[i]!;
    const y = b.blocks[i]!;
    if (x.va !== y.va || x.pfn !== y.pfn || x.order !== y.order) return false;
  }
  return true;
}
