import { formatVirtual, NON_CANONICAL, offsetAddress } from '../mmu/address.ts';
import { VECTOR_VIOLATION } from '../mmu/frame-guard.ts';
import type { Activation } from './activation.ts';
import type { CpuCore } from './core.ts';
import { ESCALATION, type ExceptionClass, VECTOR, vectorInfo, vectorName } from './exceptions.ts';
import { stopOnMemoryViolation } from './memory-violation.ts';
import { makeActivation } from './program-protocol.ts';
import { type Gate, type HandlerContext, RFLAGS, SELECTOR } from './registers.ts';
import { checkGateSelector } from './segments.ts';
import type { ExceptionEvent } from './step-event.ts';

// 64-bit exception and interrupt delivery (SDM Vol. 3 §6.14.2-6.14.5, INT n pseudocode) with nested-fault
// escalation (Table 6-5): read the IDT gate (a missing one is #GP, a not-present one #NP, an INT n through a gate
// whose DPL is below CPL #GP, each with the IDT-format error code), check the gate's code segment, pick the stack
// (IST from the gate, RSP0 on a privilege change, else the current RSP), align it to 16, push SS, RSP, RFLAGS, CS,
// RIP and the error code through the MMU, then start the handler. A fault on any of those steps is a second
// exception; the escalation table decides whether it is delivered instead (serial), becomes #DF, or shuts the CPU
// down (triple fault). The interrupted state is untouched until the whole frame is pushed.

/** What is being delivered: an exception, an external interrupt (IPI, NMI) or a software interrupt (INT n). */
export const EVENT_SOURCE = { EXCEPTION: 0, EXTERNAL: 1, SOFTWARE: 2 } as const;
export type EventSource = (typeof EVENT_SOURCE)[keyof typeof EVENT_SOURCE];

const frameSlots = new Float64Array(6);

/** Vectors whose error code has the selector format, with EXT in bit 0 (SDM §6.13). */
function selectorFormat(vector: number): boolean {
  return vector === VECTOR.TS || vector === VECTOR.NP || vector === VECTOR.SS || vector === VECTOR.GP;
}

/** IDT-format error code: the gate's index with the IDT bit (bit 1) and EXT (SDM §6.13, Figure 6-6). */
function idtErrorCode(vector: number, ext: number): number {
  return vector * 8 + 2 + ext;
}

/**
 * Delivers an event. `returnRip` is the RIP the frame saves: the faulting instruction for a fault or an interrupt,
 * the next instruction for INT n. Returns whether that event itself was delivered (its handler started) rather
 * than replaced by a fault raised while delivering it (that fault's frame saves the current RIP instead).
 */
