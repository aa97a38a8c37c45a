import type { Cpu } from '../cpu/cpu.ts';
import { type Instruction, isBuilt, OP } from '../cpu/instruction.ts';
import { STATUS } from '../cpu/status.ts';
import type { Machine } from '../machine/machine.ts';
import type { Choice } from './choices.ts';
import { OUTCOME } from './program-outcomes.ts';
import type { ProgramStates } from './programs.ts';
import { stepChoice } from './state-choices.ts';

// A stutter step: a CPU's next step that no other CPU can observe, that no other choice can change the result of
// except by making the CPU take it again, and after which the CPU cannot move until something else happens. Two
// kinds:
// - a spin-until (or wait-until) whose condition is false on the word it reads through a TLB hit that needs
//   nothing else (no walk, no fault, no frame-guard objection, no buffered store): the step blocks the CPU, watching
//   the word. Another CPU's write to the word (or a drain, or a TLB change) wakes it to read again; a delivery to it
//   is accepted as from the running state, and the spin re-executes after the iret. So every state reached by taking
//   another choice first is reached, up to the blocked CPU's re-read, by taking the stutter first.
// - the return of a CPU's task program with nothing below it (no handler, no call): the CPU halts. A halted CPU
//   accepts what a running one would at the same boundary.
// At a state with such a step, the stateful search offers it alone: an ample set (Peled 1993; Clarke, Grumberg and
// Peled, "Model Checking", ch. 10) of one invisible step, independent of every other CPU's step and of every delivery
// and drain (C1, C2). A cycle of such states would be made of stutter steps only, and each leaves its CPU unable to
// move until another CPU's step, so no choice is put off forever (C3). Final states and violations are kept (the
// differential test compares them with naive enumeration: test/explore/soundness.test.ts). Offered only with no TLB
// event left: an eviction or fill would change what the read goes through.

/** The id of the lowest-numbered CPU whose next step is a stutter step at this state, or -1. */
export function stutterCpu(m: Machine, programs: ProgramStates): number {
  for (const cpu of m.cpus) if (stutterKind(cpu, programs) !== undefined) return cpu.id;
  return -1;
}

/**
 * At a state with no TLB event left: when a CPU's next step is a stutter step, `choices` (the state's, as
 * stateChoices listed them) becomes that step alone. Whether it did.
 */
export function offerStutterAlone(m: Machine, programs: ProgramStates, choices: Choice[]): boolean {
  if (choices.length < 2) return false;
  const id = stutterCpu(m, programs);
  if (id < 0) return false;
  choices[0] = stepChoice(id);
  choices.length = 1;
  return true;
}

/** Whether CPU `cpu`'s next step is a stutter step, and which: a failing spin, or its task program's return. */
export function stutterKind(cpu: Cpu, programs: ProgramStates): 'spin' | 'return' | undefined {
  // A step that accepts an interrupt, or ends an STI shadow, is not the program's.
  if (cpu.interruptShadow || cpu.apic.pendingCount !== 0 || cpu.apic.nmiPending) return undefined;
  return programStutter(cpu, programs);
}

/**
 * Whether the next instruction of CPU `cpu`'s program (running, whatever interrupt it may accept first) is a stutter
 * step, and which. A state where it is and an interrupt is pending is one the reduced search reaches with the
 * stutter taken before the interrupt was sent (the soundness harness compares final states so).
 */
export function programStutter(cpu: Cpu, programs: ProgramStates): 'spin' | 'return' | undefined {
  if (cpu.status !== STATUS.RUNNING || !cpu.started) return undefined;
  const acts = cpu.activations;
  const top = acts[acts.length - 1];
  if (top === undefined || top.finished) return undefined;
  if (top.pending !== undefined) return failingSpin(cpu, top.pending) ? 'spin' : undefined;
  const next = programs.upcoming(cpu);
  if (next === undefined) return undefined;
  if (next.kind === OUTCOME.RETURN) {
    const value = next.value;
    const valid = value === undefined || (typeof value === 'number' && Number.isSafeInteger(value));
    return valid && acts.length === 1 && top.kind === 'task' ? 'return' : undefined;
  }
  return next.kind === OUTCOME.YIELD && failingSpin(cpu, next.value as Instruction) ? 'spin' : undefined;
}

/** The instruction CPU `cpu`'s next step would execute from its program: the pending one, or the one it yields next. */
export function nextInstruction(cpu: Cpu, programs: ProgramStates): Instruction | undefined {
  const top = cpu.activations[cpu.activations.length - 1];
  if (top === undefined || top.finished) return undefined;
  if (top.pending !== undefined) return top.pending;
  const next = programs.upcoming(cpu);
  return next?.kind === OUTCOME.YIELD ? (next.value as Instruction) : undefined;
}

/** Whether `ins` is a spin-until of this CPU's that would read through a plain TLB hit and find its condition false. */
function failingSpin(cpu: Cpu, ins: Instruction): boolean {
  if (ins?.op !== OP.SPIN_UNTIL || ins.owner !== cpu.id || !isBuilt(ins)) return false;
  const value = cpu.port.quietRead(ins.va, ins.size, cpu.userAccess);
  if (value < 0) return false;
  try {
    return !ins.aux!.condition!(value);
  } catch {
    return false; // the step would stop the CPU: not a stutter
  }
}
