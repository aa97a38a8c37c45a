import type { Program } from '../cpu/assembler.ts';
import type { Cpu } from '../cpu/cpu.ts';
import type { Instruction } from '../cpu/instruction.ts';
import type { Hasher } from './hash.ts';

// What the stateful search knows of one program activation (programs.ts): its identity, hashed, the results its
// instructions returned on the current path (its history) with the hash of each prefix, and a generator of its
// program that has been resumed along some history (program-outcomes.ts runs it on a cache miss).

export type ProgramGenerator = Generator<Instruction, number | undefined | void, number>;

/** One activation's identity and its history on the current path. */
export class ActivationRecord {
  /** Results of the instructions it completed, in order (the values its yields returned); `length` are valid. */
  values = new Float64Array(8);
  /** Prefix hashes: lanes of the hash of identity + values[0..i), at index i (index 0: the identity). */
  ha = new Int32Array(9);
  hb = new Int32Array(9);
  length = 0;
  /** A generator of the program that has been called `calls` times, the last time at the prefix `genA`:`genB`. */
  gen: ProgramGenerator | undefined;
  calls = 0;
  /** Objects of `gen` standing for those of the generator it replaced (see ProgramOutcomes.pair). */
  aliases: Map<object, object> | undefined;
  genA = 0;
  genB = 0;

  constructor(
    readonly cpu: Cpu,
    readonly program: Program,
    readonly args: readonly unknown[],
    idA: number,
    idB: number,
    gen: ProgramGenerator,
  ) {
    this.ha[0] = idA;
    this.hb[0] = idB;
    this.gen = gen;
  }

  append(value: number, hasher: Hasher): void {
    const n = this.length;
    if (n + 1 >= this.ha.length) this.grow();
    this.values[n] = value;
    hasher.reset(this.ha[n]!, this.hb[n]!).add(value);
    this.ha[n + 1] = hasher.a;
    this.hb[n + 1] = hasher.b;
    this.length = n + 1;
  }

  private grow(): void {
    const size = this.ha.length * 2;
    const values = new Float64Array(size);
    values.set(this.values);
    const ha = new Int32Array(size + 1);
    ha.set(this.ha);
    const hb = new Int32Array(size + 1);
    hb.set(this.hb);
    this.values = values;
    this.ha = ha;
    this.hb = hb;
  }
}
