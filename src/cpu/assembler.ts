import { formatVirtual, toVirtual } from '../mmu/address.ts';
import {
  describeValue,
  InputError,
  requireBoolean,
  requireInteger,
  requireOneOf,
  requireOptions,
} from '../mmu/input-error.ts';
import { ExecutionContext } from './context.ts';
import {
  type AccessOptions,
  Instruction,
  type InstructionAux,
  type IpiDestination,
  type IpiMode,
  OP,
  OP_NAMES,
  type Op,
  type Outcome,
  type ProgramGenerator,
} from './instruction.ts';
import {
  checkChunk,
  checkDestination,
  checkSize,
  checkVector,
  isGeneratorFunction,
  OUTCOMES,
  operandValue,
  returnValue,
  VALUE_MAX,
} from './operands.ts';

// The Assembler: what a program receives as `x`, building one checked instruction per yield.

/** A program: a generator function run by a CPU. Its return value is the callee's result for `call` (like RAX). */
// biome-ignore lint/suspicious/noExplicitAny: programs take arbitrary user arguments, checked by their own types
export type Program<A extends readonly unknown[] = any[]> = (x: Assembler, ...args: A) => ProgramGenerator;

const { LOAD: OP_LOAD, STORE: OP_STORE } = OP;

/** Model addresses are below 2^49: bits 47:0 plus the non-canonical mark (src/mmu/address.ts). */
const ADDRESS_LIMIT = 2 ** 49;

/** A model address and a size of 1, 2, 4 or 8: nothing to convert or report (checked on every load/store). */
function isPlainAccess(va: unknown, size: unknown): va is number {
  return (
    typeof va === 'number' &&
    (size === 8 || size === 4 || size === 2 || size === 1) &&
    va >= 0 &&
    va < ADDRESS_LIMIT &&
    Number.isInteger(va)
  );
}

/** Module-local: read on every store and push (an imported binding is a cell read with a TDZ check). */
const PLAIN_VALUE_MAX = VALUE_MAX;

/** A value that needs no conversion for `size` (a valid size): the hot store/push check. */
function isPlainValue(value: unknown, size: number): value is number {
  return typeof value === 'number' && value >= 0 && value <= PLAIN_VALUE_MAX[size]! && Number.isInteger(value);
}

/** Registers a program as a user-mode entry point and returns its entry RIP (see Assembler.userEntry). */
export type UserEntryRegistrar = (program: Program, args: readonly unknown[]) => number;

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Builds instructions for one CPU's programs. `yield` each one as you build it: load, store, push, pop, xchg and
 * cmpxchg (the hot operations) refill one instruction object per CPU instead of allocating, which is what makes a
 * TLB-hit step cost tens of nanoseconds. The CPU checks the contract: building two before yielding, or yielding the
 * same one twice, is a StaleInstructionError naming the CPU, never a silently different instruction.
 *
 * Every operand is checked here, where it enters (docs/guide.md "Errors"): a bad one throws an InputError from the
 * program's own `yield` expression, which stops the CPU like any exception thrown by the program.
 */
export class Assembler {
  /** The instruction load/store/push/pop/xchg/cmpxchg refill. */
  readonly reused: Instruction;
  /** How many times `reused` was filled, and how many of those fills the CPU has executed. */
  builds = 0;
  consumed = 0;
  // Instructions without operands, one of each per CPU (an instruction names the CPU it was built for).
  private readonly shared: {
    readonly pause: Instruction;
    readonly cli: Instruction;
    readonly sti: Instruction;
    readonly hlt: Instruction;
    readonly eoi: Instruction;
    readonly iret: Instruction;
    readonly int3: Instruction;
    readonly mfence: Instruction;
  };

  constructor(
    /** The CPU this assembler's programs run on (smp_processor_id()). */
    readonly cpuId: number,
    private readonly registerUserEntry?: UserEntryRegistrar,
  ) {
    this.reused = this.make(OP.LOAD);
    this.shared = {
      pause: this.make(OP.PAUSE),
      cli: this.make(OP.CLI),
      sti: this.make(OP.STI),
      hlt: this.make(OP.HLT),
      eoi: this.make(OP.EOI),
      iret: this.make(OP.IRET),
      int3: this.make(OP.INT, 0, 8, 3, 1),
      mfence: this.make(OP.MFENCE),
    };
  }

