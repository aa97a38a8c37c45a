import type { BuddyAllocator } from './buddy.ts';
import { ALLOC } from './gfp.ts';
import { MAX_ORDER, MIGRATE_TYPES, PAGEBLOCK_ORDER } from './mmzone.ts';

// Zone watermarks and per-CPU list sizes (mm/page_alloc.c, Linux 6.6): calculate_min_free_kbytes(),
// __setup_per_zone_wmarks() with watermark_scale_factor 10, boost_watermark() with watermark_boost_factor 15000,
// zone_batchsize(), zone_highsize() and __zone_watermark_ok(). The model has one zone; it stands for ZONE_NORMAL,
// so it gets all of min_free_kbytes and no lowmem reserve.

/** The zone's watermarks in pages (zone->_watermark[] and zone->watermark_boost). */
export interface Watermarks {
  readonly min: number;
  readonly low: number;
  readonly high: number;
  /** Added to each while fallbacks have fragmented the zone recently (boost_watermark()); kswapd clears it. */
  boost: number;
}

const PAGE_KB = 4;
/** watermark_scale_factor: the kswapd watermarks are 0.1% of the zone apart. */
export const WATERMARK_SCALE_FACTOR = 10;
/** watermark_boost_factor: a fallback boosts the watermarks by up to 150% of the high watermark. */
export const WATERMARK_BOOST_FACTOR = 15000;

/** calculate_min_free_kbytes(): sqrt(lowmem_kbytes * 16), clamped to 128 KiB .. 256 MiB (1 GiB gives 4096). */
export function minFreeKbytes(managedPages: number): number {
  return Math.min(262144, Math.max(128, Math.floor(Math.sqrt(managedPages * PAGE_KB * 16))));
}

/** __setup_per_zone_wmarks() for a lowmem zone holding all the memory. */
export function zoneWatermarks(managedPages: number): Watermarks {
  const min = minFreeKbytes(managedPages) >> 2; // >> (PAGE_SHIFT - 10)
  const gap = Math.max(min >> 2, Math.floor((managedPages * WATERMARK_SCALE_FACTOR) / 10000));
  return { min, low: min + gap, high: min + 2 * gap, boost: 0 };
}

/** wmark_pages(zone, i): the watermark an alloc_flags' low bits name, boost included. */
export function watermarkPages(w: Watermarks, allocFlags: number): number {
  const i = allocFlags & ALLOC.WMARK_MASK;
  return (i === ALLOC.WMARK_MIN ? w.min : i === ALLOC.WMARK_LOW ? w.low : w.high) + w.boost;
}

/**
 * boost_watermark(): after a fallback split a foreign pageblock, raise the watermarks by a pageblock (up to
 * watermark_boost_factor of the high watermark) so kswapd reclaims a little and kcompactd follows. Not in zones
 * smaller than four pageblocks. Returns whether it boosted.
 */
export function boostWatermark(w: Watermarks, managedPages: number): boolean {
  const pageblock = 1 << PAGEBLOCK_ORDER;
  if (pageblock * 4 > managedPages) return false;
  let maxBoost = Math.floor((w.high * WATERMARK_BOOST_FACTOR) / 10000);
  if (maxBoost === 0) return false;
  maxBoost = Math.max(pageblock, maxBoost);
  w.boost = Math.min(w.boost + pageblock, maxBoost);
  return true;
}

/**
 * zone_batchsize(): pages moved between a per-CPU list and the zone at once: about 0.1% of the zone or 1 MiB,
 * whichever is smaller, a quarter of that, rounded down to 2^n - 1 (63 for any zone of 1 GiB or more). It may be 0
 * for a tiny zone; zone_set_pageset_high_and_batch() takes at least 1.
 */
export function zoneBatchsize(managedPages: number): number {
  let batch = Math.min(managedPages >> 10, (1024 * 1024) / 4096);
  batch = Math.max(1, Math.floor(batch / 4));
  const x = batch + (batch >> 1);
  return 2 ** Math.floor(Math.log2(x)) - 1;
}

/** zone_highsize(): a per-CPU list is drained above the low watermark split across the CPUs, at least 4 batches. */
export function zoneHighsize(lowWatermark: number, batch: number, cpus: number): number {
  return Math.max(Math.floor(lowWatermark / cpus), batch << 2);
}

/**
 * __zone_watermark_ok(z, order, mark, highest_zoneidx, alloc_flags, free_pages): are `freePages` above `mark` (less
 * the reserves the caller may use) with the pages the request takes counted out, and, for order > 0, is a block of
 * that order or larger free on a list the request can use?
 */
export function zoneWatermarkOk(
  zone: BuddyAllocator,
  order: number,
  mark: number,
  allocFlags: number,
  freePages: number = zone.freePages,
): boolean {
  let min = mark;
  const free = freePages - ((1 << order) - 1);
  if ((allocFlags & ALLOC.MIN_RESERVE) !== 0) {
    min -= Math.floor(min / 2); // __GFP_HIGH: half the min reserve
    if ((allocFlags & ALLOC.NON_BLOCK) !== 0) min -= Math.floor(min / 4);
  }
  if (free <= min) return false;
  if (order === 0) return true;
  for (let o = order; o <= MAX_ORDER; o++) {
    if (zone.nrFree(o) === 0) continue;
    for (let t = 0; t < MIGRATE_TYPES; t++) if (zone.freeCount(o, t) > 0) return true;
  }
  return false;
}
