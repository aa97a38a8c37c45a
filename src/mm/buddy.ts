import { FRAME_COPIED } from '../mmu/frame-guard.ts';
import { describeValue, InputError, requireInteger } from '../mmu/input-error.ts';

// The buddy allocator (mm/page_alloc.c): free blocks of 2^order frames, orders 0..MAX_ORDER, kept per order and
// per migratetype; an allocation takes the smallest fitting block of its migratetype and splits it (expand()),
// falling back to other migratetypes in Linux's order and stealing the largest block first
// (__rmqueue_fallback); a free coalesces with its buddy while the buddy is free and of the same order
// (__free_one_page). Pageblocks (order 9, 2 MiB) carry the migratetype their free pages return to.
//
// This is bookkeeping kept beside the machine, in typed arrays (struct page's fields that matter here). Kernel
// programs reach it only through `atomic('zone', ...)` steps, one allocation or free per step, as under
// zone->lock. Nothing here touches emulated memory.

/** Largest order: 2^10 frames, a 4 MiB block (MAX_ORDER - 1 in Linux of 2018). */
export const MAX_ORDER = 10;
/** A pageblock is 2^9 frames (2 MiB, pageblock_order on x86-64). */
export const PAGEBLOCK_ORDER = 9;

export const MIGRATETYPE = { UNMOVABLE: 0, MOVABLE: 1, RECLAIMABLE: 2 } as const;
export type Migratetype = (typeof MIGRATETYPE)[keyof typeof MIGRATETYPE];
export const MIGRATETYPE_NAMES = ['UNMOVABLE', 'MOVABLE', 'RECLAIMABLE'] as const;
const TYPES = 3;

/** Where each migratetype falls back to, in order (mm/page_alloc.c fallbacks[]). */
export const FALLBACKS: readonly (readonly Migratetype[])[] = [
  [MIGRATETYPE.RECLAIMABLE, MIGRATETYPE.MOVABLE],
  [MIGRATETYPE.RECLAIMABLE, MIGRATETYPE.UNMOVABLE],
  [MIGRATETYPE.UNMOVABLE, MIGRATETYPE.MOVABLE],
];

const NONE = -1;

/** Free blocks per order: all migratetypes, and per migratetype (/proc/buddyinfo, /proc/pagetypeinfo). */
export interface BuddyInfo {
  readonly free: readonly number[];
  readonly byType: readonly (readonly number[])[];
  readonly freePages: number;
}

