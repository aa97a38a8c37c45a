import { InputError, toVirtual } from '../mmu/address.ts';

// Programs are generator functions that yield instructions (DESIGN.md "Execution model"); the CPU executes each
// with x86 semantics and resumes the generator with the result. One instruction = one step.

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
};

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

/** A program: a generator function run by a CPU. Its return value is the callee's result for `call` (like RAX). */
// biome-ignore lint/suspicious/noExplicitAny: programs take arbitrary user arguments, checked by their own types
export type Program<A extends readonly unknown[] = any[]> = (
  x: Assembler,
  ...args: A
) => Generator<Instruction, number | undefined | void, InstructionResult>;

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
  readonly program?: Program;
  readonly args?: readonly unknown[];
  readonly condition?: (value: number) => boolean;
  readonly text?: string;
  readonly target?: IpiDestination;
  readonly outcome?: Exclude<Outcome, 'ok'>;
}

/**
 * One instruction. A single class with six fixed fields keeps the CPU's dispatch monomorphic. Fields are
 * interpreted per op (see Assembler); unused ones are 0 / undefined. Read-only to programs: the Assembler refills
 * one per CPU for the hot operations (see Assembler).
 */
export class Instruction {
  constructor(
    readonly op: Op,
    readonly va = 0,
    readonly size = 8,
    readonly value = 0,
    readonly expected = 0,
    readonly aux: InstructionAux | undefined = undefined,
  ) {}

  get name(): string {
    return OP_NAMES[this.op];
  }

  /** A copy that no later build can change (for an instruction that stays pending across a handler). */
  copy(): Instruction {
    return new Instruction(this.op, this.va, this.size, this.value, this.expected, this.aux);
  }

  /** The exception-table fixup value, if this instruction has one. */
  get fixup(): number | undefined {
    return this.aux?.fixup;
  }
}

// Instructions are immutable, so the ones without operands are shared rather than allocated per step.
const SHARED = {
  pause: new Instruction(OP.PAUSE),
  cli: new Instruction(OP.CLI),
  sti: new Instruction(OP.STI),
  hlt: new Instruction(OP.HLT),
  eoi: new Instruction(OP.EOI),
  iret: new Instruction(OP.IRET),
} as const;

const { LOAD: OP_LOAD, STORE: OP_STORE } = OP;

/** An integer address and a size of 1, 2, 4 or 8: nothing to convert or report (checked on every load/store). */
function isPlainAccess(va: number | bigint, size: number): va is number {
  return typeof va === 'number' && (size === 8 || size === 4 || size === 2 || size === 1) && Number.isInteger(va);
}

function toAddress(va: number | bigint): number {
  if (typeof va !== 'number') return toVirtual(va);
  // Checked here, once per instruction built, so the MMU's hot path can assume an integer address.
  if (!Number.isInteger(va)) throw new InputError(`address ${va} is not an integer`);
  return va;
}

function withFixup(options: AccessOptions | undefined): InstructionAux | undefined {
  return options?.fixup === undefined ? undefined : { fixup: options.fixup };
}

function checkSize(size: number): number {
  if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
    throw new InputError(`access size ${size} is not one of 1, 2, 4, 8 bytes`);
  }
  return size;
}

function checkVector(vector: number, mode: IpiMode): number {
  if (!Number.isInteger(vector) || vector < 0 || vector > 255 || (mode === 'fixed' && vector < 16)) {
    throw new InputError(`IPI vector ${vector} is illegal: fixed IPIs use vectors 16..255 (SDM §11.5.2)`);
  }
  return vector;
}

/** Builds instructions for one CPU's programs; `yield` each one immediately. */
type Writable<T> = { -readonly [K in keyof T]: T[K] };

/** Thrown by the CPU when a program yields a reused instruction that no longer holds what was built. */
export class StaleInstructionError extends InputError {}

/**
 * Builds instructions for one CPU's programs. `yield` each one as you build it: load, store, push and pop (the hot
 * operations) refill one instruction object per CPU instead of allocating, which is what makes a TLB-hit step
 * cost tens of nanoseconds. The CPU checks the contract: building two before yielding, or yielding the same one
 * twice, is a StaleInstructionError naming the CPU, never a silently different instruction.
 */
export class Assembler {
  /** The instruction load/store/push/pop refill. */
  readonly reused: Instruction = new Instruction(OP.LOAD);
  /** How many times `reused` was filled, and how many of those fills the CPU has executed. */
  builds = 0;
  consumed = 0;

  constructor(
    /** The CPU this assembler's programs run on (smp_processor_id()). */
    readonly cpuId: number,
  ) {}

  private fill(op: Op, va: number, size: number, value: number): Instruction {
    const ins = this.reused as Writable<Instruction>;
    ins.op = op;
    ins.va = va;
    ins.size = size;
    ins.value = value;
    this.builds++;
    return this.reused;
  }

