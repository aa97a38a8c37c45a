import { formatVirtual } from '../mmu/address.ts';
import { describeValue, InputError } from '../mmu/input-error.ts';
import type { Activation } from './activation.ts';
import type { Program } from './assembler.ts';
import type { CpuCore } from './core.ts';
import {
  type CalledProgram,
  Instruction,
  isBuilt,
  OP,
  type ProgramGenerator,
  StaleInstructionError,
} from './instruction.ts';
import { isGeneratorFunction, returnValue } from './operands.ts';
import { STATUS, STEP_KIND } from './status.ts';

// The program protocol (DESIGN.md "Execution model"): a program is a generator function the CPU calls with its
// Assembler; each `next()` yields the instruction to execute or returns (a task ends, a callee returns, a handler
// irets). What a program may yield is checked here, and a program that throws or yields something else stops its
// CPU with an `assertion` event naming what it did.

/** %GeneratorPrototype%.next, shared by every generator object. */
export const generatorNext = Object.getPrototypeOf(Object.getPrototypeOf((function* () {})())).next as (
  this: ProgramGenerator,
  resume: number,
) => IteratorResult<Instruction, number | undefined | void>;

/**
 * Whether a yielded value is an Instruction. Not `instanceof`: with esbuild's keepNames (tsx, some bundlers) the
 * class's redefined `name` sends instanceof down a slow path that cost 11 ns a step; comparing the constructor is
 * one load. Guarded, because reading a revoked Proxy's constructor throws.
 */
function isInstruction(value: unknown): value is Instruction {
  try {
    return (value as { constructor?: unknown } | undefined)?.constructor === Instruction;
  } catch {
    return false;
  }
}

/** Starts `program` on `cpu`: calls the generator function with the CPU's assembler and `args`. */
export function makeActivation(
  cpu: CpuCore,
  kind: Activation['kind'],
  program: CalledProgram,
  args: readonly unknown[],
  vector: number,
  errorCodePushed: boolean,
  frameRsp: number,
  codeBase: number,
  byException: boolean,
): Activation {
  // Checked before the program is called: calling a plain function would run it.
  if (!isGeneratorFunction(program)) {
    const name = typeof program === 'function' ? program.name || 'anonymous' : describeValue(program);
    throw new InputError(
      `program ${name} is not a generator function: write programs as function* (x) { yield x.load(...); ... }`,
    );
  }
  const gen = (program as Program)(cpu.asm, ...args);
  return {
    kind,
    gen,
    program,
    args,
    codeBase: codeBase < 0 ? cpu.bus.codeAddress(program as Program) : codeBase,
    index: 0,
    pending: undefined,
    resume: 0,
    finished: false,
    errorCodePushed,
    vector,
    frameRsp,
    byException,
    progress: 0,
  };
}

/**
 * What step() does with a program's `next()` other than a reused load/store/push/pop: the program returned (a
 * task ends, a callee returns, a handler irets), or yielded another instruction, or something that is not one.
 * Returns the instruction to execute, now `top.pending`, or undefined when the task ended.
 */
export function fetchedInstruction(
  cpu: CpuCore,
  top: Activation,
  next: IteratorResult<Instruction, number | undefined | void>,
): Instruction | undefined {
  if (next.done) {
    let value: number;
    try {
      value = returnValue(next.value, `CPU ${cpu.id} program ${programName(cpu, top)} returned a`);
    } catch (error) {
      return programThrew(cpu, error);
    }
    if (top.kind === 'task') {
      top.finished = true;
      cpu.lastKind = STEP_KIND.EXIT;
      cpu.status = STATUS.HALTED;
      return undefined;
    }
    // A finished callee is its `ret`, a finished handler its `iret` (new objects: they stay pending if they fault).
    top.pending =
      top.kind === 'call'
        ? new Instruction(OP.RET, 0, 8, value, 0, undefined, cpu.id)
        : new Instruction(OP.IRET, 0, 8, 0, 0, undefined, cpu.id);
    return top.pending;
  }
  const ins = next.value;
  if (!isInstruction(ins)) {
    return refuseYield(
      cpu,
      `CPU ${cpu.id} program yielded ${describeValue(ins)}, not an instruction: yield x.load(...), x.store(...), ...`,
    );
  }
  if (ins.owner !== cpu.id) {
    // The other CPU's assembler counted this build: it was not yielded there, so it must not count against it.
    const owner = cpu.bus.assembler(ins.owner);
    if (owner && ins === owner.reused) owner.consumed = owner.builds;
    return refuseYield(
      cpu,
      `CPU ${cpu.id} program yielded a ${ins.name} built by CPU ${ins.owner}'s assembler: ` +
        'build instructions with the x a program receives on the CPU that runs it',
    );
  }
  if (!isBuilt(ins)) {
    return refuseYield(
      cpu,
      `CPU ${cpu.id} program yielded a ${ins.name} made with new Instruction(): build instructions with x ` +
        '(x.load, x.store, ...), which checks their operands',
    );
  }
  top.pending = ins;
  return ins;
}

function refuseYield(cpu: CpuCore, message: string): never {
  const error = new InputError(message);
  cpu.stop({ outcome: 'assertion', message });
  throw error;
}

function programName(cpu: CpuCore, a: Activation): string {
  return a.kind === 'task' && cpu.task ? cpu.task.program.name || '(anonymous)' : `at ${formatVirtual(a.codeBase)}`;
}

/** The program's own code threw (a failed expect): the CPU stops, and the error propagates out of step(). */
export function programThrew(cpu: CpuCore, error: unknown): never {
  const message = error instanceof Error ? error.message : describeValue(error);
  cpu.stop({ outcome: 'assertion', message: `program threw at RIP ${formatVirtual(cpu.rip)}: ${message}` });
  throw error;
}

/**
 * An instruction threw while executing (a bad operand only execution can see, a spin-until condition or assert
 * function that threw, a callee that is not a generator, a split lock): the CPU stops with an event naming the
 * error, as when the program's own body throws, and the error propagates out of step()/run(). The instruction
 * made no change first (each instruction checks before it writes).
 */
export function instructionFailed(cpu: CpuCore, instruction: Instruction, error: unknown): never {
  const message = error instanceof Error ? error.message : describeValue(error);
  cpu.stop({
    outcome: 'assertion',
    message: `CPU ${cpu.id} ${instruction.name} at RIP ${formatVirtual(cpu.rip)} failed: ${message}`,
  });
  throw error;
}

/** A reused load/store/push/pop was yielded `unexecuted` builds after it was made: the yield-as-you-build rule. */
export function staleInstruction(cpu: CpuCore, unexecuted: number): never {
  const error = new StaleInstructionError(
    `CPU ${cpu.id} program yielded a load/store/push/pop/xchg/cmpxchg ${
      unexecuted === 0 ? 'it had already yielded' : `after building ${unexecuted} of them`
    }: these reuse one instruction object per CPU, so build each in the yield that executes it ` +
      '(yield x.load(va, 8)), not ahead of time',
  );
  cpu.stop({ outcome: 'assertion', message: error.message });
  throw error;
}
