import {
  describeValue,
  InputError,
  requireBoolean,
  requireInteger,
  requireOneOf,
  requireOptions,
} from '../mmu/input-error.ts';
import { isGeneratorFunction } from './operands.ts';
import { GATE_TYPES, type Gate, type GateInit, SELECTOR } from './registers.ts';

// IDT gates as Cpu.setGate stores them (SDM Vol. 3 §6.14.1): checked whole before anything changes, frozen, with
// the defaults filled in. A selector that names no 64-bit code segment is accepted: it faults at delivery, as on
// hardware (src/cpu/segments.ts).

/** The gate `init` describes, checked: `where` names the call in messages. Throws InputError, changing nothing. */
export function checkedGate(init: GateInit, where: string): Gate {
  if (init === undefined) throw new InputError(`${where}: gate undefined must be an object`);
  requireOptions<GateInit>(init, `${where}: gate`, ['handler', 'ist', 'type', 'present', 'dpl', 'selector']);
  if (!isGeneratorFunction(init.handler)) {
    throw new InputError(
      `${where}: handler ${describeValue(init.handler)} is not a generator function: ` +
        'write handlers as function* (x, ctx) { ... }',
    );
  }
  return Object.freeze({
    handler: init.handler,
    ist: requireInteger(init.ist, `${where}: IST index`, 0, 7),
    type: requireOneOf(init.type, `${where}: gate type`, GATE_TYPES),
    present: requireBoolean(init.present, `${where}: present`, true),
    dpl: init.dpl === undefined ? 0 : requireInteger(init.dpl, `${where}: DPL`, 0, 3),
    selector:
      init.selector === undefined ? SELECTOR.KERNEL_CS : requireInteger(init.selector, `${where}: selector`, 0, 0xffff),
  });
}