  /** A load or store with a BigInt address, an odd size or a fixup: converted and checked, off the fast path. */
  private access(op: Op, va: number | bigint, size: number, value: number, options: AccessOptions | undefined) {
    const address = toAddress(va);
    const checked = checkSize(size);
    if (options?.fixup !== undefined) return new Instruction(op, address, checked, value, 0, withFixup(options));
    return this.fill(op, address, checked, value);
  }

  /** Loads `size` bytes at `va`; the result is the value (unsigned, exact below 2^53). */
  load(va: number | bigint, size = 8, options?: AccessOptions): Instruction {
    if (options === undefined && isPlainAccess(va, size)) return this.fill(OP_LOAD, va, size, 0);
    return this.access(OP_LOAD, va, size, 0, options);
  }
  /** Stores the low `size` bytes of `value` at `va`. */
  store(va: number | bigint, size: number, value: number, options?: AccessOptions): Instruction {
    if (options === undefined && isPlainAccess(va, size)) return this.fill(OP_STORE, va, size, value);
    return this.access(OP_STORE, va, size, value, options);
  }
  /** Pushes 8 bytes: RSP -= 8, then the store (a faulting push leaves RSP unchanged). */
  push(value: number): Instruction {
    return this.fill(OP.PUSH, 0, 8, value);
  }
  /** Pops 8 bytes; the result is the value. */
  pop(): Instruction {
    return this.fill(OP.POP, 0, 8, 0);
  }
  /** Pushes a return address and runs `program`; the result is what it returns. */
  call<A extends readonly unknown[]>(program: Program<A>, ...args: A): Instruction {
    return new Instruction(OP.CALL, 0, 8, 0, 0, { program: program as Program, args });
  }
  /** Returns from the current `call` with `value` (a callee that finishes returns implicitly). */
  ret(value = 0): Instruction {
    return new Instruction(OP.RET, 0, 8, value);
  }
  /** Atomic compare-and-exchange; the result is the old value (success when it equals `expected`). */
  cmpxchg(va: number | bigint, size: number, expected: number, value: number): Instruction {
    return new Instruction(OP.CMPXCHG, toAddress(va), checkSize(size), value, expected);
  }
  /** Atomic exchange; the result is the old value. */
  xchg(va: number | bigint, size: number, value: number): Instruction {
    return new Instruction(OP.XCHG, toAddress(va), checkSize(size), value);
  }
  /**
   * A spin loop as one instruction: loads `size` bytes at `va` until `condition(value)` holds. While it does not,
   * the CPU is blocked and is not scheduled until the bytes are written, an interrupt can be taken, or its TLB
   * changes. The result is the value that satisfied the condition.
   */
  spinUntil(va: number | bigint, size: number, condition: (value: number) => boolean): Instruction {
    return new Instruction(OP.SPIN_UNTIL, toAddress(va), checkSize(size), 0, 0, { condition });
  }
  pause(): Instruction {
    return SHARED.pause;
  }
  cli(): Instruction {
    return SHARED.cli;
  }
  /** Sets IF; interrupts are recognised after the next instruction (the STI shadow, SDM Vol. 2 STI). */
  sti(): Instruction {
    return SHARED.sti;
  }
  hlt(): Instruction {
    return SHARED.hlt;
  }
  invlpg(va: number | bigint): Instruction {
    return new Instruction(OP.INVLPG, toAddress(va));
  }
  /** MOV to CR3: switches page tables and flushes non-global TLB entries. */
  movToCr3(pml4: number): Instruction {
    return new Instruction(OP.MOV_TO_CR3, 0, 8, pml4);
  }
  /** MOV to CR4: toggling PGE flushes the whole TLB. */
  movToCr4(value: number): Instruction {
    return new Instruction(OP.MOV_TO_CR4, 0, 8, value);
  }
  /** Sends an IPI through the local APIC's ICR. */
  sendIpi(to: IpiDestination, vector: number, mode: IpiMode = 'fixed'): Instruction {
    const v = checkVector(vector, mode);
    return new Instruction(OP.SEND_IPI, 0, 8, v, mode === 'nmi' ? 1 : 0, { target: to });
  }
  /** End of interrupt: clears the highest in-service vector in the local APIC. */
  eoi(): Instruction {
    return SHARED.eoi;
  }
  /**
   * Returns from an exception or interrupt handler (a handler that finishes returns implicitly). With
   * `{ fixup: true }` the interrupted instruction is completed with its fixup value instead of re-executed.
   */
  iret(options?: { readonly fixup?: boolean }): Instruction {
    return new Instruction(OP.IRET, 0, 8, options?.fixup ? 1 : 0);
  }
  /** A checked condition: when false the CPU stops with an `assertion` event (a checker violation). */
  assert(condition: boolean | (() => boolean), message: string): Instruction {
    const check = typeof condition === 'function' ? condition : () => condition;
    return new Instruction(OP.ASSERT, 0, 8, 0, 0, { condition: check, text: message });
  }
  /** Kernel die()/panic(): stops the CPU with `outcome` and a message, as panic's cli;hlt loop would. */
  die(outcome: Exclude<Outcome, 'ok'>, message: string): Instruction {
    return new Instruction(OP.DIE, 0, 8, 0, 0, { text: message, outcome });
  }
}
