import type { HandlerContext } from '../cpu/registers.ts';
import type { ExceptionEvent } from '../cpu/step-event.ts';
import { formatVirtual } from '../mmu/address.ts';
import { PF_ERROR } from '../mmu/walker.ts';

// The kernel's reports, worded as Linux prints them (arch/x86/mm/fault.c show_fault_oops, traps.c).

/** "BUG: unable to handle page fault for address ..." with the decoded error code and the faulting RIP. */
export function pageFaultReport(ctx: HandlerContext, rip: number): string {
  const ec = ctx.errorCode;
  const who = ec & PF_ERROR.U ? 'user' : 'supervisor';
  const what = ec & PF_ERROR.I ? 'instruction fetch' : ec & PF_ERROR.W ? 'write' : 'read';
  const why =
    ec & PF_ERROR.RSVD ? 'reserved bit violation' : ec & PF_ERROR.P ? 'permissions violation' : 'not-present page';
  return (
    `BUG: unable to handle page fault for address: ${formatVirtual(ctx.cr2)}\n` +
    `#PF: ${who} ${what} access in ${ec & PF_ERROR.U ? 'user' : 'kernel'} mode\n` +
    `#PF: error_code(0x${ec.toString(16).padStart(4, '0')}) - ${why}\n` +
    `RIP: 0010:${formatVirtual(rip)}`
  );
}

/**
 * The exceptions that led to this one in the step that raised it, innermost last, as "#PF at X while delivering
 * #PF at Y" (a model extra: hardware does not tell the #DF handler, the model's delivery log does).
 */
export function describeChain(chain: readonly ExceptionEvent[]): string {
  const raised = chain.filter((e) => e.outcome !== 'delivered');
  if (raised.length === 0) return '';
  const at = (e: ExceptionEvent) => `${e.name}${e.cr2 === undefined ? '' : ` at ${formatVirtual(e.cr2)}`}`;
  const parts = raised.map((e, i) => (i === 0 ? at(e) : `${at(e)} while delivering ${at(raised[i - 1]!)}`));
  return parts.slice(1).join('; ') || parts[0]!;
}
