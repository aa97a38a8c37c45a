import { FRAME_COPIED } from '../mmu/frame-guard.ts';
import { describeValue, InputError, requireInteger } from '../mmu/input-error.ts';
import { rmqueue } from './fallback.ts';
import { type BuddyInfo, buddyinfo, fragmentationIndex, frameIsFree } from './fragmentation.ts';
import type { ExtfragCounts, FreeArea } from './free-area.ts';
import { MAX_ORDER, MIGRATE_TYPES, MIGRATETYPE, type Migratetype, PAGEBLOCK_ORDER } from './mmzone.ts';

// The zone's free area (mm/page_alloc.c, Linux 6.6): free blocks of 2^order frames, orders 0..MAX_ORDER, kept on
// one list per (order, migratetype); pageblocks (order 9, 2 MiB) carry the migratetype their free pages go back
// to, and a skip bit for compaction. This module holds the lists and the frame metadata (struct page's fields that
// matter here) in typed arrays, and the list operations everything else is built from:
// - __rmqueue_smallest() with expand(): the smallest free block of the wanted type, its upper halves put back;
// - __free_one_page(): a freed block merges with its buddy while the buddy is free and of the same order, and goes
//   to the tail of its list when its buddy's buddy is free too (buddy_merge_likely());
// - split_page(), for vmalloc.
// move_freepages_block() and __isolate_free_page() are pageblock.ts; buddyinfo and the fragmentation index are
// fragmentation.ts. Falling back to other migratetypes is fallback.ts; per-CPU lists, watermarks and the GFP logic are pcp.ts,
// watermarks.ts and page-alloc.ts. Kernel programs reach all of it only inside `atomic('zone', ...)` steps, as
// under zone->lock. Nothing here touches emulated memory.

export {
  MAX_ORDER,
  MIGRATE_TYPES,
  MIGRATETYPE,
  MIGRATETYPE_NAMES,
  type Migratetype,
  PAGE_ALLOC_COSTLY_ORDER,
  PAGEBLOCK_ORDER,
} from './mmzone.ts';

const NONE = -1;
/** Owner tags below this can be declared movable (see `movableOwners`). */
const OWNER_TAGS = 64;

export type { BuddyInfo } from './fragmentation.ts';

export type { ExtfragCounts } from './free-area.ts';

export class BuddyAllocator implements FreeArea {
  /** Head frames: the block's order while it is allocated or free; NONE for a frame inside a block. */
  order: Int8Array;
  /** 1 when the frame heads a free block on the buddy lists (PageBuddy). */
  free: Uint8Array;
  /** Head frames of free blocks: the migratetype list the block is on. */
  freeType: Uint8Array;
  /** Per frame: the migratetype it was allocated from or freed as (get_pcppage_migratetype()). */
  migratetype: Uint8Array;
  /** Who holds the frame (a tag the caller gives), NONE when free or on a per-CPU list. */
  owner: Int32Array;
  /** Bumped each time the frame is freed: an access through a stale translation sees an older generation. */
  generation: Uint32Array;
  /** Per pageblock: the migratetype its free pages belong to (get_pageblock_migratetype()). */
  pageblockType: Uint8Array;
  /** Per pageblock: PB_migrate_skip, set by compaction when a scan isolated nothing there. */
  pageblockSkip: Uint8Array;
  /** Owner tags whose pages are movable (PageLRU or __PageMovable): move_freepages() counts them. */
  movableOwners: Uint8Array;
  // Free lists: doubly linked through the head frames, one list per (order, migratetype), with a tail.
  private next: Int32Array;
  private prev: Int32Array;
  private heads: Int32Array;
  private tails: Int32Array;
  private counts: Int32Array;
  private freeTotal = 0;
  /** mm_page_alloc_extfrag events so far. */
  extfrag: ExtfragCounts = { events: 0, fragmenting: 0, changeOwnership: 0 };
  /** Pages move_freepages_block() passed that were movable (its *num_movable), for the last call. */
  movablePassed = 0;

