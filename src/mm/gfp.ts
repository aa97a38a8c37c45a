import { MIGRATETYPE, type Migratetype } from './mmzone.ts';

// GFP flags and the allocator's internal alloc_flags (include/linux/gfp_types.h, mm/internal.h, Linux 6.6), with
// the bit values Linux gives them. Only the flags the model acts on are here; the combinations callers use are
// the kernel's own (GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_TRANSHUGE, ...).

export const GFP = {
  MOVABLE: 0x08,
  RECLAIMABLE: 0x10,
  /** __GFP_HIGH: may use part of the min reserve (ALLOC_MIN_RESERVE). */
  HIGH: 0x20,
  IO: 0x40,
  FS: 0x80,
  DIRECT_RECLAIM: 0x400,
  KSWAPD_RECLAIM: 0x800,
  /** __GFP_NOWARN: no "page allocation failure" report. */
  NOWARN: 0x2000,
  /** __GFP_RETRY_MAYFAIL: retry reclaim and compaction for a costly order, but may fail. */
  RETRY_MAYFAIL: 0x4000,
  /** __GFP_NORETRY: one light round of reclaim and compaction, then fail. */
  NORETRY: 0x10000,
  COMP: 0x40000,
  NOMEMALLOC: 0x80000,
  HARDWALL: 0x100000,
} as const;

/** __GFP_RECLAIM: both direct reclaim and waking kswapd. */
export const GFP_RECLAIM = GFP.DIRECT_RECLAIM | GFP.KSWAPD_RECLAIM;
/** GFP_KERNEL: may sleep, reclaim, do I/O. */
export const GFP_KERNEL = GFP_RECLAIM | GFP.IO | GFP.FS;
/** GFP_NOWAIT: wakes kswapd but never sleeps. */
export const GFP_NOWAIT = GFP.KSWAPD_RECLAIM;
/** GFP_USER and GFP_HIGHUSER_MOVABLE (no highmem on x86-64): page cache and anonymous memory. */
export const GFP_USER = GFP_KERNEL | GFP.HARDWALL;
export const GFP_HIGHUSER_MOVABLE = GFP_USER | GFP.MOVABLE;
/** GFP_TRANSHUGE_LIGHT: a THP that neither reclaims nor wakes kswapd; GFP_TRANSHUGE adds direct reclaim. */
export const GFP_TRANSHUGE_LIGHT = (GFP_HIGHUSER_MOVABLE | GFP.COMP | GFP.NOMEMALLOC | GFP.NOWARN) & ~GFP_RECLAIM;
export const GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | GFP.DIRECT_RECLAIM;

/** alloc_flags (mm/internal.h). The low bits index the watermark. */
export const ALLOC = {
  WMARK_MIN: 0,
  WMARK_LOW: 1,
  WMARK_HIGH: 2,
  NO_WATERMARKS: 0x04,
  WMARK_MASK: 0x03,
  NON_BLOCK: 0x10,
  MIN_RESERVE: 0x20,
  CPUSET: 0x40,
  /** ALLOC_NOFRAGMENT: the first pass may not fall back to another type below a pageblock. */
  NOFRAGMENT: 0x100,
  /** ALLOC_KSWAPD has __GFP_KSWAPD_RECLAIM's value, as in Linux (gfp_to_alloc_flags() copies the bit). */
  KSWAPD: GFP.KSWAPD_RECLAIM,
} as const;

/** gfp_migratetype(): MOVABLE and RECLAIMABLE select their types, anything else is UNMOVABLE. */
export function gfpMigratetype(gfp: number): Migratetype {
  if ((gfp & GFP.MOVABLE) !== 0) return MIGRATETYPE.MOVABLE;
  if ((gfp & GFP.RECLAIMABLE) !== 0) return MIGRATETYPE.RECLAIMABLE;
  return MIGRATETYPE.UNMOVABLE;
}

/**
 * gfp_to_alloc_flags(): the slow path's flags: the min watermark, __GFP_HIGH's reserve, whether kswapd may be
 * woken, and ALLOC_NON_BLOCK for callers that cannot reclaim (they may dip a little further).
 */
export function gfpToAllocFlags(gfp: number): number {
  let flags = ALLOC.WMARK_MIN | ALLOC.CPUSET;
  if ((gfp & GFP.HIGH) !== 0) flags |= ALLOC.MIN_RESERVE;
  flags |= gfp & GFP.KSWAPD_RECLAIM;
  if ((gfp & GFP.DIRECT_RECLAIM) === 0 && (gfp & GFP.NOMEMALLOC) === 0) flags |= ALLOC.NON_BLOCK;
  return flags;
}
