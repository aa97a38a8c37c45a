// What vmalloc did, counted on the kernel (vmalloc.ts counts; kernel.ts holds them), in a module below both.

/** What vmalloc did, for the fragmentation experiment's cost columns. */
export interface VmallocStats {
  /** vmalloc calls, and those that returned NULL. */
  calls: number;
  failures: number;
  /** alloc_pages() calls vmalloc made (a bulk call counts once), and the high-order ones that failed. */
  pageAllocs: number;
  highOrderFailures: number;
  /** Huge areas that fell back to small pages. */
  hugeFallbacks: number;
  /** Pages vmalloc holds now. */
  pages: number;
}

export function emptyVmallocStats(): VmallocStats {
  return { calls: 0, failures: 0, pageAllocs: 0, highOrderFailures: 0, hugeFallbacks: 0, pages: 0 };
}