  /** Manages frames [firstPfn, firstPfn + frames); firstPfn must be aligned to a pageblock. */
  constructor(
    readonly firstPfn: number,
    readonly frames: number,
  ) {
    requireInteger(firstPfn, 'buddy first pfn', 0, 2 ** 34);
    requireInteger(frames, 'buddy frame count', 1, 2 ** 28);
    if (firstPfn % (1 << PAGEBLOCK_ORDER) !== 0) {
      throw new InputError(`buddy first pfn 0x${firstPfn.toString(16)} must be aligned to a pageblock (512 frames)`);
    }
    this.order = new Int8Array(frames).fill(NONE);
    this.free = new Uint8Array(frames);
    this.freeType = new Uint8Array(frames);
    this.migratetype = new Uint8Array(frames);
    this.owner = new Int32Array(frames).fill(NONE);
    this.generation = new Uint32Array(frames);
    const blocks = Math.ceil(frames / (1 << PAGEBLOCK_ORDER));
    // memmap_init_range() marks every pageblock MOVABLE at boot.
    this.pageblockType = new Uint8Array(blocks).fill(MIGRATETYPE.MOVABLE);
    this.pageblockSkip = new Uint8Array(blocks);
    this.movableOwners = new Uint8Array(OWNER_TAGS);
    this.next = new Int32Array(frames).fill(NONE);
    this.prev = new Int32Array(frames).fill(NONE);
    this.heads = new Int32Array((MAX_ORDER + 1) * MIGRATE_TYPES).fill(NONE);
    this.tails = new Int32Array((MAX_ORDER + 1) * MIGRATE_TYPES).fill(NONE);
    this.counts = new Int32Array((MAX_ORDER + 1) * MIGRATE_TYPES);
    // memblock_free_all() hands every frame over in the largest aligned blocks, each freed to the tail of its list
    // (__free_pages_core() uses FPI_TO_TAIL).
    for (let i = 0; i < frames; ) {
      let o = MAX_ORDER;
      // Alignment is the physical frame number's, as buddies are (page_to_pfn() ^ (1 << order)).
      while (o > 0 && ((firstPfn + i) % (1 << o) !== 0 || i + (1 << o) > frames)) o--;
      this.addTail(i, o, MIGRATETYPE.MOVABLE);
      this.order[i] = o;
      this.freeTotal += 1 << o;
      i += 1 << o;
    }
  }

  /**
   * A copy with the same state (machine images copy the kernel's bookkeeping per instance). Copy-on-write: both
   * share the arrays until either changes something, so instantiating an image costs no per-frame copy.
   */
  clone(): BuddyAllocator {
    const c = Object.create(BuddyAllocator.prototype) as BuddyAllocator;
    Object.assign(c, this);
    this.shared = true;
    c.shared = true;
    c.extfrag = { ...this.extfrag };
    // Its own change log and release hook: the clone belongs to another machine.
    c.changes = [];
    c.recordChanges = false;
    c.onRelease = undefined;
    return c;
  }

  /**
   * Returns this allocator, which programs may hold, to `from`'s state: its arrays shared copy-on-write with
   * `from` (as a clone's are), its change log empty, its release hook unset.
   */
  restore(from: BuddyAllocator): void {
    Object.assign(this, from.clone());
  }

  /**
   * Internal (the stateful checker, which goes back to states it saved many times over): as restore(), but when
   * this allocator's arrays are its own, `from`'s are copied into them, so that its next change need not copy them
   * all first. Its change log and release hook stay as they are.
   */
  copyFrom(from: BuddyAllocator): void {
    if (this.shared || from.frames !== this.frames || from.firstPfn !== this.firstPfn) {
      const { onRelease, recordChanges, changes } = this;
      this.restore(from);
      Object.assign(this, { onRelease, recordChanges, changes });
      return;
    }
    this.order.set(from.order);
    this.free.set(from.free);
    this.freeType.set(from.freeType);
    this.migratetype.set(from.migratetype);
    this.owner.set(from.owner);
    this.generation.set(from.generation);
    this.pageblockType.set(from.pageblockType);
    this.pageblockSkip.set(from.pageblockSkip);
    this.movableOwners.set(from.movableOwners);
    this.next.set(from.next);
    this.prev.set(from.prev);
    this.heads.set(from.heads);
    this.tails.set(from.tails);
    this.counts.set(from.counts);
    this.freeTotal = from.freeTotal;
    this.extfrag = { ...from.extfrag };
    this.movablePassed = from.movablePassed;
  }