  private make(op: Op, va = 0, size = 8, value = 0, expected = 0, aux?: InstructionAux): Instruction {
    const ins = new Instruction(op, va, size, value, expected, aux, this.cpuId);
    (ins as Writable<Instruction>).checked = true;
    return ins;
  }

  /** "CPU 0 store": where a bad operand came from. */
  private where(instruction: string): string {
    return `CPU ${this.cpuId} ${instruction}`;
  }

  private refill(op: Op, va: number, size: number, value: number, expected = 0): Instruction {
    const ins = this.reused as Writable<Instruction>;
    ins.op = op;
    ins.va = va;
    ins.size = size;
    ins.value = value;
    ins.expected = expected;
    this.builds++;
    return this.reused;
  }

  private address(va: unknown, instruction: string): number {
    return toVirtual(va as number, `${this.where(instruction)} address`);
  }

  private fixup(options: unknown, instruction: string): InstructionAux | undefined {
    const o = requireOptions<AccessOptions>(options, `${this.where(instruction)} options`, ['fixup']);
    if (o.fixup === undefined) return undefined;
    return { fixup: returnValue(o.fixup, `${this.where(instruction)} fixup`) };
  }

  /** A load or store off the fast path: a BigInt address, a negative value, a fixup, or an operand to refuse. */
  private access(op: Op, va: unknown, size: unknown, value: unknown, options: unknown): Instruction {
    const name = OP_NAMES[op];
    const address = this.address(va, name);
    const checked = checkSize(size, this.where(name));
    const v = op === OP_STORE ? operandValue(value, checked, `${this.where(name)} value`) : 0;
    const aux = this.fixup(options, name);
    if (aux !== undefined) return this.make(op, address, checked, v, 0, aux);
    return this.refill(op, address, checked, v);
  }