export function deliverEvent(
  cpu: CpuCore,
  vector: number,
  errorCode: number,
  source: EventSource,
  returnRip: number,
): boolean {
  // Delivering an event drains the store buffer first: the interrupted code's stores are visible before the
  // handler's first instruction. SDM §8.3 lists only instructions as serializing; AMD's APM counts exceptions and
  // interrupts among serializing events, and so does the model (docs/deviations.md). A store the frame guard
  // refuses stops the CPU instead.
  if (cpu.port.storeBuffer !== undefined && !cpu.drainStores()) return false;
  const log = cpu.exceptionLog;
  let during = -1;
  // EXT is 1 in the error code of a fault raised while delivering an exception or an external interrupt, 0 while
  // delivering INT n / INT3 (SDM §6.13).
  let ext = source === EVENT_SOURCE.SOFTWARE ? 0 : 1;
  let rip = returnRip;
  for (;;) {
    const info = vectorInfo(vector);
    // INT n and external interrupts push no error code, even on vectors whose exception has one (SDM §6.13).
    const pushesErrorCode = source === EVENT_SOURCE.EXCEPTION && info.errorCode;
    // A software or external interrupt is benign for Table 6-5 whatever its vector.
    const cls: ExceptionClass = source === EVENT_SOURCE.EXCEPTION ? info.cls : 'benign';
    const entry: { -readonly [K in keyof ExceptionEvent]: ExceptionEvent[K] } = {
      vector,
      name: source === EVENT_SOURCE.SOFTWARE ? (vector === 3 ? 'INT3' : `INT 0x${vector.toString(16)}`) : info.mnemonic,
      errorCode: pushesErrorCode ? errorCode : 0,
      outcome: 'delivered',
    };
    if (vector === VECTOR.PF && source === EVENT_SOURCE.EXCEPTION) entry.cr2 = cpu.regs.cr2;
    if (during >= 0) entry.during = during;
    log.push(entry);

    const regs = cpu.regs;
    const gate = cpu.idt[vector];
    let secondVector = -1;
    let secondCode = 0;
    let secondCr2 = 0;
    let newCpl = 0;
    if (!gate) {
      // No gate: beyond the IDT limit or a descriptor that is no interrupt/trap gate: #GP (SDM INT n).
      secondVector = VECTOR.GP;
      secondCode = idtErrorCode(vector, ext);
    } else if (source === EVENT_SOURCE.SOFTWARE && gate.dpl < regs.cpl) {
      secondVector = VECTOR.GP;
      secondCode = idtErrorCode(vector, ext);
    } else if (!gate.present) {
      secondVector = VECTOR.NP;
      secondCode = idtErrorCode(vector, ext);
    } else {
      const checked = checkGateSelector(gate.selector, regs.cpl);
      if (typeof checked === 'number') newCpl = checked;
      else {
        secondVector = checked.vector;
        secondCode = checked.errorCode | ext;
      }
    }
    if (secondVector >= 0) {
      entry.outcome = 'gate-fault';
    } else if (gate) {
      // The stack: IST if the gate names one, RSP0 when the privilege level changes, else the current RSP.
      const stackSource = gate.ist !== 0 ? `ist${gate.ist}` : newCpl < regs.cpl ? 'rsp0' : 'current';
      const top = gate.ist !== 0 ? cpu.tss.ist[gate.ist]! : newCpl < regs.cpl ? cpu.tss.rsp0 : regs.rsp;
      const aligned = top - (top % 16);
      const slots = pushesErrorCode ? 6 : 5;
      const base = offsetAddress(aligned, -8 * slots);
      const port = cpu.port;
      // The new RSP itself must be canonical (SDM Vol. 2 INT n, IA-32e mode: "IF StackAddress is non-canonical THEN
      // #SS"), whatever the addresses of the pushes below it are; then each push is translated.
      const stackCanonical = aligned < NON_CANONICAL;
      if (stackCanonical && port.translateStackWrite(base, slots, frameSlots, newCpl === 3)) {
        const external = source === EVENT_SOURCE.EXTERNAL;
        // The handler's generator is made before any byte of the frame is written, so nothing is half-done.
        const handler = prepareHandler(
          cpu,
          gate,
          {
            vector,
            errorCode: pushesErrorCode ? errorCode : 0,
            cr2: regs.cr2,
            frameRsp: base,
            hasFixup: false,
            external,
            software: source === EVENT_SOURCE.SOFTWARE,
            chain: [],
          },
          pushesErrorCode,
        );
        const user = regs.cpl === 3;
        const k = pushesErrorCode ? 1 : 0;
        port.writeAt(frameSlots[k + 4]!, regs.ss);
        port.writeAddressAt(frameSlots[k + 3]!, regs.rsp);
        port.writeAt(frameSlots[k + 2]!, regs.rflags);
        port.writeAt(frameSlots[k + 1]!, user ? SELECTOR.USER_CS : SELECTOR.KERNEL_CS);
        port.writeAddressAt(frameSlots[k]!, rip);
        if (pushesErrorCode) port.writeAt(frameSlots[0]!, errorCode);
        regs.rsp = base;
        // A privilege change loads SS with a NULL selector whose RPL is the new CPL (SDM §6.14.4).
        if (newCpl < regs.cpl) regs.ss = newCpl;
        regs.cpl = newCpl === 3 ? 3 : 0;
        if (gate.type === 'interrupt') regs.rflags &= ~RFLAGS.IF;
        entry.stack = stackSource;
        entry.rsp = base;
        if (port.footprint) port.footprint.acceptedList.push(vector);
        cpu.enterHandler(handler);
        return during < 0;
      }
      entry.outcome = 'frame-fault';
      if (!stackCanonical) {
        secondVector = VECTOR.SS;
        secondCode = ext;
      } else {
        // A frame slot in a freed frame (or a migrated-away one) is a memory-safety violation: the CPU stops.
        if (port.fault.vector === VECTOR_VIOLATION) {
          stopOnMemoryViolation(cpu);
          return false;
        }
        secondVector = port.fault.vector;
        secondCode = port.fault.errorCode;
        secondCr2 = port.fault.cr2;
        if (selectorFormat(secondVector)) secondCode |= ext;
      }
    }
    // The second exception: CR2 is overwritten by a nested #PF even when it becomes #DF (SDM §6.15, int 14).
    if (secondVector === VECTOR.PF) regs.cr2 = secondCr2;
    const action = ESCALATION[cls][vectorInfo(secondVector).cls];
    cpu.lastException = { vector: secondVector, errorCode: secondCode, cr2: regs.cr2 };
    // Every later event is an exception raised during delivery: EXT = 1, and its frame saves the current RIP.
    ext = 1;
    rip = cpu.rip;
    if (action === 'serial') {
      during = vector;
      vector = secondVector;
      errorCode = secondCode;
      source = EVENT_SOURCE.EXCEPTION;
      continue;
    }
    const nested: ExceptionEvent = {
      vector: secondVector,
      name: vectorName(secondVector),
      errorCode: secondCode,
      during: vector,
      outcome: action,
      ...(secondVector === VECTOR.PF ? { cr2: secondCr2 } : {}),
    };
    log.push(nested);
    if (action === 'triple-fault') {
      cpu.shutdown(
        `triple fault: ${nested.name} (error code ${secondCode}) while delivering ${vectorName(vector)}` +
          (secondVector === VECTOR.PF ? ` (CR2 ${formatVirtual(secondCr2)})` : ''),
      );
      return false;
    }
    // #DF: abort class, error code always 0 (SDM §6.15, interrupt 8).
    during = vector;
    vector = VECTOR.DF;
    errorCode = 0;
    source = EVENT_SOURCE.EXCEPTION;
    cpu.lastException = { vector: VECTOR.DF, errorCode: 0, cr2: regs.cr2 };
  }
}

/**
 * The handler's activation, made before delivery writes the frame, so that a handler that cannot start leaves no
 * half-pushed frame. `hasFixup` is filled in here (the interrupted instruction's), and the chain of exceptions
 * this step raised so far.
 */
function prepareHandler(cpu: CpuCore, gate: Gate, context: HandlerContext, errorCodePushed: boolean): Activation {
  const interrupted = cpu.activations[cpu.activations.length - 1];
  const hasFixup = !context.external && !context.software && interrupted?.pending?.fixup !== undefined;
  const ctx: HandlerContext = { ...context, hasFixup, chain: cpu.exceptionLog.slice() };
  const byException = !context.external && !context.software;
  return makeActivation(
    cpu,
    'handler',
    gate.handler,
    [ctx],
    context.vector,
    errorCodePushed,
    context.frameRsp,
    -1,
    byException,
  );
}
