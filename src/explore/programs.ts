import type { ExecutionContext } from '../cpu/context.ts';
import { type Activation, type Cpu, STEP_KIND } from '../cpu/cpu.ts';
import { type Instruction, type InstructionAux, OP, type Program } from '../cpu/instruction.ts';
import { InputError } from '../mmu/input-error.ts';
import { Hasher } from './hash.ts';

// The programs' share of a machine state, for the stateful search (stateful.ts). A generator cannot be copied, but
// a deterministic one is in the same state whenever it has been resumed with the same values: so an activation's
// state is its identity (CPU, program, arguments, kind, where its frame is) and the results its instructions
// returned so far, its history. Each activation gets an ActivationRecord: the history on the current path and a
// hash of each prefix of it.
//
// The search never lets the CPU resume a program's own generator. What a program yields at a history is the same
// every time (the program contract, docs/checker.md), so it is computed once and kept in a cache keyed by the
// prefix hash: before a CPU steps, its innermost activation gets a feeder, a generator that yields the cached
// instruction (or returns or throws what the program did). The program's own generator, or a new one fast-forwarded
// with the recorded results, runs only on a cache miss. So going back to an earlier state needs no generator at all:
// the activations' fields (instructions done, pending instruction, last result) are put back.

const YIELD = 0;
const RETURN = 1;
const THROW = 2;

/** What a program's generator gave at one history: an instruction (yield), a return value, or an error thrown. */
interface Outcome {
  /** The fingerprint's low 11 bits of lane B, which the cache key leaves out (see cacheKey). */
  readonly check: number;
  readonly kind: number;
  readonly value: unknown;
}

type ProgramGenerator = Generator<Instruction, number | undefined | void, number>;

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
  /** Objects of `gen` standing for those of the generator it replaced (see ProgramStates.pair). */
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

/**
 * A saved context's control stack as it was at one state: the activations, their records, and per
 * activation its instructions done, copy progress and whether it finished (`fields`, three numbers each) and its
 * pending instruction. Its last result need not be kept: it is the history's last value.
 */
export interface StackSnapshot {
  readonly acts: readonly Activation[];
  readonly records: readonly ActivationRecord[];
  readonly fields: Float64Array;
  readonly pending: readonly (Instruction | undefined)[];
  /** The stack's hash lanes. */
  readonly hashA: number;
  readonly hashB: number;
}

/** A checkpoint's copy of a CPU's control stack (see ProgramStates.saveCpu), its arrays reused from state to state. */
export class StackStore {
  readonly acts: Activation[] = [];
  readonly records: ActivationRecord[] = [];
  fields = new Float64Array(12);
  readonly pending: (Instruction | undefined)[] = [];
}

/** The contexts a switch has named, in the order first named, with their saved stacks and RSPs at one state. */
export interface ContextsSnapshot {
  readonly count: number;
  readonly saved: readonly (StackSnapshot | undefined)[];
  readonly rsp: Float64Array;
  readonly hashA: number;
  readonly hashB: number;
}

const EMPTY_CONTEXTS: ContextsSnapshot = {
  count: 0,
  saved: [],
  rsp: new Float64Array(0),
  hashA: 0x1f83d9ab,
  hashB: 0x5be0cd19,
};

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

/**
 * The programs of one machine, seen by the stateful search: a record per activation, kept current by sync() after
 * each step. With `drive`, also the outcome cache and the feeders (the search itself); without, only the records
 * and hashes (the contract check's re-runs, where the CPUs resume the programs themselves).
 */
