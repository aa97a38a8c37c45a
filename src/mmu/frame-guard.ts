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

/**
 * The guard's verdict on an access to physical address `pa`: 0 (allowed), or the VIOLATION it is. A free frame is a
 * use after free; so is a frame freed since the translation was made (`known`: the frame's generation + 1 when the
 * TLB entry or the buffered store was made; 0: not known, not checked); a write to a frame a migration copied away is
 * lost. Addresses outside the guarded frames are allowed.
 */
export function guardViolation(g: FrameGuard, pa: number, write: boolean, known: number): number {
  const i = Math.floor(pa / 4096) - g.firstPfn;
  if (i < 0 || i >= g.frames) return 0;
  const owner = g.owner[i]!;
  if (owner === FRAME_FREE) return VIOLATION.USE_AFTER_FREE;
  if (owner === FRAME_COPIED && write) return VIOLATION.LOST_WRITE;
  if (known !== 0 && known !== g.generation[i]! + 1) return VIOLATION.USE_AFTER_FREE;
  return 0;
}

/** The generation + 1 of the frame at `pa` now (0: outside the guarded frames): what a new translation records. */
export function frameGeneration(g: FrameGuard, pa: number): number {
  const i = Math.floor(pa / 4096) - g.firstPfn;
  return i >= 0 && i < g.frames ? g.generation[i]! + 1 : 0;
}
