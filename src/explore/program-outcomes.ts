import type { Activation } from '../cpu/activation.ts';
import type { Cpu } from '../cpu/cpu.ts';
import type { Instruction, InstructionAux } from '../cpu/instruction.ts';
import { InputError } from '../mmu/input-error.ts';
import type { ActivationRecord, ProgramGenerator } from './activation-record.ts';

// What programs yield, cached by history, for the stateful search (programs.ts). The search never lets the CPU
// resume a program's own generator: before a CPU steps, its innermost activation gets a feeder, a generator that
// yields the cached instruction (or returns or throws what the program did). A program's generator runs only on a
// cache miss: the record's own, when it has been resumed along this history, else one made again and
// fast-forwarded with the recorded results.

const YIELD = 0;
const RETURN = 1;
const THROW = 2;

/** Outcome kinds: the program yielded an instruction, returned a value, or threw. */
export const OUTCOME = { YIELD, RETURN, THROW } as const;

/** What a program's generator gave at one history: an instruction (yield), a return value, or an error thrown. */
export interface Outcome {
  /** The fingerprint's low 11 bits of lane B, which the cache key leaves out (see ProgramOutcomes.key). */
  readonly check: number;
  readonly kind: number;
  readonly value: unknown;
}

/** A generator that yields whatever `box.ins` holds each time it is resumed: the CPU fetches cached instructions. */
function* feeder(box: { ins: unknown }): Generator<unknown, never, number> {
  for (;;) yield box.ins;
}

// biome-ignore lint/correctness/useYield: a program that returns at once, with what the cached program returned
function* returning(value: unknown): Generator<never, unknown, number> {
  return value;
}

// biome-ignore lint/correctness/useYield: a program that throws at once, what the cached program threw
function* throwing(error: unknown): Generator<never, never, number> {
  throw error;
}

/** The outcome cache and the feeders, for one machine's CPUs. */
export class ProgramOutcomes {
  /** The outcome cache, by prefix hash (see key). */
  private readonly cache = new Map<number, Outcome>();
  private readonly boxes: { ins: unknown }[];
  private readonly feeders: ProgramGenerator[];
  /** Outcomes computed by running a generator (cache misses), generators made again, generator resumes. */
  misses = 0;
  remade = 0;
  resumed = 0;

  constructor(cpus: number) {
    this.boxes = Array.from({ length: cpus }, () => ({ ins: undefined }));
    this.feeders = this.boxes.map((box) => feeder(box) as unknown as ProgramGenerator);
  }

  /** Before CPU `cpu` steps, its innermost activation `top` (with record `r`) gets a feeder for what comes next. */
  prefetch(cpu: Cpu, top: Activation, r: ActivationRecord): void {
    const o = this.outcome(r, top.index);
    const writable = top as { gen: ProgramGenerator };
    if (o.kind === YIELD) {
      this.boxes[cpu.id]!.ins = o.value;
      writable.gen = this.feeders[cpu.id]!;
    } else if (o.kind === RETURN) writable.gen = returning(o.value) as unknown as ProgramGenerator;
    else writable.gen = throwing(o.value) as unknown as ProgramGenerator;
  }

  /**
   * What the program of `r` gives after `length` results, without a CPU stepping: the outcome prefetch would feed
   * (from the cache, or computed and cached). For the checker's look at a CPU's next step (stutter-step.ts).
   */
  upcoming(r: ActivationRecord, length: number): Outcome {
    return this.outcome(r, length);
  }

  /** The cache key of prefix lanes a:b: 53 bits (all of a, the high 21 of b); the entry checks the rest of b. */
  private static key(a: number, b: number): number {
    return (a >>> 0) * 2 ** 21 + (b >>> 11);
  }

  /** What the program of `r` gives after `length` results (the current path's), from the cache or its generator. */
  private outcome(r: ActivationRecord, length: number): Outcome {
    const a = r.ha[length]!;
    const b = r.hb[length]!;
    const hit = this.cache.get(ProgramOutcomes.key(a, b));
    if (hit !== undefined && hit.check === (b & 0x7ff)) return hit;
    this.misses++;
    // A generator at `length` calls whose calls were made with this path's results: advance the record's own when
    // its calls so far match this path, else make a new one and fast-forward it.
    let c = r.calls;
    if (r.gen === undefined || c > length || (c >= 1 && (r.genA !== r.ha[c - 1] || r.genB !== r.hb[c - 1]))) {
      r.gen = r.program(r.cpu.asm, ...r.args) as ProgramGenerator;
      r.calls = 0;
      c = 0;
      r.aliases = undefined;
      this.remade++;
    }
    for (; c < length; c++) {
      const o = this.call(r, c);
      if (o.kind !== YIELD) {
        throw new InputError(
          `CPU ${r.cpu.id}'s program ${r.program.name || '(anonymous)'} ${o.kind === RETURN ? 'returned' : 'threw'} ` +
            `at its instruction ${c + 1} when run again with the same results: a program must be a deterministic ` +
            'function of its instructions\u2019 results (docs/checker.md "The program contract")',
        );
      }
    }
    return this.call(r, length);
  }

