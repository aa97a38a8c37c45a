import { VECTOR } from './exceptions.ts';

// The GDT as data: Linux x86-64's layout (arch/x86/include/asm/segment.h, GDT_ENTRIES = 16). The model has no
// LGDT or segment loads; the table exists so that gate selectors and IRET frames are checked the way the SDM
// says (Vol. 3 §6.14.1, INT n and IRET pseudocode): a null selector, one outside the table, or one that is not a
// 64-bit code segment with DPL <= CPL faults, with the selector as error code.

export interface SegmentDescriptor {
  readonly kind: 'code' | 'data' | 'system';
  readonly dpl: 0 | 3;
  readonly present: boolean;
  /** CS.L = 1 and CS.D = 0: a 64-bit code segment. */
  readonly long: boolean;
}

const code64 = (dpl: 0 | 3): SegmentDescriptor => ({ kind: 'code', dpl, present: true, long: true });
const code32 = (dpl: 0 | 3): SegmentDescriptor => ({ kind: 'code', dpl, present: true, long: false });
const data = (dpl: 0 | 3): SegmentDescriptor => ({ kind: 'data', dpl, present: true, long: false });
const empty: SegmentDescriptor = { kind: 'system', dpl: 0, present: false, long: false };

/** GDT index -> descriptor; the TSS takes two slots (8 and 9) in 64-bit mode. */
export const GDT: readonly SegmentDescriptor[] = [
  empty, // 0: null
  code32(0), // 1: __KERNEL32_CS 0x08
  code64(0), // 2: __KERNEL_CS 0x10
  data(0), // 3: __KERNEL_DS 0x18
  code32(3), // 4: __USER32_CS 0x23
  data(3), // 5: __USER_DS 0x2b
  code64(3), // 6: __USER_CS 0x33
  empty, // 7
  { kind: 'system', dpl: 0, present: true, long: false }, // 8-9: TSS 0x40
  { kind: 'system', dpl: 0, present: true, long: false },
  empty,
  empty,
  empty,
  empty,
  empty,
  empty,
];

/** A fault found by a selector check: vector (#GP or #NP) and the error code before EXT is added. */
export interface SelectorFault {
  readonly vector: number;
  readonly errorCode: number;
}

/**
 * Checks the code-segment selector of an interrupt gate for delivery at `cpl` (SDM Vol. 3, INT n pseudocode,
 * IA-32e mode): returns the fault, or the new CPL (the segment's DPL) as a number.
 */
export function checkGateSelector(selector: number, cpl: number): SelectorFault | number {
  const index = selector >>> 3;
  const code = selector & 0xfffc;
  if (index === 0 && (selector & 4) === 0) return { vector: VECTOR.GP, errorCode: 0 };
  // TI = 1 names the LDT, which is null here: every LDT selector is outside its limit.
  const d = (selector & 4) === 0 ? GDT[index] : undefined;
  if (d?.kind !== 'code' || d.dpl > cpl) return { vector: VECTOR.GP, errorCode: code };
  if (!d.present) return { vector: VECTOR.NP, errorCode: code };
  if (!d.long) return { vector: VECTOR.GP, errorCode: code };
  return d.dpl;
}

/**
 * Checks the CS and SS an IRET pops to return to `rpl = CS & 3` from `cpl` (SDM Vol. 2, IRET, IA-32e mode):
 * CS must be a present 64-bit code segment with DPL = RPL >= CPL; returning to CPL 3 needs SS to be a data segment
 * of DPL 3 with RPL 3. Returns the fault, or undefined when the frame is good.
 */
export function checkReturnSelectors(cs: number, ss: number, cpl: number): SelectorFault | undefined {
  const rpl = cs & 3;
  const d = (cs & 4) === 0 && cs >>> 3 !== 0 ? GDT[cs >>> 3] : undefined;
  if (d?.kind !== 'code' || rpl < cpl || d.dpl !== rpl || !d.long) {
    return { vector: VECTOR.GP, errorCode: cs & 0xfffc };
  }
  if (!d.present) return { vector: VECTOR.NP, errorCode: cs & 0xfffc };
  if (rpl === 3) {
    const s = (ss & 4) === 0 && ss >>> 3 !== 0 ? GDT[ss >>> 3] : undefined;
    if (s?.kind !== 'data' || s.dpl !== 3 || (ss & 3) !== 3) return { vector: VECTOR.GP, errorCode: ss & 0xfffc };
  }
  return undefined;
}
