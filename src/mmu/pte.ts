// Page-table entry format, x86-64 4-level paging (SDM Vol. 3 §4.5, Tables 4-14..4-20).
// Entries are 8 bytes; the model reads them as two 32-bit halves so NX (bit 63) needs no BigInt.

import { describeHex, InputError } from './input-error.ts';

/** Bits in the low half (bits 31:0). */
export const PTE_LO = {
  P: 1 << 0, // present
  RW: 1 << 1, // writable
  US: 1 << 2, // user-accessible
  PWT: 1 << 3, // page write-through
  PCD: 1 << 4, // page cache disable
  A: 1 << 5, // accessed: set by the walker on every entry it uses
  D: 1 << 6, // dirty: set by the walker on the final entry on a write
  PS: 1 << 7, // page size (PDPTE: 1 GiB page, PDE: 2 MiB page); PAT in a 4 KiB PTE
  G: 1 << 8, // global: survives MOV to CR3 (CR4.PGE=1)
  SW: 0b111 << 9, // bits 11:9 ignored by hardware, free for software
  ADDR: 0xfffff000, // address bits 31:12
} as const;

/** Bits in the high half (bits 63:32), as positions within that half. */
export const PTE_HI = {
  ADDR: 0x000fffff, // address bits 51:32
  PK: 0xf << 27, // protection key, bits 62:59
  NX: 1 << 31, // execute-disable, bit 63
} as const;

/** Documentation table of all bits (reference section 5), for printing and tests. */
export const PTE_BITS: readonly { readonly bit: string; readonly name: string; readonly meaning: string }[] = [
  { bit: '0', name: 'P', meaning: 'present' },
  { bit: '1', name: 'R/W', meaning: 'writable (AND-ed across levels)' },
  { bit: '2', name: 'U/S', meaning: 'user-accessible (AND-ed across levels)' },
  { bit: '3', name: 'PWT', meaning: 'page write-through' },
  { bit: '4', name: 'PCD', meaning: 'page cache disable' },
  { bit: '5', name: 'A', meaning: 'accessed (set by the walker)' },
  { bit: '6', name: 'D', meaning: 'dirty (final entry, set on write)' },
  { bit: '7', name: 'PS/PAT', meaning: 'large page in PDPTE/PDE; PAT in a PTE' },
  { bit: '8', name: 'G', meaning: 'global (kept across CR3 writes)' },
  { bit: '11:9', name: 'SW', meaning: 'ignored, for software' },
  { bit: '51:12', name: 'ADDR', meaning: 'physical address of the frame or next table' },
  { bit: '62:59', name: 'PK', meaning: 'protection key (ignored without CR4.PKE)' },
  { bit: '63', name: 'XD', meaning: 'execute-disable (with EFER.NXE; OR-ed across levels)' },
];

/** MAXPHYADDR of the modelled CPU: address bits at or above it in an entry are reserved (RSVD #PF). */
export const MAX_PHYS_ADDR_BITS = 46;
/** Reserved address bits 51:MAXPHYADDR, as a mask on the high half. */
export const PTE_HI_RESERVED = ((1 << (52 - 32)) - 1) & ~((1 << (MAX_PHYS_ADDR_BITS - 32)) - 1);
/** Bits that must be zero in a 2 MiB PDE with PS=1 (20:13) and a 1 GiB PDPTE with PS=1 (29:13). */
export const LARGE_2M_RESERVED_LO = 0x001fe000;
export const LARGE_1G_RESERVED_LO = 0x3fffe000;

const TWO_32 = 2 ** 32;

/** The physical address an entry points at (bits 51:12): the next table, or the page of a leaf. */
export function entryFrame(lo: number, hi: number): number {
  return (hi & PTE_HI.ADDR) * TWO_32 + ((lo & PTE_LO.ADDR) >>> 0);
}

export interface PteFields {
  readonly address: number;
  readonly present: boolean;
  readonly writable: boolean;
  readonly user: boolean;
  readonly writeThrough: boolean;
  readonly cacheDisable: boolean;
  readonly accessed: boolean;
  readonly dirty: boolean;
  readonly pageSize: boolean;
  readonly global: boolean;
  readonly software: number;
  readonly protectionKey: number;
  readonly noExecute: boolean;
}

/** An entry as its two 32-bit halves. */
export interface PteHalves {
  readonly lo: number;
  readonly hi: number;
}

export function decodePte(lo: number, hi: number): PteFields {
  return {
    address: entryFrame(lo, hi),
    present: (lo & PTE_LO.P) !== 0,
    writable: (lo & PTE_LO.RW) !== 0,
    user: (lo & PTE_LO.US) !== 0,
    writeThrough: (lo & PTE_LO.PWT) !== 0,
    cacheDisable: (lo & PTE_LO.PCD) !== 0,
    accessed: (lo & PTE_LO.A) !== 0,
    dirty: (lo & PTE_LO.D) !== 0,
    pageSize: (lo & PTE_LO.PS) !== 0,
    global: (lo & PTE_LO.G) !== 0,
    software: (lo & PTE_LO.SW) >>> 9,
    protectionKey: (hi & PTE_HI.PK) >>> 27,
    noExecute: (hi & PTE_HI.NX) !== 0,
  };
}

/** Builds an entry; unspecified flags are clear. `address` must be 4 KiB aligned. */
export function encodePte(fields: Partial<PteFields> & { readonly address: number }): PteHalves {
  const { address } = fields;
  if (!Number.isInteger(address) || address < 0 || address % 4096 !== 0 || address >= 2 ** 52) {
    throw new InputError(`PTE address ${describeHex(address)} must be 4 KiB aligned and below 2^52`);
  }
  let lo = (address % TWO_32) & PTE_LO.ADDR;
  let hi = Math.floor(address / TWO_32) & PTE_HI.ADDR;
  if (fields.present) lo |= PTE_LO.P;
  if (fields.writable) lo |= PTE_LO.RW;
  if (fields.user) lo |= PTE_LO.US;
  if (fields.writeThrough) lo |= PTE_LO.PWT;
  if (fields.cacheDisable) lo |= PTE_LO.PCD;
  if (fields.accessed) lo |= PTE_LO.A;
  if (fields.dirty) lo |= PTE_LO.D;
  if (fields.pageSize) lo |= PTE_LO.PS;
  if (fields.global) lo |= PTE_LO.G;
  lo |= ((fields.software ?? 0) & 0b111) << 9;
  hi |= ((fields.protectionKey ?? 0) & 0xf) << 27;
  if (fields.noExecute) hi |= PTE_HI.NX;
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

/** The 64-bit entry as a bigint (API edge, printing). */
export function pteToBigInt(pte: PteHalves): bigint {
  return (BigInt(pte.hi >>> 0) << 32n) | BigInt(pte.lo >>> 0);
}

/** Bytes an entry maps at each level (index 1 = PT .. 4 = PML4): a table, since `2 ** e` with `e` unknown to the
 * compiler is a Math.pow call, half the time of creating a 1 TiB machine (whose direct map writes 1,024 entries). */
const LEVEL_SPAN = [0, 2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39] as const;

/** Index of the entry for `va` at a level (4 = PML4 .. 1 = PT): bits 47:39, 38:30, 29:21, 20:12. */
export function tableIndex(va: number, level: 1 | 2 | 3 | 4): number {
  return (va / LEVEL_SPAN[level]) & 511;
}

export const LEVEL_NAMES = { 4: 'PML4E', 3: 'PDPTE', 2: 'PDE', 1: 'PTE' } as const;