  /** Resumes the record's generator (called `c` times so far) with the result before position c, and caches it. */
  private call(r: ActivationRecord, c: number): Outcome {
    const gen = r.gen!;
    const arg = c === 0 ? 0 : r.values[c - 1]!;
    let kind: number;
    let value: unknown;
    this.resumed++;
    try {
      const next = gen.next(arg);
      if (next.done) {
        kind = RETURN;
        value = next.value;
        r.gen = undefined;
      } else {
        kind = YIELD;
        value = next.value;
        const asm = r.cpu.asm;
        if (value === asm.reused) value = asm.reused.copy();
      }
    } catch (error) {
      kind = THROW;
      value = error;
      r.gen = undefined;
    }
    r.calls = c + 1;
    r.genA = r.ha[c]!;
    r.genB = r.hb[c]!;
    const b = r.hb[c]!;
    const key = ProgramOutcomes.key(r.ha[c]!, b);
    const known = this.cache.get(key);
    if (known !== undefined && known.check === (b & 0x7ff)) {
      if (!sameOutcome(known, kind, value)) throw this.breach(r, c, known, kind, value);
      // Fast-forwarding a generator made again: what it yields here was cached from the one before. Its own objects
      // (a callee, a context it made) stand for those: later instructions get the cached ones (see alias).
      if (known.kind === YIELD && kind === YIELD) this.pair(r, known.value as Instruction, value as Instruction);
      return known;
    }
    if (kind === YIELD && r.aliases !== undefined) value = this.alias(r, value as Instruction);
    const o: Outcome = { check: b & 0x7ff, kind, value };
    this.cache.set(key, o);
    return o;
  }

  /**
   * The program of `r`, run again with the same results, gave at its instruction c+1 something other than it gave
   * before: it breaks the program contract (it decides by something other than its instructions' results: JS state
   * an atomic action or another program changed, a clock, a random number).
   */
  private breach(r: ActivationRecord, c: number, known: Outcome, kind: number, value: unknown): InputError {
    const what = (k: number, v: unknown): string =>
      k === RETURN
        ? 'returned'
        : k === THROW
          ? 'threw'
          : `yielded ${(v as Instruction | undefined)?.name ?? String(v)}`;
    return new InputError(
      `CPU ${r.cpu.id}'s program ${r.program.name || '(anonymous)'} ${what(kind, value)} at its instruction ${c + 1} ` +
        `when run again with the same results, where it ${what(known.kind, known.value)} before: a program must be ` +
        'a deterministic function of its instructions\u2019 results, with no JS state that its atomic actions or ' +
        'other programs change (docs/checker.md "The program contract")',
    );
  }

  /**
   * A generator made again creates its objects again: a program that makes a callee or a task context once, then
   * hands it to several instructions, would hand the new ones to the instructions after the point where the
   * generator was made again, and the old ones (cached) to those before. A run never mixes them, so the new objects
   * are replaced by the old ones, paired position by position while the new generator is fast-forwarded.
   */
  private pair(r: ActivationRecord, old: Instruction, made: Instruction): void {
    const a = old?.aux;
    const b = made?.aux;
    if (a === undefined || b === undefined || a === b) return;
    const note = (from: unknown, to: unknown) => {
      const object = (typeof from === 'object' && from !== null) || typeof from === 'function';
      if (object && from !== to) {
        r.aliases ??= new Map();
        r.aliases.set(from as object, to as object);
      }
    };
    note(b.program, a.program);
    note(b.from, a.from);
    note(b.to, a.to);
    if (a.args && b.args && a.args.length === b.args.length)
      for (let i = 0; i < a.args.length; i++) note(b.args[i], a.args[i]);
  }

  /** `ins` with its objects replaced by those they stand for (see pair), or itself when none does. */
  private alias(r: ActivationRecord, ins: Instruction): Instruction {
    const aux = ins?.aux;
    const aliases = r.aliases!;
    if (aux === undefined || (aux.program === undefined && aux.from === undefined && aux.args === undefined))
      return ins;
    const swap = <T>(v: T): T => (v !== undefined && aliases.has(v as object) ? (aliases.get(v as object) as T) : v);
    const program = swap(aux.program);
    const from = swap(aux.from);
    const to = swap(aux.to);
    const args = aux.args?.map(swap);
    const changed =
      program !== aux.program || from !== aux.from || to !== aux.to || args?.some((v, i) => v !== aux.args![i]);
    if (!changed) return ins;
    const copy = ins.copy() as { aux: InstructionAux | undefined };
    copy.aux = {
      ...aux,
      ...(program === undefined ? {} : { program }),
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
      ...(args === undefined ? {} : { args }),
    };
    return copy as unknown as Instruction;
  }

  /** Outcomes in the cache. */
  get cached(): number {
    return this.cache.size;
  }
}

/** Whether a generator made again gave what was cached: the same kind and, for an instruction, the same operands. */
function sameOutcome(known: Outcome, kind: number, value: unknown): boolean {
  if (known.kind !== kind) return false;
  if (kind !== YIELD) return true;
  const a = known.value as Instruction | undefined;
  const b = value as Instruction | undefined;
  if (a === b) return true;
  if (a === undefined || b === undefined || a === null || b === null) return false;
  return (
    a.op === b.op &&
    Object.is(a.va, b.va) &&
    a.size === b.size &&
    Object.is(a.value, b.value) &&
    Object.is(a.expected, b.expected)
  );
}
