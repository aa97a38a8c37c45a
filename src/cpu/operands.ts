import { describeValue, InputError } from '../mmu/input-error.ts';
import type { IpiDestination, IpiMode, Outcome } from './instruction.ts';

// What the Assembler checks of each operand before it builds an instruction (docs/guide.md "Errors"): sizes,
// values per size, IPI vectors and destinations, callees, outcomes, return values. Each check returns the value in
// the form the CPU executes, or throws an InputError naming the value, where it came from and the rule.

/**
 * The largest value of each access size, indexed by size. Values have one meaning per size: a negative value of
 * 1, 2 or 4 bytes is its two's complement (store(va, 1, -1) stores 0xff, and cmpxchg(va, 1, -1, ...) matches it);
 * 8-byte values are 0..2^53-1, the integers a number holds exactly (loads return numbers).
 */
export const VALUE_MAX = [0, 0xff, 0xffff, 0, 0xffff_ffff, 0, 0, 0, Number.MAX_SAFE_INTEGER];
const VALUE_RULE = [
  '',
  'a 1-byte value is an integer in -128..255',
  'a 2-byte value is an integer in -32768..65535',
  '',
  'a 4-byte value is an integer in -2147483648..4294967295',
  '',
  '',
  '',
  'an 8-byte value is an integer in 0..2^53-1 (loads return numbers, exact only below 2^53; ' +
    'write a negative or larger 64-bit value as two 4-byte halves, or move it with x.copy)',
];

/** Checks a caller's value for an access of `size` bytes and returns its unsigned image (see VALUE_MAX). */
export function operandValue(value: unknown, size: number, what: string): number {
  const max = VALUE_MAX[size]!;
  const min = size === 8 ? 0 : -(max + 1) / 2;
  let n: number | undefined;
  if (typeof value === 'number' && Number.isInteger(value)) n = value;
  else if (typeof value === 'bigint' && value >= BigInt(min) && value <= BigInt(max)) n = Number(value);
  if (n === undefined || n < min || n > max) {
    throw new InputError(`${what} ${describeValue(value)} does not fit in ${size} bytes: ${VALUE_RULE[size]}`);
  }
  return n < 0 ? n + max + 1 : n;
}

export function checkSize(size: unknown, what: string): number {
  if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
    throw new InputError(`${what} access size ${describeValue(size)} is not one of 1, 2, 4, 8 bytes`);
  }
  return size;
}

export function checkVector(vector: unknown, mode: IpiMode, what: string): number {
  if (
    typeof vector !== 'number' ||
    !Number.isInteger(vector) ||
    vector < 0 ||
    vector > 255 ||
    (mode === 'fixed' && vector < 16)
  ) {
    throw new InputError(
      `${what} vector ${describeValue(vector)} is illegal: fixed IPIs use vectors 16..255 (SDM §11.5.2), NMIs 0..255`,
    );
  }
  return vector;
}

/** The most CPUs an IPI destination list may name (a machine has at most 64). */
const MAX_DESTINATIONS = 64;

export function checkDestination(to: unknown, what: string): IpiDestination {
  if (to === 'self' || to === 'all' || to === 'all-but-self') return to;
  const isId = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  if (isId(to)) return to as number;
  let ids: number[] | undefined;
  try {
    // Indexed reads up to a bounded length: an iterator or a huge sparse array costs nothing to refuse.
    if (Array.isArray(to) && to.length > 0 && to.length <= MAX_DESTINATIONS) {
      ids = [];
      for (let i = 0; i < to.length; i++) ids.push(to[i]);
      if (!ids.every(isId)) ids = undefined;
    }
  } catch {
    ids = undefined;
  }
  if (ids) return Object.freeze(ids);
  throw new InputError(
    `${what} destination ${describeValue(to)} must be a CPU id, an array of 1..${MAX_DESTINATIONS} CPU ids, ` +
      "or one of 'self', 'all', 'all-but-self'",
  );
}

const GENERATOR_FUNCTION = Object.getPrototypeOf(function* () {});

/** Whether `f` is a generator function (bound ones included): what programs, callees and handlers must be. */
export function isGeneratorFunction(f: unknown): boolean {
  try {
    return typeof f === 'function' && Object.getPrototypeOf(f) === GENERATOR_FUNCTION;
  } catch {
    return false;
  }
}

export const OUTCOMES: readonly Exclude<Outcome, 'ok'>[] = [
  'double-fault',
  'triple-fault',
  'oops',
  'stack-corruption',
  'lost-write',
  'use-after-free',
  'deadlock',
  'assertion',
];

/** A callee's result (like RAX): any safe integer; undefined (a bare `return`) is 0. */
export function returnValue(value: unknown, what: string): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new InputError(
      `${what} value ${describeValue(value)} must be a safe integer (the callee's result, like RAX)`,
    );
  }
  return value;
}

/** A string instruction's chunk: a power of two from `min` to 4096 bytes (one page), 8 when not given. */
export function checkChunk(chunk: unknown, min: number, what: string): number {
  if (chunk === undefined) return 8;
  if (
    typeof chunk !== 'number' ||
    !Number.isInteger(chunk) ||
    chunk < min ||
    chunk > 4096 ||
    (chunk & (chunk - 1)) !== 0
  ) {
    throw new InputError(`${what} chunk ${describeValue(chunk)} must be a power of two in ${min}..4096`);
  }
  return chunk;
}
