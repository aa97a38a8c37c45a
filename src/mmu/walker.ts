import { HUGE_PAGE_SIZE, isCanonical, LARGE_PAGE_SIZE, PAGE_SIZE } from './address.ts';
import type { Footprint } from './footprint.ts';
import { type FrameGuard, frameGeneration, guardViolation, VECTOR_VIOLATION, VIOLATION } from './frame-guard.ts';
import { type PagingStructureCache, PSC_FLAG, type PscLevel } from './paging-structure-cache.ts';
import type { PhysicalMemory } from './physical-memory.ts';
import { entryFrame, LARGE_1G_RESERVED_LO, LARGE_2M_RESERVED_LO, PTE_HI, PTE_HI_RESERVED, PTE_LO } from './pte.ts';

// The 4-level page walk (SDM Vol. 3 §4.5), shaped like QEMU's mmu_translate(): input the paging controls, an
// address and an access kind; output a translation or a fault record. It never throws; its only side effects
// are the A/D bit writes the architecture makes (§4.8).

/** Access kind bits; W, U and I mirror the #PF error-code bits they produce (SDM Vol. 3 §4.7). */
export const ACCESS = {
  READ: 0,
  WRITE: 1 << 1,
  USER: 1 << 2,
  FETCH: 1 << 4,
  /** A stack access (push/pop/frame): a non-canonical address raises #SS(0) instead of #GP(0). */
  STACK: 1 << 8,
} as const;

/** #PF error-code bits (SDM Vol. 3 §4.7, Figure 4-12). */
export const PF_ERROR = {
  P: 1 << 0,
  W: 1 << 1,
  U: 1 << 2,
  RSVD: 1 << 3,
  I: 1 << 4,
  PK: 1 << 5,
  SS: 1 << 6,
  SGX: 1 << 15,
} as const;

export const VECTOR_SS = 12;
export const VECTOR_GP = 13;
export const VECTOR_PF = 14;

/** Paging controls the walk depends on. */
export interface PagingControls {
  /** CR3: physical address of the PML4 (low 12 bits ignored). */
  cr3: number;
  /** CR0.WP: supervisor writes honour R/W. */
  wp: boolean;
  /** EFER.NXE: bit 63 is XD; without it bit 63 is reserved. */
  nxe: boolean;
}

/** A walk's outcome; reused across walks on hot paths (pass one in), fresh otherwise. */
export class WalkResult {
  ok = false;
  /** Translated physical address of the accessed byte. */
  pa = 0;
  /** Physical base and size of the page (4 KiB, 2 MiB or 1 GiB). */
  pageBase = 0;
  pageSize = PAGE_SIZE;
  /** Combined permissions: R/W and U/S AND-ed across levels, XD OR-ed (SDM §4.6). */
  writable = false;
  user = false;
  noExecute = false;
  /** D and G of the final entry after this walk. */
  dirty = false;
  global = false;
  /** Physical address of the final (leaf) entry. */
  leafEntry = 0;
  /** Entries read, outermost first (physical addresses), and how many. */
  readonly entries = new Float64Array(4);
  entryCount = 0;
  /** The paging-structure-cache entry the walk started from: its level (0: none, it read from CR3 down). */
  pscLevel = 0;
  /** Fault record when !ok: vector (14, 13 or 12), error code, and CR2 for a #PF. */
  vector = 0;
  errorCode = 0;
  cr2 = 0;

  /** The fault as a plain record (off the hot path). */
  fault(): FaultRecord | undefined {
    if (this.ok) return undefined;
    return this.vector === VECTOR_PF
      ? { vector: this.vector, errorCode: this.errorCode, cr2: this.cr2 }
      : { vector: this.vector, errorCode: this.errorCode };
  }
}

export interface FaultRecord {
  readonly vector: number;
  readonly errorCode: number;
  readonly cr2?: number;
}

/** 2^(12 + 9 * (level - 1)): dividing by it and masking 9 bits gives the table index at `level` (1..4). */
const LEVEL_DIVISOR = [0, 2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39];
const PAGE_SIZE_AT_LEVEL = [0, PAGE_SIZE, LARGE_PAGE_SIZE, HUGE_PAGE_SIZE];

function fail(out: WalkResult, vector: number, errorCode: number, cr2: number): WalkResult {
  out.ok = false;
  out.vector = vector;
  out.errorCode = errorCode;
  out.cr2 = cr2;
  return out;
}

/**
 * Translates `va` (model form) for an access of kind `access` (ACCESS bits). On success sets A on every entry used
 * and D on the final entry for a write, in memory. On failure returns the fault record: #PF with its error code and
 * CR2 = va; #GP(0), or #SS(0) for a stack access, for a non-canonical address.
 */
