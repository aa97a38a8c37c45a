// The kernel's lock names and owner tags, in a module below kernel.ts so that the modules kernel.ts builds on
// can use them without importing it (kernel.ts re-exports them).

/** Lock names of the bookkeeping, as footprints record them. */
export const LOCK = {
  ZONE: 'zone',
  VMAP_AREA: 'vmap_area',
  RUNQUEUE: 'runqueue',
  LOG: 'log',
  CALL_FUNCTIONS: 'call_functions',
  STATS: 'stats',
} as const;

/** Owner tags the allocator records, so a frame says what it is. */
export const OWNER = {
  PAGE_TABLE: 1,
  VMALLOC: 2,
  OTHER: 3,
  /** A file page (page cache): on the LRU, reclaimable and movable. */
  PAGE_CACHE: 4,
  SLAB: 5,
  COMPACTION: 6,
  /** An anonymous page: on the LRU and movable, not reclaimable (no swap in the model). */
  ANON: 7,
  /** A reclaimable slab page (dentries, inodes: GFP_KERNEL | __GFP_RECLAIMABLE). */
  SLAB_RECLAIMABLE: 8,
} as const;
