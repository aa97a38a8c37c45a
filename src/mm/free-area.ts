// What fallback.ts, pageblock.ts and fragmentation.ts need of the zone's free area, in a module below all of
// them and buddy.ts: BuddyAllocator implements it and calls them, so they take this interface rather than the
// class (types flow down, and no import cycle runs through buddy.ts).

/** What the mm_page_alloc_extfrag tracepoint saw (fallback.ts counts them). */
export interface ExtfragCounts {
  /** Every fallback to another migratetype's free list. */
  events: number;
  /** Those that took a block smaller than a pageblock (the tracepoint's `fragmenting=1`). */
  fragmenting: number;
  /** Those whose pageblock changed type to the allocation's (`change_ownership=1`). */
  changeOwnership: number;
}

/** The zone's free area as the split modules use it (see BuddyAllocator for each member). */
export interface FreeArea {
  readonly firstPfn: number;
  readonly frames: number;
  readonly order: Int8Array;
  readonly free: Uint8Array;
  readonly migratetype: Uint8Array;
  readonly owner: Int32Array;
  readonly pageblockType: Uint8Array;
  extfrag: ExtfragCounts;
  movablePassed: number;
  readonly freePages: number;
  moveToFreeList(i: number, order: number, type: number): void;
  firstFree(order: number, type: number): number;
  freeCount(order: number, type: number): number;
  nrFree(order: number): number;
  rmqueueSmallest(order: number, type: number): number;
  setPageblockType(i: number, type: number): void;
  isMovableFrame(i: number): boolean;
  takeFree(i: number): number;
  changed(index: number, count: number): void;
}