  /**
   * Internal (the stateful checker hashes the allocator's state): every array of it, to read only, in a fixed order.
   * A change replaces them all while they are shared with a clone (see unshare()), so an unchanged `owner` array
   * since a clone() means unchanged state.
   */
  stateArrays(): readonly (Int8Array | Uint8Array | Int32Array | Uint32Array)[] {
    return [
      this.order,
      this.free,
      this.freeType,
      this.migratetype,
      this.owner,
      this.generation,
      this.pageblockType,
      this.pageblockSkip,
      this.movableOwners,
      this.next,
      this.prev,
      this.heads,
      this.tails,
      this.counts,
    ];
  }

  /** Arrays shared with a clone: copied before the first change. */
  private shared = false;

  /**
   * Told when frames stop being usable (a free, a migration's copy): the machine drops the pages its CPUs cached,
   * so the next access is checked against `owner` and `generation` (this allocator is the CPUs' FrameGuard), with
   * the frames (`frames` from `pfn`), whose contents the stateful checker leaves out of its states.
   */
  onRelease: ((pfn?: number, frames?: number) => void) | undefined;
  /** See FrameGuard.recordChanges: [pfn, count] per change of frame state, for the checker. */
  recordChanges = false;
  changes: number[] = [];

  private noteChange(index: number, count: number): void {
    if (this.recordChanges) this.changes.push(this.firstPfn + index, count);
  }

  /** Every method that changes state calls this first: a shared array is copied before it is written. */
  writable(): void {
    if (!this.shared) return;
    this.order = this.order.slice();
    this.free = this.free.slice();
    this.freeType = this.freeType.slice();
    this.migratetype = this.migratetype.slice();
    this.owner = this.owner.slice();
    this.generation = this.generation.slice();
    this.pageblockType = this.pageblockType.slice();
    this.pageblockSkip = this.pageblockSkip.slice();
    this.movableOwners = this.movableOwners.slice();
    this.next = this.next.slice();
    this.prev = this.prev.slice();
    this.heads = this.heads.slice();
    this.tails = this.tails.slice();
    this.counts = this.counts.slice();
    this.shared = false;
  }

  /** Free pages on the buddy lists (NR_FREE_PAGES: pages on per-CPU lists are not counted). */
  get freePages(): number {
    return this.freeTotal;
  }

  // ---- free lists (add_to_free_list, add_to_free_list_tail, move_to_free_list, del_page_from_free_list) ----

  private addHead(i: number, order: number, type: number): void {
    const l = order * MIGRATE_TYPES + type;
    const head = this.heads[l]!;
    this.next[i] = head;
    this.prev[i] = NONE;
    if (head !== NONE) this.prev[head] = i;
    else this.tails[l] = i;
    this.heads[l] = i;
    this.counts[l] = this.counts[l]! + 1;
    this.free[i] = 1;
    this.freeType[i] = type;
  }

  private addTail(i: number, order: number, type: number): void {
    const l = order * MIGRATE_TYPES + type;
    const tail = this.tails[l]!;
    this.prev[i] = tail;
    this.next[i] = NONE;
    if (tail !== NONE) this.next[tail] = i;
    else this.heads[l] = i;
    this.tails[l] = i;
    this.counts[l] = this.counts[l]! + 1;
    this.free[i] = 1;
    this.freeType[i] = type;
  }

  private unlink(i: number, order: number): void {
    const l = order * MIGRATE_TYPES + this.freeType[i]!;
    const n = this.next[i]!;
    const p = this.prev[i]!;
    if (p !== NONE) this.next[p] = n;
    else this.heads[l] = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tails[l] = p;
    this.counts[l] = this.counts[l]! - 1;
    this.free[i] = 0;
  }

  /** move_to_free_list(): a free block goes to the tail of another type's list. */
  moveToFreeList(i: number, order: number, type: number): void {
    this.writable();
    this.unlink(i, order);
    this.addTail(i, order, type);
  }

  /** get_page_from_free_area(): the first block on the (order, type) list, or -1. Indices are pfn - firstPfn. */
  firstFree(order: number, type: number): number {
    return this.heads[order * MIGRATE_TYPES + type]!;
  }

  /** The block after `i` on its list, or -1 (for scanners that walk a list). */
  nextFree(i: number): number {
    return this.next[i]!;
  }

  /** Blocks on the (order, type) list. */
  freeCount(order: number, type: number): number {
    return this.counts[order * MIGRATE_TYPES + type]!;
  }

  /** free_area[order].nr_free. */
  nrFree(order: number): number {
    const l = order * MIGRATE_TYPES;
    return this.counts[l]! + this.counts[l + 1]! + this.counts[l + 2]!;
  }