export function walkPageTables(
  memory: PhysicalMemory,
  controls: PagingControls,
  va: number,
  access: number,
  out: WalkResult = new WalkResult(),
  footprint?: Footprint,
  psc?: PagingStructureCache,
): WalkResult {
  out.entryCount = 0;
  out.pscLevel = 0;
  if (!isCanonical(va)) {
    return fail(out, access & ACCESS.STACK ? VECTOR_SS : VECTOR_GP, 0, va);
  }
  const write = (access & ACCESS.WRITE) !== 0;
  const user = (access & ACCESS.USER) !== 0;
  const fetch = (access & ACCESS.FETCH) !== 0;
  // The error code always reports the access kind; P and RSVD are added below (SDM §4.7).
  const accessBits = (write ? PF_ERROR.W : 0) | (user ? PF_ERROR.U : 0) | (fetch && controls.nxe ? PF_ERROR.I : 0);
  const reservedHi = PTE_HI_RESERVED | (controls.nxe ? 0 : PTE_HI.NX);

  let table = Math.floor(controls.cr3 / PAGE_SIZE) * PAGE_SIZE;
  let writable = true;
  let userOk = true;
  let noExecute = false;
  let entryAddr = 0;
  let lo = 0;
  let pageSize = PAGE_SIZE;
  let top = 4;
  // A paging-structure-cache hit skips the levels above it, with the rights it cached (SDM §4.10.3.2): the entries
  // in memory above it are not read, so a change to them since the entry was made is not seen.
  const hit = psc === undefined ? 0 : psc.lookup(va);
  if (hit !== 0) {
    const f = psc!.hitFlags;
    table = psc!.hitTable;
    // The cached entry names a table frame. With the kernel's frame guard, a frame freed since the entry was made
    // (free now, or freed and reused: its generation moved on) is no page table any more: reading it is a use after
    // free of a page-table frame, the bug deferred table freeing (MMU_GATHER_RCU_TABLE_FREE) exists to prevent.
    const guard = memory.guard;
    if (guard !== undefined) {
      if (footprint) footprint.readList.push2(table, 1); // the outcome depends on the frame's state
      if (staleTable(guard, table, psc!.hitGeneration)) {
        out.pa = table;
        return fail(out, VECTOR_VIOLATION, VIOLATION.STALE_TABLE, va);
      }
    }
    writable = (f & PSC_FLAG.WRITABLE) !== 0;
    userOk = (f & PSC_FLAG.USER) !== 0;
    noExecute = (f & PSC_FLAG.NO_EXECUTE) !== 0 && controls.nxe;
    top = hit - 1;
    out.pscLevel = hit;
  }
  // Levels 4 (PML4) down to 1 (PT); index shift 39, 30, 21, 12.
  for (let level = top; level >= 1; level--) {
    const index = (va / LEVEL_DIVISOR[level]!) & 511;
    entryAddr = table + index * 8;
    lo = memory.read32(entryAddr);
    const hi = memory.read32(entryAddr + 4);
    out.entries[out.entryCount++] = entryAddr;
    if (footprint) footprint.pteReadList.push(entryAddr);
    if ((lo & PTE_LO.P) === 0) return fail(out, VECTOR_PF, accessBits, va);
    const isLeaf = level === 1 || ((lo & PTE_LO.PS) !== 0 && level <= 3);
    let reserved = (hi & reservedHi) !== 0;
    if (level === 4 && (lo & PTE_LO.PS) !== 0) reserved = true; // PS is reserved in a PML4E
    if (isLeaf && level === 2 && (lo & LARGE_2M_RESERVED_LO) !== 0) reserved = true;
    if (isLeaf && level === 3 && (lo & LARGE_1G_RESERVED_LO) !== 0) reserved = true;
    if (reserved) return fail(out, VECTOR_PF, accessBits | PF_ERROR.P | PF_ERROR.RSVD, va);
    writable &&= (lo & PTE_LO.RW) !== 0;
    userOk &&= (lo & PTE_LO.US) !== 0;
    noExecute ||= (hi & PTE_HI.NX) !== 0 && controls.nxe;
    if (isLeaf) {
      pageSize = PAGE_SIZE_AT_LEVEL[level]!;
      table = entryFrame(lo, hi);
      break;
    }
    // A non-leaf entry was used to reach the next table: set its A bit (§4.8).
    if ((lo & PTE_LO.A) === 0) {
      memory.write32(entryAddr, (lo | PTE_LO.A) >>> 0);
      if (footprint) footprint.pteWriteList.push(entryAddr);
    }
    table = entryFrame(lo, hi);
    // A present, well-formed upper entry may be cached with the rights so far (§4.10.3.1). A walk that faults
    // below drops it again (MemoryPort: a #PF invalidates the entries for its address).
    if (psc !== undefined) {
      const flags =
        (writable ? PSC_FLAG.WRITABLE : 0) | (userOk ? PSC_FLAG.USER : 0) | (noExecute ? PSC_FLAG.NO_EXECUTE : 0);
      psc.fill(level as PscLevel, va, table, flags, tableGeneration(memory.guard, table));
      // The entry records the table frame's generation: a free of that frame is ordered with this walk.
      if (footprint && memory.guard !== undefined) footprint.readList.push2(table, 1);
    }
  }

  // Permission checks on the combined rights (§4.6): user access needs U/S everywhere; a write needs R/W unless
  // it is a supervisor write with CR0.WP=0; a fetch from an XD page faults with NXE.
  if (user && !userOk) return fail(out, VECTOR_PF, accessBits | PF_ERROR.P, va);
  if (write && !writable && (user || controls.wp)) return fail(out, VECTOR_PF, accessBits | PF_ERROR.P, va);
  if (fetch && noExecute) return fail(out, VECTOR_PF, accessBits | PF_ERROR.P, va);

  const setBits = PTE_LO.A | (write ? PTE_LO.D : 0);
  if ((lo & setBits) !== setBits) {
    lo = (lo | setBits) >>> 0;
    memory.write32(entryAddr, lo);
    if (footprint) footprint.pteWriteList.push(entryAddr);
  }
  // Large-page frame bits below the page size are not address bits (they were checked as reserved above).
  const pageBase = Math.floor(table / pageSize) * pageSize;
  out.ok = true;
  out.pageBase = pageBase;
  out.pageSize = pageSize;
  out.pa = pageBase + (va % pageSize);
  out.writable = writable;
  out.user = userOk;
  out.noExecute = noExecute;
  out.dirty = (lo & PTE_LO.D) !== 0;
  out.global = (lo & PTE_LO.G) !== 0;
  out.leafEntry = entryAddr;
  return out;
}

