// The zone's constants (include/linux/mmzone.h, Linux 6.6), in a module of their own so that the allocator's
// modules (buddy.ts, fallback.ts, pcp.ts, ...) can share them without importing one another at load time.

/** Largest order, inclusive: 2^10 frames, a 4 MiB block (MAX_ORDER in Linux 6.4 to 6.7; NR_PAGE_ORDERS = 11). */
export const MAX_ORDER = 10;
/** A pageblock is 2^9 frames (2 MiB, pageblock_order on x86-64). */
export const PAGEBLOCK_ORDER = 9;
/** Orders above this are "costly" (PAGE_ALLOC_COSTLY_ORDER). */
export const PAGE_ALLOC_COSTLY_ORDER = 3;

export const MIGRATETYPE = { UNMOVABLE: 0, MOVABLE: 1, RECLAIMABLE: 2 } as const;
export type Migratetype = (typeof MIGRATETYPE)[keyof typeof MIGRATETYPE];
export const MIGRATETYPE_NAMES = ['UNMOVABLE', 'MOVABLE', 'RECLAIMABLE'] as const;
/** MIGRATE_PCPTYPES: the types with free lists here (no CMA, HIGHATOMIC or ISOLATE in the model). */
export const MIGRATE_TYPES = 3;
