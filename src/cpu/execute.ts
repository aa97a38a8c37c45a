import { describeValue, InputError } from '../mmu/input-error.ts';
import { VECTOR_GP } from '../mmu/walker.ts';
import type { Activation } from './activation.ts';
import { call, iret, ret, softwareInterrupt, switchContext } from './control-flow.ts';
import type { CpuCore } from './core.ts';
import { type Instruction, OP } from './instruction.ts';
import { interruptFlag, sendIpi } from './interrupt-control.ts';
import { lockedExchange, spinUntil } from './locked-access.ts';
import { returnValue } from './operands.ts';
import { copyChunk, fillChunk } from './string-copy.ts';
import { executeSystemRegister, GP_FAULT, isSerializingSystemOp, isSystemRegisterOp } from './system-registers.ts';

// The dispatch of an instruction to its family, for every instruction but the step's fast path (a load, store,
// push or pop in the Assembler's reused object, which Cpu.step() executes itself). A faulted or spinning
// instruction re-executed, and every allocated or shared instruction, come through here.

const {
  LOAD: OP_LOAD,
  STORE: OP_STORE,
  PUSH: OP_PUSH,
  POP: OP_POP,
  CALL: OP_CALL,
  RET: OP_RET,
  CMPXCHG: OP_CMPXCHG,
  XCHG: OP_XCHG,
  SPIN_UNTIL: OP_SPIN_UNTIL,
  PAUSE: OP_PAUSE,
  READ_FLAGS: OP_READ_FLAGS,
  RDTSC: OP_RDTSC,
  CLI: OP_CLI,
  STI: OP_STI,
  HLT: OP_HLT,
  SEND_IPI: OP_SEND_IPI,
  EOI: OP_EOI,
  IRET: OP_IRET,
  ASSERT: OP_ASSERT,
  DIE: OP_DIE,
  INT: OP_INT,
  COPY: OP_COPY,
  ATOMIC: OP_ATOMIC,
  FILL: OP_FILL,
  SWITCH_CONTEXT: OP_SWITCH_CONTEXT,
  MFENCE: OP_MFENCE,
} = OP;

/** Executes `ins` for `act`, the innermost activation: it completes, faults, blocks or stops the CPU. */
export function executeInstruction(cpu: CpuCore, act: Activation, ins: Instruction): void {
  const port = cpu.port;
  switch (ins.op) {
    case OP_LOAD:
    case OP_STORE:
    case OP_PUSH:
    case OP_POP:
      return cpu.access(act, ins);
    case OP_CMPXCHG:
    case OP_XCHG:
      // A locked instruction drains the store buffer first (SDM §8.2.2: locked instructions have a total order, and
      // loads and stores are not reordered with them).
      if (!cpu.drainStores()) return;
      return lockedExchange(cpu, act, ins);
    case OP_MFENCE:
      if (!cpu.drainStores()) return;
      return cpu.complete(act, 0);
    case OP_SPIN_UNTIL:
      return spinUntil(cpu, act, ins);
    case OP_PAUSE:
      return cpu.complete(act, 0);
    case OP_READ_FLAGS:
      return cpu.complete(act, cpu.regs.rflags);
    case OP_RDTSC:
      return cpu.complete(act, Math.floor(cpu.bus.clock(cpu.id)));
    case OP_CLI:
    case OP_STI:
    case OP_HLT:
      return interruptFlag(cpu, act, ins);
    case OP_INT:
      return softwareInterrupt(cpu, act, ins.value);
    case OP_COPY:
      // String moves write memory themselves: earlier buffered stores go first, so no store passes another.
      if (!cpu.drainStores()) return;
      return copyChunk(cpu, act, ins);
    case OP_FILL:
      if (!cpu.drainStores()) return;
      return fillChunk(cpu, act, ins);
    case OP_SWITCH_CONTEXT:
      return switchContext(cpu, act, ins);
    case OP_ATOMIC: {
      if (cpu.regs.cpl !== 0) return cpu.raise(VECTOR_GP, 0, 0);
      // Bookkeeping under a lock: the lock's acquisition is a locked instruction, which drains the store buffer.
      if (!cpu.drainStores()) return;
      const result = returnValue(ins.aux!.action!(), `CPU ${cpu.id} atomic(${ins.aux!.resource}) action result`);
      if (port.footprint) port.footprint.resources.push(ins.aux!.resource!);
      return cpu.complete(act, result);
    }
    case OP_SEND_IPI:
      // A write to the xAPIC's ICR (uncacheable): earlier stores are visible before the IPI is sent. (x2APIC's
      // WRMSR to the ICR is not ordered so; Linux fences it: weak_wrmsr_fence(). The model sends xAPIC IPIs.)
      if (!cpu.drainStores()) return;
      return sendIpi(cpu, act, ins);
    case OP_EOI:
      return cpu.complete(act, cpu.apic.eoi());
    case OP_ASSERT:
      if (!ins.aux!.condition!(0)) {
        return cpu.stop({ outcome: 'assertion', message: ins.aux?.text ?? 'assertion failed' });
      }
      return cpu.complete(act, 0);
    case OP_DIE:
      return cpu.stop({ outcome: ins.aux!.outcome!, message: ins.aux!.text ?? '' });
    case OP_CALL:
      return call(cpu, act, ins);
    case OP_RET:
      return ret(cpu, act, ins);
    case OP_IRET:
      // Serializing (SDM §8.3): every buffered store reaches memory first.
      if (!cpu.drainStores()) return;
      return iret(cpu, act, ins.value === 1);
    default:
      if (isSystemRegisterOp(ins.op)) {
        // INVLPG, MOV to a control register and WRMSR are serializing (SDM §8.3): buffered stores drain first.
        if (isSerializingSystemOp(ins.op) && !cpu.drainStores()) return;
        const result = executeSystemRegister(cpu, ins);
        if (result === GP_FAULT) return cpu.raise(VECTOR_GP, 0, 0);
        return cpu.complete(act, result);
      }
      throw new InputError(`CPU ${cpu.id}: unknown operation ${describeValue(ins.op)}`);
  }
}