  // ---- allocation side ----

  /**
   * __rmqueue_smallest(): the smallest free block of `type` at `order` or above, taken off its list and split down
   * to `order` (expand() puts each upper half at the head of its list). Returns its index, or -1.
   */
  rmqueueSmallest(order: number, type: number): number {
    this.writable();
    for (let o = order; o <= MAX_ORDER; o++) {
      const i = this.heads[o * MIGRATE_TYPES + type]!;
      if (i === NONE) continue;
      this.unlink(i, o);
      for (let h = o - 1; h >= order; h--) {
        const half = i + (1 << h);
        this.addHead(half, h, type);
        this.order[half] = h;
      }
      this.order[i] = order;
      this.migratetype[i] = type; // set_pcppage_migratetype()
      this.freeTotal -= 1 << order;
      return i;
    }
    return NONE;
  }

  /**
   * Hands the block at index `i` (just taken by rmqueue) to `owner`: each frame records the owner and the
   * allocation's migratetype. Returns the pfn.
   */
  assign(i: number, order: number, owner: number): number {
    this.writable();
    const type = this.migratetype[i]!;
    const end = i + (1 << order);
    for (let f = i; f < end; f++) {
      this.owner[f] = owner;
      this.migratetype[f] = type;
    }
    this.noteChange(i, 1 << order);
    return this.firstPfn + i;
  }

  /**
   * Allocates 2^order frames of `type` for `owner` straight from the buddy lists (__rmqueue() under the zone lock,
   * with the migratetype fallback, no per-CPU list and no watermark: page-alloc.ts adds those). Returns the first
   * pfn, or -1 when no block is free in any migratetype.
   */
  alloc(order: number, type: Migratetype, owner = 0, allocFlags = 0): number {
    this.writable();
    requireInteger(order, 'alloc order', 0, MAX_ORDER);
    requireInteger(owner, 'alloc owner', 0, 2 ** 31 - 1);
    if (type !== 0 && type !== 1 && type !== 2) {
      throw new InputError(
        `alloc migratetype ${describeValue(type)} must be 0 (UNMOVABLE), 1 (MOVABLE) or 2 (RECLAIMABLE)`,
      );
    }
    const i = rmqueue(this, order, type, allocFlags);
    if (i === NONE) return -1;
    return this.assign(i, order, owner);
  }

  /** split_page(): the allocated block at `pfn` becomes 2^order allocated order-0 pages, same owner. */
  splitPage(pfn: number, order: number): void {
    this.writable();
    const i = pfn - this.firstPfn;
    for (let f = i; f < i + (1 << order); f++) this.order[f] = 0;
  }

  // ---- free side ----

  /**
   * free_pages_prepare(): the allocated block at `pfn` stops being usable: every frame's generation moves on and
   * its owner is cleared. The caller then puts it on a per-CPU list or back on the buddy lists (freeOne()).
   */
  release(pfn: number, order: number): number {
    this.writable();
    requireInteger(order, 'free order', 0, MAX_ORDER);
    const i = requireInteger(pfn, 'free pfn', this.firstPfn, this.firstPfn + this.frames - 1) - this.firstPfn;
    if (this.free[i] === 1 || this.order[i] !== order || this.owner[i] === NONE) {
      throw new InputError(
        `free of pfn 0x${pfn.toString(16)} order ${order}: it is not an allocated block of that order ` +
          `(${this.free[i] === 1 || this.owner[i] === NONE ? 'already free: a double free' : `its order is ${this.order[i]}`})`,
      );
    }
    for (let f = i; f < i + (1 << order); f++) {
      this.generation[f] = (this.generation[f]! + 1) >>> 0;
      this.owner[f] = NONE;
    }
    this.noteChange(i, 1 << order);
    this.onRelease?.(this.firstPfn + i, 1 << order);
    return i;
  }

