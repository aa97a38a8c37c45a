// Virtual addresses in the model are JS numbers holding bits 47:0 of a canonical address (DESIGN.md "Addresses").
// A canonical high-half address keeps only its low 48 bits; it is printed sign-extended from bit 47.
// A non-canonical address (bits 63:47 not all equal, SDM Vol. 3 §3.3.7.1) cannot be folded into 48 bits, so the
// model marks it with bit 48 (NON_CANONICAL) on top of its low 48 bits: any access to it raises #GP(0)/#SS(0).

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;
export const LARGE_PAGE_SIZE = 2 * 1024 * 1024;
export const HUGE_PAGE_SIZE = 1024 * 1024 * 1024;

const TWO_32 = 2 ** 32;
const TWO_47 = 2 ** 47;
const TWO_48 = 2 ** 48;
/** Marker bit for a non-canonical address in the model's number form. */
export const NON_CANONICAL = TWO_48;
/** Bit 47: addresses at or above it in the lower half are in the non-canonical hole. */
export const LOWER_HALF_END = TWO_47;

import { describeHex, describeValue, InputError } from './input-error.ts';

export { InputError } from './input-error.ts';

/** True when `va` (model form) is a canonical address the MMU can translate. */
export function isCanonical(va: number): boolean {
  return va >= 0 && va < TWO_48 && Number.isInteger(va);
}

/**
 * Converts a 64-bit address (bigint, hex/decimal string or a number already in model form) to the model's
 * number form. Non-canonical 64-bit values become a marked number (see NON_CANONICAL) so that accessing it
 * faults the way hardware does; malformed input throws InputError.
 */
export function toVirtual(address: bigint | number | string, where = 'address'): number {
  if (typeof address === 'number') {
    if (!Number.isInteger(address) || address < 0 || address >= 2 * TWO_48) {
      throw new InputError(
        `${where} ${describeValue(address)} is not a virtual address: numbers must be integers in 0..2^48-1 ` +
          '(the low 48 bits of a canonical address); pass a bigint or hex string for the 64-bit form',
      );
    }
    return address;
  }
  let value: bigint;
  if (typeof address === 'string') {
    const text = address.replaceAll('_', '').trim();
    // 0x and 64 hex digits is the longest spelling worth parsing (leading zeros included); a longer one is refused
    // without converting a possibly huge number.
    if (text.length > 66) {
      throw new InputError(
        `${where} ${describeValue(address)} is ${text.length} characters: no 64-bit address is that long`,
      );
    }
    if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(text)) {
      throw new InputError(
        `${where} ${describeValue(address)} is not a number: write it in hex (0xffffc90000001000) or decimal`,
      );
    }
    value = BigInt(text);
  } else if (typeof address === 'bigint') {
    value = address;
  } else {
    throw new InputError(
      `${where} ${describeValue(address)} is not an address: pass a number (model form), a bigint or a hex string`,
    );
  }
  if (value < 0n || value >= 1n << 64n) {
    throw new InputError(`${where} ${formatBig(value)} does not fit in 64 bits`);
  }
  const low48 = Number(value & 0xffff_ffff_ffffn);
  const upper = value >> 47n; // bits 63:47, 17 bits
  if (upper === 0n || upper === 0x1ffffn) return low48;
  return low48 + NON_CANONICAL;
}

/**
 * `va + delta` as 64-bit address arithmetic does it (RSP for a push, pop or frame, RSI/RDI for a string copy), in
 * model form, for |delta| < 2^47: the sum is canonical, or marked non-canonical, by where the 64-bit value falls
 * (SDM Vol. 1 §3.3.7.1), so 0x0000800000000000 - 8 is the canonical 0x00007ffffffffff8 and 0xffff800000000000 - 8
 * the non-canonical 0xffff7ffffffffff8. A marked address is read as toCanonicalBigInt prints it: in the hole next
 * to the half its bit 47 names, which is where any sum that walked off a canonical half lands.
 */
