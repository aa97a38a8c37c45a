import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalHighHalf,
  formatPhysical,
  formatVirtual,
  fromCanonicalHalves,
  InputError,
  isCanonical,
  LAYOUT,
  lowHalf,
  NON_CANONICAL,
  offsetAddress,
  pageNumber,
  toCanonicalBigInt,
  toVirtual,
} from '../../src/mmu/address.ts';

const TWO_48 = 2 ** 48;
/** Any canonical 64-bit address: bits 63:47 all zero or all one. */
const canonical64 = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 47n) - 1n }),
  fc.bigInt({ min: 0xffff_8000_0000_0000n, max: 0xffff_ffff_ffff_ffffn }),
);
const hex64 = (value: bigint) => `0x${value.toString(16).padStart(16, '0')}`;

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('canonical addresses', () => {
  it('parses 0xffffc90000001000 to its low 48 bits and prints it back in canonical form', () => {
    const va = toVirtual('0xffffc90000001000');
    expect(va).toBe(0xc900_0000_1000);
    expect(isCanonical(va)).toBe(true);
    expect(formatVirtual(va)).toBe('0xffffc90000001000');
    expect(toCanonicalBigInt(va)).toBe(0xffff_c900_0000_1000n);
  });

  it('accepts the same address as a bigint, with underscores, in upper case or in decimal', () => {
    const expected = 0xc900_0000_1000;
    expect(toVirtual(0xffff_c900_0000_1000n)).toBe(expected);
    expect(toVirtual('0xffff_c900_0000_1000')).toBe(expected);
    expect(toVirtual('0XFFFFC90000001000')).toBe(expected);
    expect(toVirtual(' 18446683600570028032 ')).toBe(expected);
  });

  it('takes a number already in model form unchanged', () => {
    expect(toVirtual(0x7fff_ffff_f000)).toBe(0x7fff_ffff_f000);
    expect(toVirtual(0)).toBe(0);
  });

  it('keeps the lower and upper ends of both halves canonical', () => {
    for (const [text, model] of [
      ['0x0000000000000000', 0],
      ['0x00007fffffffffff', 2 ** 47 - 1],
      ['0xffff800000000000', 2 ** 47],
      ['0xffffffffffffffff', TWO_48 - 1],
    ] as const) {
      expect(toVirtual(text)).toBe(model);
      expect(formatVirtual(model)).toBe(text);
    }
  });

  it('round-trips every canonical 64-bit address through the model form', () => {
    fc.assert(
      fc.property(canonical64, (address) => {
        const va = toVirtual(address);
        expect(isCanonical(va)).toBe(true);
        expect(va).toBeLessThan(TWO_48);
        expect(toCanonicalBigInt(va)).toBe(address);
        expect(formatVirtual(va)).toBe(hex64(address));
        expect(toVirtual(formatVirtual(va))).toBe(va);
      }),
    );
  });

  it('stores a canonical address in memory as its sign-extended 64-bit image and reads it back', () => {
    const va = toVirtual('0xffffc90000001000');
    expect(lowHalf(va)).toBe(0x0000_1000);
    expect(canonicalHighHalf(va)).toBe(0xffff_c900);
    fc.assert(
      fc.property(canonical64, (address) => {
        const va = toVirtual(address);
        const lo = lowHalf(va);
        const hi = canonicalHighHalf(va);
        expect((BigInt(hi) << 32n) | BigInt(lo)).toBe(address);
        expect(fromCanonicalHalves(lo, hi)).toBe(va);
      }),
    );
  });

  it('gives the page number of an address (bits 47:12)', () => {
    expect(pageNumber(toVirtual('0xffffc90000001fff'))).toBe(0xc900_0000_1);
    expect(pageNumber(0x1000)).toBe(1);
  });

  it("places Linux's x86-64 regions at their documented canonical addresses", () => {
    expect(formatVirtual(LAYOUT.directMap)).toBe('0xffff888000000000');
    expect(formatVirtual(LAYOUT.vmallocStart)).toBe('0xffffc90000000000');
    expect(formatVirtual(LAYOUT.vmallocEnd - 1)).toBe('0xffffe8ffffffffff');
    expect(formatVirtual(LAYOUT.kernelText)).toBe('0xffffffff80000000');
  });

  it('prints physical addresses in hex', () => {
    expect(formatPhysical(0x123_4000)).toBe('0x1234000');
  });
});

