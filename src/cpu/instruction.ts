import { InputError } from '../mmu/input-error.ts';

// Programs are generator functions that yield instructions (DESIGN.md "Execution model"); the CPU executes each
// with x86 semantics and resumes the generator with the result. One instruction = one step. This module is the
// instruction record and what it names; the Assembler (assembler.ts) builds instructions, checking their operands.

/** Operation codes; numbers so the CPU's dispatch is a dense switch. */
export const OP = {
  LOAD: 1,
  STORE: 2,
  PUSH: 3,
  POP: 4,
  CALL: 5,
  RET: 6,
  CMPXCHG: 7,
  XCHG: 8,
  SPIN_UNTIL: 9,
  PAUSE: 10,
  CLI: 11,
  STI: 12,
  HLT: 13,
  INVLPG: 14,
  MOV_TO_CR3: 15,
  MOV_TO_CR4: 16,
  SEND_IPI: 17,
  EOI: 18,
  IRET: 19,
  ASSERT: 20,
  DIE: 21,
  INT: 22,
  MOV_TO_RSP: 23,
  MOV_TO_CR0: 24,
  MOV_TO_CR2: 25,
  WRMSR: 26,
  COPY: 27,
  ATOMIC: 28,
  FILL: 29,
  MOV_FROM_CR: 30,
  SWITCH_CONTEXT: 31,
  READ_FLAGS: 32,
  RDTSC: 33,
  MFENCE: 34,
} as const;
export type Op = (typeof OP)[keyof typeof OP];

export const OP_NAMES: Readonly<Record<Op, string>> = {
  1: 'load',
  2: 'store',
  3: 'push',
  4: 'pop',
  5: 'call',
  6: 'ret',
  7: 'cmpxchg',
  8: 'xchg',
  9: 'spin-until',
  10: 'pause',
  11: 'cli',
  12: 'sti',
  13: 'hlt',
  14: 'invlpg',
  15: 'mov-to-cr3',
  16: 'mov-to-cr4',
  17: 'send-ipi',
  18: 'eoi',
  19: 'iret',
  20: 'assert',
  21: 'die',
  22: 'int',
  23: 'mov-to-rsp',
  24: 'mov-to-cr0',
  25: 'mov-to-cr2',
  26: 'wrmsr',
  27: 'copy',
  28: 'atomic',
  29: 'fill',
  30: 'mov-from-cr',
  31: 'switch-context',
  32: 'read-flags',
  33: 'rdtsc',
  34: 'mfence',
};

/** Model-specific registers WRMSR can write: only IA32_EFER is modelled (SDM Vol. 4, MSR 0xC0000080). */
export const MSR = { EFER: 0xc000_0080 } as const;

/** Outcomes a run can end in; `die` takes the ones a kernel handler reports. */
export type Outcome =
  | 'ok'
  | 'double-fault'
  | 'triple-fault'
  | 'oops'
  | 'stack-corruption'
  | 'lost-write'
  | 'use-after-free'
  | 'deadlock'
  | 'assertion';

/** Destination of an IPI: one CPU, a set, or an APIC shorthand (SDM Vol. 3 §11.6.1). */
export type IpiDestination = number | readonly number[] | 'self' | 'all' | 'all-but-self';
export type IpiMode = 'fixed' | 'nmi';

/** A result the CPU hands back to the program: loads, pops, cmpxchg/xchg old values, a callee's return value. */
export type InstructionResult = number;

/** A running program's generator, as the CPU drives it: it yields instructions and is resumed with their results. */
export type ProgramGenerator = Generator<Instruction, number | undefined | void, InstructionResult>;

/**
 * A program as instructions and contexts carry it (a callee, a context's task): the CPU calls it with its
 * Assembler. Users write the `Program` type of assembler.ts, which is assignable to this one; it is opaque here so
 * that the instruction record does not depend on the Assembler that builds it.
 */
export type CalledProgram = (x: never, ...args: never[]) => ProgramGenerator;

/** Options of memory instructions. */
export interface AccessOptions {
  /**
   * An exception-table entry for this instruction (Linux _ASM_EXTABLE): a fault handler may finish it with
   * `iret({ fixup: true })`, which resumes the program with this value instead of re-executing the instruction.
   */
  readonly fixup?: number;
}

/** Operands only some instructions have; kept apart so the common instruction object stays small. */
export interface InstructionAux {
  /** Exception-table fixup value (see AccessOptions). */
  readonly fixup?: number;
  readonly program?: CalledProgram;
  readonly args?: readonly unknown[];
  readonly condition?: (value: number) => boolean;
  /** `wait-until`: the program is resumed with 1, not the value that met the condition (see Assembler.waitUntil). */
  readonly valueUnused?: boolean;
  readonly text?: string;
  readonly target?: IpiDestination;
  readonly outcome?: Exclude<Outcome, 'ok'>;
  /**
   * `switch-context`: the context saved and the one resumed (ExecutionContexts, context.ts; opaque here because a
   * context holds the control stack of activations, whose pending instructions are these).
   */
  readonly from?: object;
  readonly to?: object;
  /** `atomic`: the resource it holds for its step, and what it does. */
  readonly resource?: string;
  readonly action?: () => number;
}

/**
 * One instruction. A single class with seven fixed fields keeps the CPU's dispatch monomorphic. Fields are
 * interpreted per op (see Assembler); unused ones are 0 / undefined. Read-only to programs: the Assembler refills
 * one per CPU for the hot operations (see Assembler). `owner` is the CPU whose assembler built it: a CPU refuses
 * an instruction built for another.
 */
export class Instruction {
  /**
   * Made by an Assembler, which checked its operands and sets this after construction (see isBuilt); a hand-made
   * `new Instruction` is not. A field read costs nothing where a WeakSet of built instructions cost 400 ns each.
   */
  readonly checked: boolean;

  constructor(
    readonly op: Op,
    readonly va: number,
    readonly size: number,
    readonly value: number,
    readonly expected: number,
    readonly aux: InstructionAux | undefined,
    readonly owner: number,
  ) {
    this.checked = false;
  }

  get name(): string {
    return OP_NAMES[this.op];
  }

  /** A copy that no later build can change (for an instruction that stays pending across a handler). */
  copy(): Instruction {
    const ins = new Instruction(this.op, this.va, this.size, this.value, this.expected, this.aux, this.owner);
    (ins as { checked: boolean }).checked = this.checked;
    return ins;
  }

  /** The exception-table fixup value, if this instruction has one. */
  get fixup(): number | undefined {
    return this.aux?.fixup;
  }
}

/** Whether `ins` was built by an Assembler, so its operands were checked; a hand-made `new Instruction` was not. */
export function isBuilt(ins: Instruction): boolean {
  return ins.checked === true;
}

/** Thrown by the CPU when a program yields a reused instruction that no longer holds what was built. */
export class StaleInstructionError extends InputError {}