export function offsetAddress(va: number, delta: number): number {
  const a = va + delta;
  // The common case: the sum stays inside the canonical half it started in.
  if (va < TWO_47) {
    if (a >= 0 && a < TWO_47) return a;
  } else if (va < TWO_48 && a >= TWO_47 && a < TWO_48) return a;
  // As a signed 64-bit value: the lower half and the hole above it are positive, the upper half and the hole
  // below it negative.
  const low = va % TWO_48;
  const signed = va < TWO_47 ? va : va < TWO_48 ? va - TWO_48 : low >= TWO_47 ? low : low - TWO_48;
  const sum = signed + delta;
  if (sum >= -TWO_47 && sum < TWO_47) return sum >= 0 ? sum : sum + TWO_48;
  return (((sum % TWO_48) + TWO_48) % TWO_48) + NON_CANONICAL;
}

/**
 * `va + offset` for a non-negative offset: offsetAddress under the name 0.1.0 exported (walking off the top of the
 * lower half is non-canonical, off the top of the upper half wraps to 0).
 */
export const advanceAddress: (va: number, offset: number) => number = offsetAddress;

/** The canonical 64-bit form of a model address, as a bigint (API edge only). */
export function toCanonicalBigInt(va: number): bigint {
  const low = BigInt(va % TWO_48);
  if (va >= NON_CANONICAL) {
    // Bits 63:48 are not kept for a non-canonical address; print the inverse of the sign extension.
    return va % TWO_48 >= TWO_47 ? low : low | 0xffff_0000_0000_0000n;
  }
  return va >= TWO_47 ? low | 0xffff_0000_0000_0000n : low;
}

function formatBig(value: bigint): string {
  return value < 0n ? `-0x${(-value).toString(16)}` : `0x${value.toString(16).padStart(16, '0')}`;
}

/** Prints a model address in canonical 64-bit form: 0xffffc90000001000. */
export function formatVirtual(va: number): string {
  // Messages format addresses a caller passed, so a value that is not a model address is described, not thrown on.
  if (typeof va !== 'number' || !Number.isInteger(va) || va < 0 || va >= 2 * TWO_48) return describeValue(va);
  return formatBig(toCanonicalBigInt(va));
}

/** Prints a physical address: 0x1234000. */
export function formatPhysical(pa: number): string {
  return describeHex(pa);
}

/** Virtual page number (bits 47:12). */
export function pageNumber(va: number): number {
  return Math.floor(va / PAGE_SIZE);
}

/** Splits a 64-bit value held in a number (exact below 2^53) into its low and high 32-bit halves. */
export function lowHalf(value: number): number {
  return value >>> 0;
}
export function highHalf(value: number): number {
  return Math.floor(value / TWO_32) >>> 0;
}

/**
 * The 64-bit memory image of a model address: what hardware stores for a canonical address (sign-extended
 * from bit 47). Returns the high half; the low half is lowHalf(va).
 */
export function canonicalHighHalf(va: number): number {
  const low48 = va % TWO_48;
  const hi = Math.floor(low48 / TWO_32);
  const signExtend = low48 >= TWO_47;
  // A marked non-canonical address is stored with the inverse of the sign extension (see toCanonicalBigInt), so
  // reading it back gives the same non-canonical value.
  return (va >= NON_CANONICAL ? !signExtend : signExtend) ? (hi | 0xffff0000) >>> 0 : hi;
}

/** Reads a canonical 64-bit value back into model form; non-canonical images get the NON_CANONICAL mark. */
export function fromCanonicalHalves(lo: number, hi: number): number {
  const low48 = (hi & 0xffff) * TWO_32 + (lo >>> 0);
  const upper = hi >>> 15; // bits 63:47
  if (upper === 0 || upper === 0x1ffff) return low48;
  return low48 + NON_CANONICAL;
}

/** Linux x86-64 4-level layout (Documentation/arch/x86/x86_64/mm.rst), in model form. */
export const LAYOUT = {
  directMap: toVirtual(0xffff_8880_0000_0000n),
  vmallocStart: toVirtual(0xffff_c900_0000_0000n),
  vmallocEnd: toVirtual(0xffff_e8ff_ffff_ffffn) + 1,
  kernelText: toVirtual(0xffff_ffff_8000_0000n),
} as const;
