// The rule for bad input (docs/guide.md "Errors"): every value a caller passes is checked where it enters the
// model, and refused with an InputError that names the value, where it came from and the rule it breaks, before
// anything changes. Building that message must never itself throw, whatever the value is.

/** An error raised at the API edge for bad input: it names the value and the rule it breaks. */
export class InputError extends Error {
  override readonly name = 'InputError';
}

const MAX_TEXT = 60;

/**
 * A short, safe description of any value for an error message: 1.5, NaN, 5n, 'text', an object with no prototype.
 * Never throws (not on symbols, revoked proxies, objects whose toString throws or that have no prototype).
 */
export function describeValue(value: unknown): string {
  try {
    switch (typeof value) {
      case 'number':
        return Object.is(value, -0) ? '-0' : String(value);
      case 'bigint':
        return `${value}n`;
      case 'string': {
        const text = value.length > MAX_TEXT ? `${value.slice(0, MAX_TEXT)}...` : value;
        return `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'").replaceAll('\n', '\\n')}'`;
      }
      case 'boolean':
      case 'undefined':
        return String(value);
      case 'symbol':
        return value.toString();
      case 'function':
        return `function ${value.name || '(anonymous)'}`;
      default: {
        if (value === null) return 'null';
        if (Array.isArray(value)) return `an array of length ${value.length}`;
        const proto = Object.getPrototypeOf(value);
        if (proto === null) return 'an object with no prototype';
        const name = typeof proto.constructor === 'function' ? proto.constructor.name : '';
        return name && name !== 'Object' ? `a ${name}` : 'an object';
      }
    }
  } catch {
    return 'an unprintable value';
  }
}

/** `value` as a hex number when it is a non-negative safe integer, else described safely. */
export function describeHex(value: unknown): string {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
    ? `0x${value.toString(16)}`
    : describeValue(value);
}

/** Requires an integer in [min, max]; `what` names where the value came from ("CPU 0 store size"). */
export function requireInteger(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InputError(`${what} ${describeValue(value)} must be an integer in ${min}..${max}`);
  }
  return value;
}

/** Requires a boolean (or undefined, which gives `fallback`). */
export function requireBoolean(value: unknown, what: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InputError(`${what} ${describeValue(value)} must be true or false`);
  return value;
}

/** Requires a plain options object (or undefined) whose keys are all in `known`; returns it (or {}). */
export function requireOptions<T extends object>(value: unknown, what: string, known: readonly string[]): Partial<T> {
  if (value === undefined) return {};
  let keys: (string | symbol)[];
  try {
    // A revoked Proxy throws on any look at it: it is refused like any other unreadable value.
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TypeError();
    keys = Reflect.ownKeys(value);
  } catch {
    throw new InputError(`${what} ${describeValue(value)} must be an object`);
  }
  for (const key of keys) {
    if (typeof key !== 'string' || !known.includes(key)) {
      throw new InputError(
        `${what} has an unknown option ${describeValue(key)}; known options: ${known.join(', ') || 'none'}`,
      );
    }
  }
  return value as Partial<T>;
}

/** One of a fixed set of strings. */
export function requireOneOf<T extends string>(value: unknown, what: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new InputError(`${what} ${describeValue(value)} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
  }
  return value as T;
}