/** The frame guard's generation + 1 of the frame holding `table` (0: no guard, or a frame it does not cover). */
function tableGeneration(guard: FrameGuard | undefined, table: number): number {
  return guard === undefined ? 0 : frameGeneration(guard, table);
}

/** Whether the table frame a cached entry names was freed since (free now, or its generation moved on). */
function staleTable(guard: FrameGuard, table: number, generation: number): boolean {
  return guardViolation(guard, table, false, generation) !== 0;
}

/**
 * A speculative walk of the upper levels (SDM §4.10.3.1: "the processor may create a PDE-cache entry even if there
 * are no translations for any linear address that might use that entry"): from the deepest cached entry above, or
 * CR3, down to `downTo` (4 = the PML4E, 3 = the PDPTE, 2 = the PDE), caching each present, well-formed, non-leaf
 * entry as a walk does, with its rights combined, and setting its A bit (§4.8). Stops at an entry that is not
 * present, has a reserved bit set or maps a page. Returns whether the `downTo` entry was cached.
 */
export function fillUpperLevels(
  memory: PhysicalMemory,
  controls: PagingControls,
  va: number,
  downTo: PscLevel,
  psc: PagingStructureCache,
  footprint?: Footprint,
): boolean {
  if (!isCanonical(va)) return false;
  let table = Math.floor(controls.cr3 / PAGE_SIZE) * PAGE_SIZE;
  let writable = true;
  let userOk = true;
  let noExecute = false;
  let top = 4;
  if (psc.holds(downTo, va)) return false; // cached already
  const hit = downTo === 4 ? 0 : psc.lookupFrom((downTo + 1) as PscLevel, va);
  if (hit !== 0) {
    const f = psc.hitFlags;
    table = psc.hitTable;
    writable = (f & PSC_FLAG.WRITABLE) !== 0;
    userOk = (f & PSC_FLAG.USER) !== 0;
    noExecute = (f & PSC_FLAG.NO_EXECUTE) !== 0 && controls.nxe;
    top = hit - 1;
    if (memory.guard !== undefined) {
      if (footprint) footprint.readList.push2(table, 1);
      if (staleTable(memory.guard, table, psc.hitGeneration)) return false;
    }
  }
  const reservedHi = PTE_HI_RESERVED | (controls.nxe ? 0 : PTE_HI.NX);
  for (let level = top; level >= downTo; level--) {
    const entryAddr = table + ((va / LEVEL_DIVISOR[level]!) & 511) * 8;
    const lo = memory.read32(entryAddr);
    const hi = memory.read32(entryAddr + 4);
    if (footprint) footprint.pteReadList.push(entryAddr);
    if ((lo & PTE_LO.P) === 0 || (hi & reservedHi) !== 0 || (lo & PTE_LO.PS) !== 0) return false;
    writable &&= (lo & PTE_LO.RW) !== 0;
    userOk &&= (lo & PTE_LO.US) !== 0;
    noExecute ||= (hi & PTE_HI.NX) !== 0 && controls.nxe;
    if ((lo & PTE_LO.A) === 0) {
      memory.write32(entryAddr, (lo | PTE_LO.A) >>> 0);
      if (footprint) footprint.pteWriteList.push(entryAddr);
    }
    table = entryFrame(lo, hi);
    const flags =
      (writable ? PSC_FLAG.WRITABLE : 0) | (userOk ? PSC_FLAG.USER : 0) | (noExecute ? PSC_FLAG.NO_EXECUTE : 0);
    psc.fill(level as PscLevel, va, table, flags, tableGeneration(memory.guard, table));
    if (footprint && memory.guard !== undefined) footprint.readList.push2(table, 1);
  }
  return true;
}
