import type { Activation } from '../cpu/activation.ts';
import type { Program } from '../cpu/assembler.ts';
import type { ExecutionContext } from '../cpu/context.ts';
import { type Cpu, STEP_KIND } from '../cpu/cpu.ts';
import { type Instruction, OP } from '../cpu/instruction.ts';
import { InputError } from '../mmu/input-error.ts';
import { ActivationRecord, type ProgramGenerator } from './activation-record.ts';
import { Hasher } from './hash.ts';
import { type Outcome, ProgramOutcomes } from './program-outcomes.ts';
import { ValueHasher } from './value-hash.ts';

// The programs' share of a machine state, for the stateful search (stateful.ts). A generator cannot be copied, but
// a deterministic one is in the same state whenever it has been resumed with the same values: so an activation's
// state is its identity (CPU, program, arguments, kind, where its frame is) and the results its instructions
// returned so far, its history. Each activation gets an ActivationRecord: the history on the current path and a
// hash of each prefix of it.
//
// The search never lets the CPU resume a program's own generator. What a program yields at a history is the same
// every time (the program contract, docs/checker.md), so it is computed once and cached by the prefix hash
// (program-outcomes.ts). So going back to an earlier state needs no generator at all: the activations' fields
// (instructions done, pending instruction, last result) are put back (saveCpu, restoreCpuFrom), and the contexts
// tasks were switched away from with them.

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
  /** Hashes of functions and arguments by what they are (value-hash.ts). */
  readonly values = new ValueHasher();
  /** What programs yield, by history (program-outcomes.ts). */
  readonly outcomes: ProgramOutcomes;
  /** Contexts named by switch-context steps, in order. */
  private readonly known: ExecutionContext[] = [];
  /**
   * The RSP each known context had before any switch named it (a fresh one starts there): a state restored from
   * before its first switch gets it back, with nothing saved, whatever a later path left in it.
   */
  private readonly initialRsp = new Map<ExecutionContext, number>();
  contexts: ContextsSnapshot = EMPTY_CONTEXTS;
  private readonly hasher = new Hasher();

  constructor(cpus: readonly Cpu[]) {
    this.mirror = cpus.map(() => []);
    this.mirrorRecords = cpus.map(() => []);
    this.outcomes = new ProgramOutcomes(cpus.length);
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

  /** The record of `a` (made on first sight: its identity hashed, its own generator adopted). */
  recordOf(cpu: Cpu, a: Activation): ActivationRecord {
    let r = this.records.get(a);
    if (r === undefined) {
      const h = this.hasher.reset(0x6a09e667, 0xbb67ae85);
      h.add(cpu.id).add(this.values.functionHash(a.program));
      h.add(a.kind === 'task' ? 1 : a.kind === 'call' ? 2 : 3)
        .add(a.codeBase)
        .add(a.vector);
      h.add(a.errorCodePushed ? 1 : 0)
        .add(a.frameRsp)
        .add(a.byException ? 1 : 0);
      this.values.hashValue(h, a.args, 0);
      r = new ActivationRecord(cpu, a.program as Program, a.args, h.a, h.b, a.gen as ProgramGenerator);
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
    const from = ins.aux!.from as ExecutionContext;
    const to = ins.aux!.to as ExecutionContext;
    for (const c of [from, to]) if (!this.known.includes(c)) this.known.push(c);
    // The activation that executed the switch completed it, but it is no longer on the CPU for the loop above: its
    // history gets the switch's result here, so that the saved stack's hash (and a later resume) see it.
    for (const a of from.saved ?? []) {
      const r = this.records.get(a);
      if (r !== undefined && a.index === r.length + 1) r.append(a.resume, this.hasher);
    }
    // A switch leaves `to`'s RSP as it was: a fresh context's starting one. (`from` was running: its RSP field is
    // written by the switch before anything reads it, so its first value does not matter.)
    if (!this.initialRsp.has(to)) this.initialRsp.set(to, to.rsp);
  }

  /** Before CPU `cpu` steps: its innermost activation, if the step may fetch from it, gets a feeder. */
  prefetch(cpu: Cpu): void {
    const acts = cpu.activations;
    const top = acts[acts.length - 1];
    if (top === undefined || top.pending !== undefined || top.finished) return;
    const r = this.mirror[cpu.id]![acts.length - 1] === top ? this.mirrorRecords[cpu.id]![acts.length - 1]! : undefined;
    if (r === undefined) throw new Error(`internal: CPU ${cpu.id} was not synced before it steps`);
    this.outcomes.prefetch(cpu, top, r);
  }

  /**
   * What CPU `cpu`'s next step would fetch from its innermost activation (synced): the program's outcome there, or
   * undefined when the step fetches nothing (no program, a pending instruction to execute again, a finished task).
   */
  upcoming(cpu: Cpu): Outcome | undefined {
    const acts = cpu.activations;
    const top = acts[acts.length - 1];
    if (top === undefined || top.pending !== undefined || top.finished) return undefined;
    const r = this.mirror[cpu.id]![acts.length - 1] === top ? this.mirrorRecords[cpu.id]![acts.length - 1]! : undefined;
    return r === undefined ? undefined : this.outcomes.upcoming(r, top.index);
  }

  // Hashes and snapshots --------------------------------------------------------------------------------------------

  /**
   * CPU `cpu`'s control stack (synced) hashed into `out` at `at` (two lanes). Whether an activation's instruction is
   * pending is left out: a pending instruction (one that faulted, or a spin that blocked and was woken) is the one
   * the program yields at that history and index, which the next step would fetch from the outcome cache if it were
   * not pending, so the two states behave alike (a spin woken by a write that did not meet its condition, and the
   * same spin not yet looked at, were two states).
   */
  hashCpu(cpu: Cpu, out: Int32Array, at: number): void {
    const acts = cpu.activations;
    const records = this.mirrorRecords[cpu.id]!;
    const h = this.hasher.reset(0x3c6ef372, acts.length);
    for (let i = 0; i < acts.length; i++) {
      const a = acts[i]!;
      const r = records[i]!;
      h.add2(r.ha[a.index]!, r.hb[a.index]!);
      h.add(a.finished ? 2 : 0).add(a.progress);
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
      h.add(a.finished ? 2 : 0).add(a.progress);
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
    // Contexts first named after this state are fresh again (or running, for a `from`): nothing saved.
    for (let k = s.count; k < this.known.length; k++) {
      const c = this.known[k]!;
      c.saved = undefined;
      const rsp = this.initialRsp.get(c);
      if (rsp !== undefined) c.rsp = rsp;
    }
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
