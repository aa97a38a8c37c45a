// Memory safety against the kernel's allocator (issue: lost writes and use-after-free): with a guard, every
// translation is checked against the frame's state. The kernel's zone is the guard (src/mm/buddy.ts keeps these
// arrays); this layer only reads them, so the hardware model needs nothing from the kernel's.

/** A frame's owner when it is free in the allocator: any access to it is a use after free. */
export const FRAME_FREE = -1;
/** A frame a migration has copied away from and not yet freed: a write to it is lost (the copy never gets it). */
export const FRAME_COPIED = -2;

export interface FrameGuard {
  readonly firstPfn: number;
  readonly frames: number;
  /** Per frame (index pfn - firstPfn): who holds it, FRAME_FREE or FRAME_COPIED. */
  readonly owner: Int32Array;
  /** Per frame: bumped each time it is freed. A TLB entry made before a free is stale after it. */
  readonly generation: Uint32Array;
  /**
   * While true, every change of frame state (an allocation, a free, a copy marked) appends [pfn, count] to
   * `changes`: the checker's dependency analysis reads them per step, and empties the list itself.
   */
  recordChanges: boolean;
  readonly changes: number[];
}

/** The fault record's vector for a memory-safety violation (not an x86 vector: the CPU stops, nothing is delivered). */
export const VECTOR_VIOLATION = 0x100;
/** Its error codes: what the violation is. */
export const VIOLATION = {
  USE_AFTER_FREE: 1,
  LOST_WRITE: 2,
  /** A walk through a paging-structure-cache entry whose table frame was freed since (a use after free). */
  STALE_TABLE: 3,
} as const;