export class ProgramStates {
  private readonly records = new WeakMap<Activation, ActivationRecord>();
  /** Per CPU: its control stack as last synced, and the records (so a step that changed nothing costs little). */
  private readonly mirror: Activation[][];
  private readonly mirrorRecords: ActivationRecord[][];
  /** Functions' hashes (see functionHash). */
  private readonly functions = new WeakMap<object, number>();
  private readonly textHasher = new Hasher();
  /** The outcome cache, by prefix hash (see cacheKey). */
  private readonly cache = new Map<number, Outcome>();
  private readonly boxes: { ins: unknown }[];
  private readonly feeders: ProgramGenerator[];
  /** Contexts named by switch-context steps, in order. */
  private readonly known: ExecutionContext[] = [];
  contexts: ContextsSnapshot = EMPTY_CONTEXTS;
  private readonly hasher = new Hasher();
  /** Outcomes computed by running a generator (cache misses) and generators made again to fast-forward. */
  misses = 0;
  remade = 0;
  resumed = 0;

  constructor(cpus: readonly Cpu[]) {
    this.mirror = cpus.map(() => []);
    this.mirrorRecords = cpus.map(() => []);
    this.boxes = cpus.map(() => ({ ins: undefined }));
    this.feeders = this.boxes.map((box) => feeder(box) as unknown as ProgramGenerator);
    for (const cpu of cpus) {
      for (const a of cpu.activations) {
        if (a.index !== 0 || a.pending !== undefined) {
          throw new InputError(
            `the stateful search needs a machine that has not run: CPU ${cpu.id}'s program has executed ${a.index} ` +
              'instructions already (explore a build function that returns a machine before its first step)',
          );
        }
      }
      this.sync(cpu);
    }
  }

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
  private hashValue(h: Hasher, v: unknown, depth: number): void {
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

  /** The record of `a` (made on first sight: its identity hashed, its own generator adopted). */
  recordOf(cpu: Cpu, a: Activation): ActivationRecord {
    let r = this.records.get(a);
    if (r === undefined) {
      const h = this.hasher.reset(0x6a09e667, 0xbb67ae85);
      h.add(cpu.id).add(this.functionHash(a.program));
      h.add(a.kind === 'task' ? 1 : a.kind === 'call' ? 2 : 3)
        .add(a.codeBase)
        .add(a.vector);
      h.add(a.errorCodePushed ? 1 : 0)
        .add(a.frameRsp)
        .add(a.byException ? 1 : 0);
      this.hashValue(h, a.args, 0);
      r = new ActivationRecord(cpu, a.program, a.args, h.a, h.b, a.gen as ProgramGenerator);
      this.records.set(a, r);
    }
    return r;
  }

  /** Brings CPU `cpu`'s records up to date after it stepped: new activations, completed instructions, switches. */
  sync(cpu: Cpu): void {
    const acts = cpu.activations;
    const mirror = this.mirror[cpu.id]!;
    const recs = this.mirrorRecords[cpu.id]!;
    for (let i = 0; i < acts.length; i++) {
      const a = acts[i]!;
      let r: ActivationRecord;
      if (mirror[i] === a) r = recs[i]!;
      else {
        r = this.recordOf(cpu, a);
        mirror[i] = a;
        recs[i] = r;
      }
      if (a.index !== r.length) {
        if (a.index !== r.length + 1) {
          throw new Error(`internal: CPU ${cpu.id} activation ${i} went from ${r.length} to ${a.index} in a step`);
        }
        r.append(a.resume, this.hasher);
      }
    }
    if (mirror.length !== acts.length) {
      mirror.length = acts.length;
      recs.length = acts.length;
    }
    if (cpu.lastKind === STEP_KIND.INSTRUCTION && cpu.lastInstruction?.op === OP.SWITCH_CONTEXT) {
      this.switched(cpu.lastInstruction);
    }
  }

  private switched(ins: Instruction): void {
    const from = ins.aux!.from!;
    const to = ins.aux!.to!;
    for (const c of [from, to]) if (!this.known.includes(c)) this.known.push(c);
  }

  // Fetching -------------------------------------------------------------------------------------------------------

  /** Before CPU `cpu` steps: its innermost activation, if the step may fetch from it, gets a feeder. */
  prefetch(cpu: Cpu): void {
    const acts = cpu.activations;
    const top = acts[acts.length - 1];
    if (top === undefined || top.pending !== undefined || top.finished) return;
    const r = this.mirror[cpu.id]![acts.length - 1] === top ? this.mirrorRecords[cpu.id]![acts.length - 1]! : undefined;
    if (r === undefined) throw new Error(`internal: CPU ${cpu.id} was not synced before it steps`);
    const o = this.outcome(r, top.index);
    const writable = top as { gen: ProgramGenerator };
    if (o.kind === YIELD) {
      this.boxes[cpu.id]!.ins = o.value;
      writable.gen = this.feeders[cpu.id]!;
    } else if (o.kind === RETURN) writable.gen = returning(o.value) as unknown as ProgramGenerator;
    else writable.gen = throwing(o.value) as unknown as ProgramGenerator;
  }

  /** The cache key of prefix lanes a:b: 53 bits (all of a, the high 21 of b); the entry checks the rest of b. */
  private static key(a: number, b: number): number {
    return (a >>> 0) * 2 ** 21 + (b >>> 11);
  }

  /** What the program of `r` gives after `length` results (the current path's), from the cache or its generator. */
  private outcome(r: ActivationRecord, length: number): Outcome {
    const a = r.ha[length]!;
    const b = r.hb[length]!;
    const hit = this.cache.get(ProgramStates.key(a, b));
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
    const key = ProgramStates.key(r.ha[c]!, b);
    const known = this.cache.get(key);
    if (known !== undefined && known.check === (b & 0x7ff)) {
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

  // Hashes and snapshots --------------------------------------------------------------------------------------------

  /** CPU `cpu`'s control stack (synced) hashed into `out` at `at` (two lanes). */
  hashCpu(cpu: Cpu, out: Int32Array, at: number): void {
    const acts = cpu.activations;
    const records = this.mirrorRecords[cpu.id]!;
    const h = this.hasher.reset(0x3c6ef372, acts.length);
    for (let i = 0; i < acts.length; i++) {
      const a = acts[i]!;
      const r = records[i]!;
      h.add2(r.ha[a.index]!, r.hb[a.index]!);
      h.add((a.pending !== undefined ? 1 : 0) | (a.finished ? 2 : 0)).add(a.progress);
    }
    out[at] = h.a;
    out[at + 1] = h.b;
  }

  /** Copies CPU `cpu`'s control stack (synced) into `to` (a checkpoint's store, reused). */
  saveCpu(cpu: Cpu, to: StackStore): void {
    const acts = cpu.activations;
    const records = this.mirrorRecords[cpu.id]!;
    const n = acts.length;
    if (to.fields.length < 3 * n) to.fields = new Float64Array(6 * n);
    // Setting an array's length is a runtime call: only when it changes.
    if (to.acts.length !== n) {
      to.acts.length = n;
      to.records.length = n;
      to.pending.length = n;
    }
    const f = to.fields;
    for (let i = 0; i < n; i++) {
      const a = acts[i]!;
      to.acts[i] = a;
      to.records[i] = records[i]!;
      to.pending[i] = a.pending;
      f[3 * i] = a.index;
      f[3 * i + 1] = a.progress;
      f[3 * i + 2] = a.finished ? 1 : 0;
    }
  }

  /** A snapshot of a saved context's control stack (contexts change only at switches: these are few). */
  private snapshotStack(acts: readonly Activation[], records: readonly ActivationRecord[]): StackSnapshot {
    const n = acts.length;
    const fields = new Float64Array(3 * n);
    const pending: (Instruction | undefined)[] = new Array(n);
    const h = this.hasher.reset(0x3c6ef372, n);
    for (let i = 0; i < n; i++) {
      const a = acts[i]!;
      const r = records[i]!;
      fields[3 * i] = a.index;
      fields[3 * i + 1] = a.progress;
      fields[3 * i + 2] = a.finished ? 1 : 0;
      pending[i] = a.pending;
      h.add2(r.ha[a.index]!, r.hb[a.index]!);
      h.add((a.pending !== undefined ? 1 : 0) | (a.finished ? 2 : 0)).add(a.progress);
    }
    return { acts: acts.slice(), records: records.slice(), fields, pending, hashA: h.a, hashB: h.b };
  }

  /** Puts CPU `cpu`'s control stack back as `from` holds it. */
  restoreCpuFrom(cpu: Cpu, from: StackStore): void {
    const n = from.acts.length;
    const f = from.fields;
    for (let i = 0; i < n; i++) {
      const a = from.acts[i]!;
      const r = from.records[i]!;
      const index = f[3 * i]!;
      a.index = index;
      a.resume = index === 0 ? 0 : r.values[index - 1]!;
      a.progress = f[3 * i + 1]!;
      a.finished = f[3 * i + 2] === 1;
      a.pending = from.pending[i];
      r.length = index;
    }
    cpu.replaceControlStack(from.acts);
    const mirror = this.mirror[cpu.id]!;
    const recs = this.mirrorRecords[cpu.id]!;
    if (mirror.length !== n) {
      mirror.length = n;
      recs.length = n;
    }
    for (let i = 0; i < n; i++) {
      mirror[i] = from.acts[i]!;
      recs[i] = from.records[i]!;
    }
  }

  private restoreFields(s: StackSnapshot): void {
    const f = s.fields;
    for (let i = 0; i < s.acts.length; i++) {
      const a = s.acts[i]!;
      const r = s.records[i]!;
      const index = f[3 * i]!;
      a.index = index;
      a.resume = index === 0 ? 0 : r.values[index - 1]!;
      a.progress = f[3 * i + 1]!;
      a.finished = f[3 * i + 2] === 1;
      a.pending = s.pending[i];
      r.length = index;
    }
  }

  /** The contexts' snapshot after a step that may have switched: a new one when the known contexts changed. */
  snapshotContexts(previous: ContextsSnapshot, cpu: Cpu | undefined): ContextsSnapshot {
    const switched =
      cpu !== undefined && cpu.lastKind === STEP_KIND.INSTRUCTION && cpu.lastInstruction?.op === OP.SWITCH_CONTEXT;
    if (!switched && previous.count === this.known.length) return previous;
    const count = this.known.length;
    const saved: (StackSnapshot | undefined)[] = [];
    const rsp = new Float64Array(count);
    for (let k = 0; k < count; k++) {
      const c = this.known[k]!;
      rsp[k] = c.rsp;
      const list = c.saved;
      if (list === undefined) saved.push(undefined);
      else {
        saved.push(
          this.snapshotStack(
            list,
            list.map((a) => this.savedRecord(a)),
          ),
        );
      }
    }
    const h = this.hasher.reset(0x510e527f, count);
    for (let k = 0; k < count; k++) {
      const s = saved[k];
      h.add(rsp[k]!);
      if (s === undefined) h.add(-1);
      else h.add2(s.hashA, s.hashB);
    }
    return { count, saved, rsp, hashA: h.a, hashB: h.b };
  }

  /** The record of an activation a switch saved (it ran on some CPU, which made its record). */
  private savedRecord(a: Activation): ActivationRecord {
    const r = this.records.get(a);
    if (r === undefined) throw new Error('internal: a saved activation has no record');
    return r;
  }

  /** Puts the known contexts back as `s` holds them. */
  restoreContexts(s: ContextsSnapshot): void {
    this.known.length = s.count;
    for (let k = 0; k < s.count; k++) {
      const c = this.known[k]!;
      c.rsp = s.rsp[k]!;
      const saved = s.saved[k];
      if (saved === undefined) c.saved = undefined;
      else {
        this.restoreFields(saved);
        c.saved = saved.acts.slice();
      }
    }
    this.contexts = s;
  }
}