describe('non-canonical addresses', () => {
  it('marks a non-canonical address so that it is not translatable, without throwing', () => {
    for (const address of [0x0000_8000_0000_0000n, 0xffff_7fff_ffff_ffffn, 0x8000_0000_0000_0000n, 1n << 48n]) {
      const va = toVirtual(address);
      expect(isCanonical(va)).toBe(false);
      expect(va).toBeGreaterThanOrEqual(NON_CANONICAL);
    }
  });

  it('marks every 64-bit value whose bits 63:47 are mixed', () => {
    const nonCanonical = fc
      .bigInt({ min: 1n, max: 0x1fffen })
      .chain((upper) => fc.bigInt({ min: 0n, max: (1n << 47n) - 1n }).map((low) => (upper << 47n) | low));
    fc.assert(
      fc.property(nonCanonical, (address) => {
        expect(isCanonical(toVirtual(address))).toBe(false);
      }),
    );
  });

  it('prints a non-canonical address just past either half in its original 64-bit form', () => {
    expect(formatVirtual(toVirtual(0x0000_8000_0000_0000n))).toBe('0x0000800000000000');
    expect(formatVirtual(toVirtual(0xffff_7fff_ffff_f000n))).toBe('0xffff7ffffffff000');
  });

  it('treats negative, fractional and out-of-range model numbers as not canonical', () => {
    for (const va of [-1, 0.5, TWO_48, Number.NaN, Number.POSITIVE_INFINITY]) expect(isCanonical(va)).toBe(false);
  });
});

describe('malformed addresses', () => {
  it.each(['0xfffg', '', 'ffffc90000001000', '0x', '-1', '1e6', '0xffffc900 00001000'])(
    'rejects the string %j with an InputError naming it',
    (text) => {
      const error = thrown(() => toVirtual(text));
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).name).toBe('InputError');
      expect((error as InputError).message).toContain(`'${text}'`);
    },
  );

  it('rejects a value wider than 64 bits with an InputError naming it', () => {
    const error = thrown(() => toVirtual(1n << 64n));
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toContain('0x10000000000000000');
    expect(() => toVirtual('0x1ffffc90000001000')).toThrow(InputError);
  });

  it('rejects a negative bigint with an InputError', () => {
    expect(() => toVirtual(-1n)).toThrow(InputError);
  });

  it.each([-1, 0.5, 2 ** 49, Number.NaN])('rejects the model number %d with an InputError naming it', (value) => {
    const error = thrown(() => toVirtual(value));
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toContain(String(value));
  });
});

describe('offsetting an address as 64-bit arithmetic does', () => {
  it.each([
    ['inside the lower half', 0x1000n, 8, 0x1008n],
    ['off the top of the lower half: non-canonical', 0x0000_7fff_ffff_fff8n, 8, 0x0000_8000_0000_0000n],
    ['inside the upper half', 0xffff_c900_0000_0000n, 16, 0xffff_c900_0000_0010n],
    ['off the top of the upper half: wraps to 0', 0xffff_ffff_ffff_fff8n, 8, 0n],
    ['past 0 after the wrap', 0xffff_ffff_ffff_fff8n, 24, 0x10n],
    ['below 0: wraps to the top of the upper half', 0n, -8, 0xffff_ffff_ffff_fff8n],
    ['a push from the hole above the lower half is canonical', 0x0000_8000_0000_0000n, -8, 0x0000_7fff_ffff_fff8n],
    ['a push from the bottom of the upper half is not', 0xffff_8000_0000_0000n, -8, 0xffff_7fff_ffff_fff8n],
    ['back up out of the hole below the upper half', 0xffff_7fff_ffff_fff8n, 8, 0xffff_8000_0000_0000n],
    ['inside the hole above the lower half', 0x0000_8000_0000_0000n, 8, 0x0000_8000_0000_0008n],
  ])('%s', (_name, start, offset, expected) => {
    expect(offsetAddress(toVirtual(start), offset)).toBe(toVirtual(expected));
  });

  it('agrees with bigint arithmetic on every address near the canonical boundaries', () => {
    const starts = [
      0n,
      0x10n,
      0x0000_7fff_ffff_ff00n,
      0x0000_8000_0000_0010n,
      0xffff_7fff_ffff_fff0n,
      0xffff_8000_0000_0000n,
    ];
    for (const start of starts) {
      for (let delta = -64; delta <= 64; delta += 8) {
        const sum = BigInt.asUintN(64, start + BigInt(delta));
        expect(toCanonicalBigInt(offsetAddress(toVirtual(start), delta))).toBe(sum);
      }
    }
  });
});