  /** Loads `size` bytes at `va`; the result is the value (unsigned, exact below 2^53). */
  load(va: number | bigint, size = 8, options?: AccessOptions): Instruction {
    if (options === undefined && isPlainAccess(va, size)) return this.refill(OP_LOAD, va, size, 0);
    return this.access(OP_LOAD, va, size, 0, options);
  }
  /**
   * Stores the low `size` bytes of `value` at `va`. A negative value of 1, 2 or 4 bytes is stored as its two's
   * complement; an 8-byte value is 0..2^53-1; anything else is refused (see VALUE_MAX).
   */
  store(va: number | bigint, size: number, value: number | bigint, options?: AccessOptions): Instruction {
    if (options === undefined && isPlainAccess(va, size) && isPlainValue(value, size)) {
      return this.refill(OP_STORE, va, size, value);
    }
    return this.access(OP_STORE, va, size, value, options);
  }
  /** Pushes 8 bytes: RSP -= 8, then the store (a faulting push leaves RSP unchanged). */
  push(value: number | bigint): Instruction {
    if (isPlainValue(value, 8)) return this.refill(OP.PUSH, 0, 8, value);
    return this.refill(OP.PUSH, 0, 8, operandValue(value, 8, `${this.where('push')} value`));
  }
  /** Pops 8 bytes; the result is the value. */
  pop(): Instruction {
    return this.refill(OP.POP, 0, 8, 0);
  }
  /** Pushes a return address and runs `program` (a generator function); the result is what it returns. */
  call<A extends readonly unknown[]>(program: Program<A>, ...args: A): Instruction {
    if (!isGeneratorFunction(program)) {
      throw new InputError(
        `${this.where('call')} target ${describeValue(program)} is not a generator function: ` +
          'call programs written as function* (x, ...args) { ... }',
      );
    }
    return this.make(OP.CALL, 0, 8, 0, 0, { program: program as Program, args });
  }
  /** Returns from the current `call` with `value`, any safe integer (a callee that finishes returns implicitly). */
  ret(value: number = 0): Instruction {
    return this.make(OP.RET, 0, 8, returnValue(value, this.where('ret')));
  }
  /** Atomic compare-and-exchange; the result is the old value (success when it equals `expected`). */
  cmpxchg(va: number | bigint, size: number, expected: number | bigint, value: number | bigint): Instruction {
    if (isPlainAccess(va, size) && isPlainValue(expected, size) && isPlainValue(value, size)) {
      return this.refill(OP.CMPXCHG, va, size, value, expected);
    }
    const where = this.where('cmpxchg');
    const address = this.address(va, 'cmpxchg');
    const s = checkSize(size, where);
    // `expected` is reduced like a stored value, so cmpxchg(va, 1, -1, v) matches what store(va, 1, -1) stored.
    const e = operandValue(expected, s, `${where} expected`);
    return this.make(OP.CMPXCHG, address, s, operandValue(value, s, `${where} value`), e);
  }
  /** Atomic exchange; the result is the old value. */
  xchg(va: number | bigint, size: number, value: number | bigint): Instruction {
    if (isPlainAccess(va, size) && isPlainValue(value, size)) return this.refill(OP.XCHG, va, size, value);
    const where = this.where('xchg');
    const address = this.address(va, 'xchg');
    const s = checkSize(size, where);
    return this.make(OP.XCHG, address, s, operandValue(value, s, `${where} value`));
  }
  /**
   * A spin loop as one instruction: loads `size` bytes at `va` until `condition(value)` holds. While it does not,
   * the CPU is blocked and is not scheduled until the bytes are written, an interrupt can be taken, or its TLB
   * changes. The result is the value that satisfied the condition.
   */
  spinUntil(va: number | bigint, size: number, condition: (value: number) => boolean): Instruction {
    return this.spin('spin-until', va, size, condition, { condition });
  }
  /**
   * A spin loop whose program needs only that the condition held (a flag; csd_lock_wait(), which since Linux 4.8
   * is smp_cond_load_acquire() with the value dropped, kernel/smp.c): as spinUntil, but the program is resumed
   * with 1, not the value. The stateful search takes a program's state to be the results it was
   * resumed with (docs/checker.md), so a value the program ignores would tell apart states that are the same: a
   * counter met at 2 in one run and 3 in another. Traces still show the value read.
   */
  waitUntil(va: number | bigint, size: number, condition: (value: number) => boolean): Instruction {
    return this.spin('wait-until', va, size, condition, { condition, valueUnused: true });
  }
  /** spinUntil and waitUntil: their operands checked, named as `name` in a refusal. */
  private spin(name: string, va: unknown, size: unknown, condition: unknown, aux: InstructionAux): Instruction {
    const where = this.where(name);
    const address = this.address(va, name);
    const s = checkSize(size, where);
    if (typeof condition !== 'function') {
      throw new InputError(`${where} condition ${describeValue(condition)} must be a function (value) => boolean`);
    }
    return this.make(OP.SPIN_UNTIL, address, s, 0, 0, aux);
  }
  pause(): Instruction {
    return this.shared.pause;
  }
  /**
   * MFENCE: every store this CPU buffered reaches memory before the next instruction (SDM Vol. 2 MFENCE, §8.2.5).
   * It matters only on a machine with store buffers (x86-TSO); SFENCE and LFENCE order nothing that TSO does not
   * already order for ordinary write-back memory, so the model has neither.
   */
  mfence(): Instruction {
    return this.shared.mfence;
  }
  /**
   * pushfq; popq %reg as one step: the result is RFLAGS (IF is bit 9). What local_irq_save() reads before cli, so
   * spin_lock_irqsave() can restore the caller's interrupt state, not assume it.
   */
  readFlags(): Instruction {
    return this.make(OP.READ_FLAGS);
  }
  /**
   * RDTSC: this CPU's simulated clock in whole nanoseconds (a `timed` run advances it by the cost model; in other
   * runs it stays where it is). How kernel code times itself (ktime_get).
   */
  rdtsc(): Instruction {
    return this.make(OP.RDTSC);
  }
  cli(): Instruction {
    return this.shared.cli;
  }
  /** Sets IF; interrupts are recognised after the next instruction (the STI shadow, SDM Vol. 2 STI). */
  sti(): Instruction {
    return this.shared.sti;
  }
  hlt(): Instruction {
    return this.shared.hlt;
  }
  invlpg(va: number | bigint): Instruction {
    return this.make(OP.INVLPG, this.address(va, 'invlpg'));
  }
  /**
   * MOV to CR3: switches page tables and flushes non-global TLB entries. Bits at or above MAXPHYADDR (46) raise
   * #GP(0); the low 12 bits (PWT, PCD) are kept and ignored by the walk.
   */
  movToCr3(pml4: number): Instruction {
    return this.make(OP.MOV_TO_CR3, 0, 8, operandValue(pml4, 8, `${this.where('mov-to-cr3')} value`));
  }
  /** MOV to CR4: toggling PGE flushes the whole TLB; clearing PAE in IA-32e mode raises #GP(0). */
  movToCr4(value: number): Instruction {
    return this.make(OP.MOV_TO_CR4, 0, 8, operandValue(value, 8, `${this.where('mov-to-cr4')} value`));
  }
  /** MOV to CR0: WP is the bit kernel code changes; clearing PG or PE in IA-32e mode raises #GP(0). */
  movToCr0(value: number): Instruction {
    return this.make(OP.MOV_TO_CR0, 0, 8, operandValue(value, 8, `${this.where('mov-to-cr0')} value`));
  }
  /**
   * switch_to(): saves the running control stack and RSP in `from` and resumes `to` (a fresh context starts its
   * program on its stack). One step; the program that executes it resumes after it when `from` runs again. The
   * next access on the new stack is where a missing mapping shows. Privileged.
   */
  switchContext(from: ExecutionContext, to: ExecutionContext): Instruction {
    const where = this.where('switch-context');
    if (!(from instanceof ExecutionContext) || !(to instanceof ExecutionContext)) {
      throw new InputError(
        `${where}: from ${describeValue(from)} and to ${describeValue(to)} must be ExecutionContexts`,
      );
    }
    if (from === to) throw new InputError(`${where}: from and to are the same context (${to.name})`);
    return this.make(OP.SWITCH_CONTEXT, 0, 8, 0, 0, { from, to });
  }
  /** MOV from CR0, CR2, CR3 or CR4 (`n`): the result is the register (read_cr3() and friends). Privileged. */
  movFromCr(n: 0 | 2 | 3 | 4): Instruction {
    if (n !== 0 && n !== 2 && n !== 3 && n !== 4) {
      throw new InputError(
        `${this.where('mov-from-cr')} register CR${describeValue(n)} is not one of CR0, CR2, CR3, CR4`,
      );
    }
    return this.make(OP.MOV_FROM_CR, 0, 8, n);
  }
  /** MOV to CR2 (as a #PF handler that saves and restores it does). */
  movToCr2(va: number | bigint): Instruction {
    return this.make(OP.MOV_TO_CR2, 0, 8, this.address(va, 'mov-to-cr2'));
  }
  /**
   * WRMSR. Only IA32_EFER (MSR.EFER) is modelled: NXE and SCE may change, LME only with paging off (never here),
   * LMA is read-only; a reserved bit raises #GP(0) as on hardware, and so does every other MSR here (on hardware
   * only an unimplemented one does: see docs/deviations.md).
   */
  wrmsr(msr: number, value: number): Instruction {
    const where = this.where('wrmsr');
    const index = requireInteger(msr, `${where} MSR`, 0, 0xffff_ffff);
    return this.make(OP.WRMSR, 0, 8, operandValue(value, 8, `${where} value`), index);
  }
  /**
   * Copies `bytes` from `src` to `dst` through this CPU's MMU, as `rep movsq` (Linux's copy_page) does: one chunk
   * of `chunk` bytes (default 8) per step, so other CPUs and interrupts see every intermediate state, and the bytes
   * move as bytes: a saved RIP or any 64-bit word above 2^53 arrives exactly. Each chunk reads `src` then writes
   * `dst`; a fault leaves the copy pending where it stopped (as RSI, RDI and RCX would), and after the handler's
   * iret it goes on from there. `dst`, `src` and `bytes` are multiples of `chunk`, a power of two up to 4096 (a
   * larger chunk is a coarser interleaving grain, not what hardware does). The result is 0.
   */
  copy(
    dst: number | bigint,
    src: number | bigint,
    bytes: number,
    options?: { readonly chunk?: number; readonly fixup?: number },
  ): Instruction {
    const where = this.where('copy');
    const d = this.address(dst, 'copy destination');
    const s = this.address(src, 'copy source');
    const o = requireOptions<{ chunk: number; fixup: number }>(options, `${where} options`, ['chunk', 'fixup']);
    const chunk = checkChunk(o.chunk, 1, where);
    const n = requireInteger(bytes, `${where} byte count`, 1, 2 ** 32);
    if (n % chunk !== 0 || d % chunk !== 0 || s % chunk !== 0) {
      throw new InputError(
        `${where}: destination ${formatVirtual(d)}, source ${formatVirtual(s)} and ${n} bytes must be multiples of the ` +
          `${chunk}-byte chunk (so that no chunk crosses a page)`,
      );
    }
    const aux = o.fixup === undefined ? undefined : { fixup: returnValue(o.fixup, `${where} fixup`) };
    return this.make(OP.COPY, d, chunk, n, s, aux);
  }
  /**
   * Fills `bytes` at `dst` with the 8-byte `value` (default 0) through this CPU's MMU, as `rep stosq` (Linux's
   * clear_page) does: one chunk (default 8 bytes) per step, with `copy`'s rules for chunks, faults and progress.
   */
  fill(
    dst: number | bigint,
    bytes: number,
    value: number | bigint = 0,
    options?: { readonly chunk?: number },
  ): Instruction {
    const where = this.where('fill');
    const d = this.address(dst, 'fill destination');
    const o = requireOptions<{ chunk: number }>(options, `${where} options`, ['chunk']);
    const chunk = checkChunk(o.chunk, 8, where);
    const n = requireInteger(bytes, `${where} byte count`, 1, 2 ** 32);
    if (n % chunk !== 0 || d % chunk !== 0) {
      throw new InputError(
        `${where}: destination ${formatVirtual(d)} and ${n} bytes must be multiples of the ${chunk}-byte chunk`,
      );
    }
    return this.make(OP.FILL, d, chunk, n, operandValue(value, 8, `${where} value`));
  }
  /** clear_page(): zeroes a 4 KiB page-aligned page, 8 bytes per step (rep stosq). */
  clearPage(dst: number | bigint): Instruction {
    const d = this.address(dst, 'clear-page destination');
    if (d % 4096 !== 0) throw new InputError(`${this.where('clear-page')}: ${formatVirtual(d)} must be 4 KiB aligned`);
    return this.fill(d, 4096);
  }
  /** copy_page(): a 4 KiB copy between page-aligned addresses, 8 bytes per step (rep movsq). */
  copyPage(dst: number | bigint, src: number | bigint): Instruction {
    const d = this.address(dst, 'copy-page destination');
    const s = this.address(src, 'copy-page source');
    if (d % 4096 !== 0 || s % 4096 !== 0) {
      throw new InputError(
        `${this.where('copy-page')}: ${formatVirtual(d)} and ${formatVirtual(s)} must be 4 KiB aligned`,
      );
    }
    return this.copy(d, s, 4096);
  }
  /**
   * Loads RSP (mov %reg, %rsp): how a context switch changes stacks. Unprivileged, and it touches no memory: the
   * next push or pop is what finds out whether the new stack is mapped.
   */
  movToRsp(rsp: number | bigint): Instruction {
    return this.make(OP.MOV_TO_RSP, 0, 8, this.address(rsp, 'mov-to-rsp'));
  }
  /**
   * INT n: a software interrupt through IDT gate `vector`. A trap: the frame's RIP is the next instruction. The
   * gate's DPL must be >= CPL (else #GP(vector*8+2)); no error code is pushed even for vectors that have one; a
   * fault while delivering it is delivered serially (no #DF: the software interrupt is no exception class).
   */
  int(vector: number): Instruction {
    return this.make(OP.INT, 0, 8, requireInteger(vector, `${this.where('int')} vector`, 0, 255));
  }
  /** INT3 (#BP), the breakpoint trap: INT 3 with the same gate checks. */
  int3(): Instruction {
    return this.shared.int3;
  }
  /** Sends an IPI through the local APIC's ICR. */
  sendIpi(to: IpiDestination, vector: number, mode: IpiMode = 'fixed'): Instruction {
    const where = this.where('send-ipi');
    const m = requireOneOf(mode, `${where} mode`, ['fixed', 'nmi'] as const);
    const v = checkVector(vector, m, where);
    return this.make(OP.SEND_IPI, 0, 8, v, m === 'nmi' ? 1 : 0, { target: checkDestination(to, where) });
  }
  /** End of interrupt: clears the highest in-service vector in the local APIC. */
  eoi(): Instruction {
    return this.shared.eoi;
  }
  /**
   * IRET. From a handler it returns to the interrupted context (a handler that finishes returns implicitly). With
   * `{ fixup: true }` the interrupted instruction is completed with its fixup value instead of re-executed. From
   * kernel code that is not a handler, it pops a frame the code pushed itself: a frame whose CS is __USER_CS and
   * whose RIP is a `userEntry()` enters user mode there (how Linux starts a user task).
   */
  iret(options?: { readonly fixup?: boolean }): Instruction {
    if (options === undefined) return this.shared.iret;
    const o = requireOptions<{ fixup: boolean }>(options, `${this.where('iret')} options`, ['fixup']);
    return requireBoolean(o.fixup, `${this.where('iret')} fixup`, false)
      ? this.make(OP.IRET, 0, 8, 1)
      : this.shared.iret;
  }
  /**
   * The RIP at which `program` starts in user mode, for the RIP slot of a frame that `iret` pops (SS, RSP, RFLAGS,
   * CS, RIP pushed in that order). Building it changes nothing; the CPU remembers program and arguments.
   */
  userEntry<A extends readonly unknown[]>(program: Program<A>, ...args: A): number {
    if (!isGeneratorFunction(program)) {
      throw new InputError(`${this.where('userEntry')} program ${describeValue(program)} is not a generator function`);
    }
    if (!this.registerUserEntry) throw new InputError(`${this.where('userEntry')}: this assembler has no CPU`);
    return this.registerUserEntry(program as Program, args);
  }
  /** A checked condition: when false the CPU stops with an `assertion` event (a checker violation). */
  assert(condition: boolean | (() => boolean), message: string): Instruction {
    const where = this.where('assert');
    if (typeof condition !== 'boolean' && typeof condition !== 'function') {
      throw new InputError(`${where} condition ${describeValue(condition)} must be a boolean or a function`);
    }
    if (typeof message !== 'string')
      throw new InputError(`${where} message ${describeValue(message)} must be a string`);
    const check = typeof condition === 'function' ? condition : () => condition;
    return this.make(OP.ASSERT, 0, 8, 0, 0, { condition: check, text: message });
  }
  /**
   * One step that changes state kept outside emulated memory (the kernel's bookkeeping: allocator free lists, vmap
   * areas), as if under the lock named `resource` (Linux's zone->lock, vmap_area_lock). `action` runs inside the
   * step and its result (a safe integer) is the instruction's; the step's footprint names `resource`, so the
   * checker orders two such steps on one resource. `action` must not touch emulated memory: that goes through
   * instructions. Privileged: #GP(0) at CPL 3.
   */
  atomic(resource: string, action: () => number): Instruction {
    const where = this.where('atomic');
    if (typeof resource !== 'string' || resource.length === 0) {
      throw new InputError(`${where} resource ${describeValue(resource)} must be a non-empty string (a lock's name)`);
    }
    if (typeof action !== 'function') {
      throw new InputError(`${where} action ${describeValue(action)} must be a function returning a number`);
    }
    return this.make(OP.ATOMIC, 0, 8, 0, 0, { resource, action, text: resource });
  }
  /** Kernel die()/panic(): stops the CPU with `outcome` and a message, as panic's cli;hlt loop would. */
  die(outcome: Exclude<Outcome, 'ok'>, message: string): Instruction {
    const where = this.where('die');
    const o = requireOneOf(outcome, `${where} outcome`, OUTCOMES);
    if (typeof message !== 'string')
      throw new InputError(`${where} message ${describeValue(message)} must be a string`);
    return this.make(OP.DIE, 0, 8, 0, 0, { text: message, outcome: o });
  }
}
