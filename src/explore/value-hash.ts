import { Hasher } from './hash.ts';

// Hashing what a program activation was given, for its identity (programs.ts): its arguments by value, and
// functions (programs, callees) by what they are. Two builds of one machine make different closure objects for
// the same program, and the contract check compares their fingerprints, so nothing is hashed by object identity.

const TYPE_NUMBER = 1;
const TYPE_STRING = 2;
const TYPE_OTHER = 3;
const TYPE_ARRAY = 4;
const TYPE_OBJECT = 5;
const TYPE_FUNCTION = 6;
const TYPE_INSTANCE = 7;

function hashText(h: Hasher, s: string): void {
  h.add(s.length);
  for (let i = 0; i < s.length; i++) h.add(s.charCodeAt(i));
}
const FLOAT = new Float64Array(1);
const FLOAT_WORDS = new Int32Array(FLOAT.buffer);

/** Hashes values by contents: numbers, strings, arrays, plain objects; functions by name and source text. */
export class ValueHasher {
  private readonly functions = new WeakMap<object, number>();
  private readonly textHasher = new Hasher();

  /**
   * A function's description for hashing: its name and source text, the same for every closure made from one
   * function expression. Machines built twice (the contract check) have different closure objects for the same
   * program, so an identity number would not do.
   */
  functionHash(fn: (...args: never[]) => unknown): number {
    let hash = this.functions.get(fn);
    if (hash === undefined) {
      const h = this.textHasher.reset(0x2545f491, 0x9b05688c);
      hashText(h, fn.name);
      hashText(h, Function.prototype.toString.call(fn));
      hash = h.finalA;
      this.functions.set(fn, hash);
    }
    return hash;
  }

  /** Adds `v` to `h` by value (numbers, strings, arrays, plain objects) or, for functions and instances, identity. */
  hashValue(h: Hasher, v: unknown, depth: number): void {
    switch (typeof v) {
      case 'number':
        if (Number.isInteger(v)) h.add(TYPE_NUMBER).add(v);
        else {
          FLOAT[0] = v;
          h.add(TYPE_NUMBER + 16)
            .add(FLOAT_WORDS[0]!)
            .add(FLOAT_WORDS[1]!);
        }
        return;
      case 'string':
        h.add(TYPE_STRING);
        hashText(h, v);
        return;
      case 'boolean':
      case 'undefined':
      case 'bigint':
      case 'symbol':
        h.add(TYPE_OTHER).add(v === true ? 1 : v === false ? 2 : v === undefined ? 3 : 4);
        if (typeof v === 'bigint') h.add(Number(BigInt.asIntN(53, v)));
        return;
      default: {
        if (v === null) {
          h.add(TYPE_OTHER).add(5);
          return;
        }
        const o = v as object;
        const proto = Object.getPrototypeOf(o);
        if (depth < 4 && Array.isArray(o)) {
          h.add(TYPE_ARRAY).add(o.length);
          for (const e of o) this.hashValue(h, e, depth + 1);
          return;
        }
        if (depth < 4 && typeof o === 'object' && (proto === Object.prototype || proto === null)) {
          // A plain object: its keys and values, in order.
          const keys = Object.keys(o);
          h.add(TYPE_OBJECT).add(keys.length);
          for (const k of keys) {
            this.hashValue(h, k, depth + 1);
            this.hashValue(h, (o as Record<string, unknown>)[k], depth + 1);
          }
          return;
        }
        if (typeof o === 'function') {
          h.add(TYPE_FUNCTION).add(this.functionHash(o as () => unknown));
          return;
        }
        // An instance of a class: its class, and its own fields that are numbers, strings or booleans.
        h.add(TYPE_INSTANCE);
        hashText(h, (proto?.constructor as { name?: string } | undefined)?.name ?? '');
        for (const [k, field] of Object.entries(o)) {
          if (typeof field === 'number' || typeof field === 'string' || typeof field === 'boolean') {
            hashText(h, k);
            this.hashValue(h, field, depth + 1);
          }
        }
      }
    }
  }
}