export class BuddyAllocator {
  /** Head frames only: the block's order while it is allocated or free; NONE for a frame inside a block. */
  private order: Int8Array;
  /** 1 when the frame heads a free block. */
  private free: Uint8Array;
  /** Head frames of free blocks: the migratetype list the block is on. */
  private freeType: Uint8Array;
  /** Migratetype the frame was allocated with. */
  migratetype: Uint8Array;
  /** Who holds the frame (a tag the caller gives), NONE when free. */
  owner: Int32Array;
  /** Bumped each time the frame is freed: an access through a stale translation sees an older generation. */
  generation: Uint32Array;
  /** Per pageblock: the migratetype its free pages belong to. */
  pageblockType: Uint8Array;
  // Free lists: doubly linked through the head frames, one list per (order, migratetype).
  private next: Int32Array;
  private prev: Int32Array;
  private heads: Int32Array;
  private counts: Int32Array;
  private freeTotal = 0;

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
    this.pageblockType = new Uint8Array(Math.ceil(frames / (1 << PAGEBLOCK_ORDER))).fill(MIGRATETYPE.MOVABLE);
    this.next = new Int32Array(frames).fill(NONE);
    this.prev = new Int32Array(frames).fill(NONE);
    this.heads = new Int32Array((MAX_ORDER + 1) * TYPES).fill(NONE);
    this.counts = new Int32Array((MAX_ORDER + 1) * TYPES);
    // Boot hands every frame to the allocator in the largest aligned blocks that fit (memblock_free_all()).
    for (let i = 0; i < frames; ) {
      let o = MAX_ORDER;
      // Alignment is the physical frame number's, as buddies are (page_to_pfn() ^ (1 << order)).
      while (o > 0 && ((firstPfn + i) % (1 << o) !== 0 || i + (1 << o) > frames)) o--;
      this.insert(i, o, MIGRATETYPE.MOVABLE);
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
    this.next.set(from.next);
    this.prev.set(from.prev);
    this.heads.set(from.heads);
    this.counts.set(from.counts);
    this.freeTotal = from.freeTotal;
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
      this.next,
      this.prev,
      this.heads,
      this.counts,
    ];
  }

  /** Arrays shared with a clone: copied before the first change. */
  private shared = false;

  /**
   * Told when frames stop being usable (a free, a migration's copy): the machine drops the pages its CPUs cached,
   * so the next access is checked against `owner` and `generation` (this allocator is the CPUs' FrameGuard).
   */
  onRelease: (() => void) | undefined;
  /** See FrameGuard.recordChanges: [pfn, count] per change of frame state, for the checker. */
  recordChanges = false;
  changes: number[] = [];

  private noteChange(index: number, count: number): void {
    if (this.recordChanges) this.changes.push(this.firstPfn + index, count);
  }

  /**
   * A migration copied the order-0 allocated frame `pfn` to another: from now until it is freed, a write to it is
   * lost (the copy never gets it). Its owner becomes FRAME_COPIED; freeBlock() frees it as usual.
   */
  markCopied(pfn: number): void {
    if (this.shared) this.unshare();
    const i = requireInteger(pfn, 'copied pfn', this.firstPfn, this.firstPfn + this.frames - 1) - this.firstPfn;
    if (this.owner[i] === NONE || this.order[i] !== 0) {
      throw new InputError(`markCopied(0x${pfn.toString(16)}): only an allocated order-0 frame can be migrated`);
    }
    this.owner[i] = FRAME_COPIED;
    this.noteChange(i, 1);
    this.onRelease?.();
  }

  private unshare(): void {
    this.order = this.order.slice();
    this.free = this.free.slice();
    this.freeType = this.freeType.slice();
    this.migratetype = this.migratetype.slice();
    this.owner = this.owner.slice();
    this.generation = this.generation.slice();
    this.pageblockType = this.pageblockType.slice();
    this.next = this.next.slice();
    this.prev = this.prev.slice();
    this.heads = this.heads.slice();
    this.counts = this.counts.slice();
    this.shared = false;
  }

  /** Free pages in all. */
  get freePages(): number {
    return this.freeTotal;
  }

  private list(order: number, type: number): number {
    return order * TYPES + type;
  }

  private insert(i: number, order: number, type: number): void {
    const l = this.list(order, type);
    const head = this.heads[l]!;
    this.next[i] = head;
    this.prev[i] = NONE;
    if (head !== NONE) this.prev[head] = i;
    this.heads[l] = i;
    this.counts[l] = this.counts[l]! + 1;
    this.order[i] = order;
    this.free[i] = 1;
    this.freeType[i] = type;
  }

  private remove(i: number, order: number): void {
    const l = this.list(order, this.freeType[i]!);
    const n = this.next[i]!;
    const p = this.prev[i]!;
    if (p !== NONE) this.next[p] = n;
    else this.heads[l] = n;
    if (n !== NONE) this.prev[n] = p;
    this.counts[l] = this.counts[l]! - 1;
    this.free[i] = 0;
  }

  private blockType(i: number): number {
    return this.pageblockType[i >>> PAGEBLOCK_ORDER]!;
  }

  /**
   * Allocates 2^order frames of `type` for `owner`; returns the first pfn, or -1 when no block of that order is
   * free in any migratetype (the caller's NULL: no reclaim, no compaction here).
   */
  alloc(order: number, type: Migratetype, owner = 0): number {
    if (this.shared) this.unshare();
    requireInteger(order, 'alloc order', 0, MAX_ORDER);
    requireInteger(owner, 'alloc owner', 0, 2 ** 31 - 1);
    if (type !== 0 && type !== 1 && type !== 2) {
      throw new InputError(
        `alloc migratetype ${describeValue(type)} must be 0 (UNMOVABLE), 1 (MOVABLE) or 2 (RECLAIMABLE)`,
      );
    }
    let i = this.takeSmallest(order, type);
    if (i === NONE && this.stealFallback(order, type)) i = this.takeSmallest(order, type);
    if (i === NONE) return -1;
    const end = i + (1 << order);
    for (let f = i; f < end; f++) {
      this.migratetype[f] = type;
      this.owner[f] = owner;
    }
    this.order[i] = order;
    this.freeTotal -= 1 << order;
    this.noteChange(i, 1 << order);
    return this.firstPfn + i;
  }

  /** __rmqueue_smallest: the smallest free block of `type` at `order` or above, split down to `order`. */
  private takeSmallest(order: number, type: number): number {
    for (let o = order; o <= MAX_ORDER; o++) {
      const i = this.heads[this.list(o, type)]!;
      if (i === NONE) continue;
      this.remove(i, o);
      // expand(): the upper halves go back on the free lists, one per order on the way down.
      for (let h = o - 1; h >= order; h--) this.insert(i + (1 << h), h, type);
      return i;
    }
    return NONE;
  }

  /**
   * __rmqueue_fallback: take the largest free block of the first fallback migratetype that has one and move it to
   * `type`'s lists. A block of half a pageblock or more, or any block taken for an UNMOVABLE or RECLAIMABLE request,
   * claims the free pages of its whole pageblock, and the pageblock itself when at least half of it is free
   * (steal_suitable_fallback()); a block of a pageblock or more changes its pageblocks' type outright.
   */
  private stealFallback(order: number, type: Migratetype): boolean {
    for (let o = MAX_ORDER; o >= order; o--) {
      for (const from of FALLBACKS[type]!) {
        const i = this.heads[this.list(o, from)]!;
        if (i === NONE) continue;
        if (o >= PAGEBLOCK_ORDER) {
          for (let b = i; b < i + (1 << o); b += 1 << PAGEBLOCK_ORDER) this.pageblockType[b >>> PAGEBLOCK_ORDER] = type;
        } else if (o >= PAGEBLOCK_ORDER / 2 || type !== MIGRATETYPE.MOVABLE) {
          this.claimPageblock(i, type);
        }
        if (this.freeType[i] !== type) {
          this.remove(i, o);
          this.insert(i, o, type);
        }
        return true;
      }
    }
    return false;
  }

  /** move_freepages_block(): every free block in `i`'s pageblock moves to `to`; the pageblock too if half is free. */
  private claimPageblock(i: number, to: Migratetype): void {
    const start = i - (i % (1 << PAGEBLOCK_ORDER));
    const end = Math.min(start + (1 << PAGEBLOCK_ORDER), this.frames);
    let freeInBlock = 0;
    for (let f = start; f < end; ) {
      const o = this.order[f]!;
      if (o === NONE) {
        f++;
        continue;
      }
      if (this.free[f] === 1) {
        freeInBlock += 1 << o;
        this.remove(f, o);
        this.insert(f, o, to);
      }
      f += 1 << o;
    }
    if (freeInBlock >= 1 << (PAGEBLOCK_ORDER - 1)) this.pageblockType[start >>> PAGEBLOCK_ORDER] = to;
  }

  /**
   * Frees the block of 2^order frames at `pfn` (allocated with that order): bumps each frame's generation, then
   * merges with free buddies of the same order, and puts the result on its pageblock's migratetype list.
   */
  freeBlock(pfn: number, order: number): void {
    if (this.shared) this.unshare();
    requireInteger(order, 'free order', 0, MAX_ORDER);
    const i = requireInteger(pfn, 'free pfn', this.firstPfn, this.firstPfn + this.frames - 1) - this.firstPfn;
    if (this.free[i] === 1 || this.order[i] !== order || this.owner[i] === NONE) {
      throw new InputError(
        `free of pfn 0x${pfn.toString(16)} order ${order}: it is not an allocated block of that order ` +
          `(${this.free[i] === 1 ? 'already free: a double free' : `its order is ${this.order[i]}`})`,
      );
    }
    for (let f = i; f < i + (1 << order); f++) {
      this.generation[f] = (this.generation[f]! + 1) >>> 0;
      this.owner[f] = NONE;
    }
    this.noteChange(i, 1 << order);
    this.freeTotal += 1 << order;
    let head = i;
    let o = order;
    while (o < MAX_ORDER) {
      const buddy = ((this.firstPfn + head) ^ (1 << o)) - this.firstPfn;
      if (buddy < 0 || buddy + (1 << o) > this.frames || this.free[buddy] !== 1 || this.order[buddy] !== o) break;
      this.remove(buddy, o);
      this.order[buddy] = NONE;
      this.order[head] = NONE;
      head = Math.min(head, buddy);
      o++;
    }
    this.insert(head, o, this.blockType(head));
    this.onRelease?.();
  }

  /**
   * isolate_freepages_block(): takes the free block headed at `pfn` off the free lists as 2^order allocated order-0
   * frames held by `owner` (compaction's targets; the unused ones go back with freeBlock). Returns the block's
   * order, or -1 when no free block starts at `pfn`.
   */
  isolateFree(pfn: number, owner: number): number {
    const i = pfn - this.firstPfn;
    if (i < 0 || i >= this.frames || this.free[i] !== 1) return -1;
    if (this.shared) this.unshare();
    const order = this.order[i]!;
    this.remove(i, order);
    for (let f = i; f < i + (1 << order); f++) {
      this.order[f] = 0;
      this.owner[f] = owner;
      this.migratetype[f] = this.blockType(f);
    }
    this.freeTotal -= 1 << order;
    this.noteChange(i, 1 << order);
    return order;
  }

  /** Hands the allocated order-0 frame at `pfn` to `owner` (a compaction target that now holds a moved page). */
  setOwner(pfn: number, owner: number): void {
    if (this.shared) this.unshare();
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

  /** Whether the frame at `pfn` is inside a free block. */
  isFree(pfn: number): boolean {
    const i = pfn - this.firstPfn;
    for (let o = 0; o <= MAX_ORDER; o++) {
      const head = i - (pfn % (1 << o));
      if (head < 0) break;
      if (this.free[head] === 1 && this.order[head]! >= o) return true;
    }
    return false;
  }

  /** Free blocks per order, in all and per migratetype. */
  buddyinfo(): BuddyInfo {
    const free: number[] = [];
    const byType: number[][] = [[], [], []];
    for (let o = 0; o <= MAX_ORDER; o++) {
      let all = 0;
      for (let t = 0; t < TYPES; t++) {
        const n = this.counts[this.list(o, t)]!;
        byType[t]!.push(n);
        all += n;
      }
      free.push(all);
    }
    return { free, byType, freePages: this.freeTotal };
  }

  /**
   * The fragmentation index for an allocation of `order` (mm/vmstat.c __fragmentation_index), times 1000: 0 when no
   * block is free, -1000 when a block of that order or larger is free, else 1000 - (1000 + free_pages * 1000 /
   * 2^order) / free_blocks: near 0 the allocation fails for lack of memory, near 1000 for fragmentation.
   */
  fragmentationIndex(order: number): number {
    requireInteger(order, 'fragmentation index order', 0, MAX_ORDER);
    const { free, freePages } = this.buddyinfo();
    const blocks = free.reduce((a, b) => a + b, 0);
    if (blocks === 0) return 0;
    if (free.slice(order).some((n) => n > 0)) return -1000;
    return 1000 - Math.floor((1000 + Math.floor((freePages * 1000) / 2 ** order)) / blocks);
  }
}