  /**
   * __free_one_page(): the released block at index `i` goes back as `type`, merging with its buddy while the buddy
   * is free with the same order (buddies of different pageblock types merge too: all three types are mergeable).
   * The merged block goes to the head of its list, or the tail when the next-higher buddy is free as well
   * (buddy_merge_likely(): it is likely to merge soon), or when `toTail` (FPI_TO_TAIL).
   */
  freeOne(i: number, order: number, type: number, toTail = false): void {
    this.writable();
    this.freeTotal += 1 << order;
    const first = this.firstPfn;
    let head = i;
    let o = order;
    let buddy = NONE;
    while (o < MAX_ORDER) {
      buddy = ((first + head) ^ (1 << o)) - first;
      if (buddy < 0 || buddy + (1 << o) > this.frames || this.free[buddy] !== 1 || this.order[buddy] !== o) break;
      this.unlink(buddy, o);
      this.order[buddy] = NONE;
      this.order[head] = NONE;
      head = Math.min(head, buddy);
      o++;
    }
    this.order[head] = o;
    if (!toTail && o < MAX_ORDER - 1) {
      // buddy_merge_likely(): is the buddy of the combined block of order o + 1 free?
      const higher = (first + head) & ~((2 << o) - 1);
      const higherBuddy = (higher ^ (2 << o)) - first;
      if (higherBuddy >= 0 && higherBuddy < this.frames && this.free[higherBuddy] === 1) {
        if (this.order[higherBuddy] === o + 1) toTail = true;
      }
    }
    if (toTail) this.addTail(head, o, type);
    else this.addHead(head, o, type);
  }

  /**
   * Frees the block of 2^order frames at `pfn` (allocated with that order) straight to the buddy lists, as its
   * pageblock's type (__free_pages_ok()).
   */
  freeBlock(pfn: number, order: number): void {
    const i = this.release(pfn, order);
    this.freeOne(i, order, this.pageblockType[i >>> PAGEBLOCK_ORDER]!);
  }

  // ---- pageblocks (pageblock.ts holds move_freepages_block() and __isolate_free_page()) ----

  setPageblockType(i: number, type: number): void {
    this.writable();
    this.pageblockType[i >>> PAGEBLOCK_ORDER] = type;
  }

  /** Whether the allocated frame at index `i` is movable by its owner tag. */
  isMovableFrame(i: number): boolean {
    const owner = this.owner[i]!;
    return owner >= 0 && owner < OWNER_TAGS && this.movableOwners[owner] === 1;
  }

  /** Takes the free block headed at index `i` off its list (del_page_from_free_list()); returns its order. */
  takeFree(i: number): number {
    this.writable();
    const order = this.order[i]!;
    this.unlink(i, order);
    this.freeTotal -= 1 << order;
    return order;
  }

  /** Records a change of frame state for the checker (see recordChanges). */
  changed(index: number, count: number): void {
    this.noteChange(index, count);
  }

  /**
   * A migration copied the order-0 allocated frame `pfn` to another: from now until it is freed, a write to it is
   * lost (the copy never gets it). Its owner becomes FRAME_COPIED; freeing it works as usual.
   */
  markCopied(pfn: number): void {
    this.writable();
    const i = requireInteger(pfn, 'copied pfn', this.firstPfn, this.firstPfn + this.frames - 1) - this.firstPfn;
    if (this.owner[i] === NONE || this.order[i] !== 0) {
      throw new InputError(`markCopied(0x${pfn.toString(16)}): only an allocated order-0 frame can be migrated`);
    }
    this.owner[i] = FRAME_COPIED;
    this.noteChange(i, 1);
    this.onRelease?.(pfn, 1);
  }

  /** Hands the allocated order-0 frame at `pfn` to `owner` (a compaction target that now holds a moved page). */
  setOwner(pfn: number, owner: number): void {
    this.writable();
    this.owner[pfn - this.firstPfn] = owner;
  }

  /** Who holds the frame at `pfn` (FRAME_FREE when free). */
  ownerOf(pfn: number): number {
    return this.owner[pfn - this.firstPfn]!;
  }

  /** The order of the allocated or free block headed at `pfn`, or -1 when `pfn` heads none. */
  orderAt(pfn: number): number {
    return this.order[pfn - this.firstPfn]!;
  }

  /** Whether the frame at `pfn` is inside a free block on the buddy lists. */
  isFree(pfn: number): boolean {
    return frameIsFree(this, pfn);
  }

  /** Free blocks per order, in all and per migratetype (/proc/buddyinfo, /proc/pagetypeinfo). */
  buddyinfo(): BuddyInfo {
    return buddyinfo(this);
  }

  /** The fragmentation index for an allocation of `order`, times 1000 (fragmentation.ts). */
  fragmentationIndex(order: number): number {
    return fragmentationIndex(this, order);
  }
}
