import type { Assembler, Program } from '../cpu/assembler.ts';
import { ExecutionContext } from '../cpu/context.ts';
import { type HandlerContext, RFLAGS } from '../cpu/registers.ts';
import { type Kernel, LOCK } from '../mm/kernel.ts';
import { direct, type KernelProgram } from '../mm/kernel-page-tables.ts';
import { isMigrationEntry } from '../mm/migrate.ts';
import { formatVirtual, fromCanonicalHalves, LAYOUT, LOWER_HALF_END } from '../mmu/address.ts';
import { entryFrame, PTE_LO, tableIndex } from '../mmu/pte.ts';
import { PF_ERROR } from '../mmu/walker.ts';
import { pageFaultReport } from './reports.ts';

// exc_page_fault for kernel addresses (arch/x86/mm/fault.c do_kern_addr_fault), as a program on the faulting CPU:
// vmalloc_fault (pre-5.8, only with `sync: 'lazy-fault'`), then the spurious-fault check, then the exception-table
// fixup, then an oops. Returning from the handler is its iret: the faulting instruction is retried.

/**
 * vmalloc_fault() as in v4.15..v5.7 (digest §2): a supervisor not-present fault in the vmalloc space copies
 * init_mm's top-level entry into the current PGD if it is missing there, then checks the shared lower levels.
 * Returns 0 when the access can be retried, -1 when it cannot be fixed here. It takes no lock.
 */
export function* vmallocFault(x: Assembler, kernel: Kernel, address: number): KernelProgram {
  if (address < LAYOUT.vmallocStart || address >= LAYOUT.vmallocEnd) return -1;
  const cr3 = yield x.movFromCr(3);
  const index = tableIndex(address, 4) * 8;
  const live = cr3 - (cr3 % 4096) + index;
  const reference = kernel.initMm + index;
  const refLo = yield x.load(direct(reference), 4);
  if ((refLo & PTE_LO.P) === 0) return -1;
  const refHi = yield x.load(direct(reference + 4), 4);
  const liveLo = yield x.load(direct(live), 4);
  if ((liveLo & PTE_LO.P) === 0) {
    // set_pgd(pgd, *pgd_k): high half first, then the low half with P.
    yield x.store(direct(live + 4), 4, refHi);
    yield x.store(direct(live), 4, refLo);
  } else if (entryFrame(liveLo, 0) !== entryFrame(refLo, 0)) {
    yield x.die('oops', `BUG: vmalloc_fault: the PGD entry for ${formatVirtual(address)} differs from init_mm's`);
  }
  // The lower levels are shared with init_mm: walk them.
  let table = entryFrame(refLo, refHi);
  for (let level = 3; level >= 1; level--) {
    const entry = table + tableIndex(address, level as 1 | 2 | 3) * 8;
    const lo = yield x.load(direct(entry), 4);
    if ((lo & PTE_LO.P) === 0) return -1;
    if (level > 1 && (lo & PTE_LO.PS) !== 0) return 0;
    const hi = yield x.load(direct(entry + 4), 4);
    table = entryFrame(lo, hi);
  }
  return 0;
}

/**
 * spurious_kernel_fault(): a write to a page whose entries now allow it, through a stale read-only TLB entry. The
 * #PF dropped that entry, so returning retries with a fresh walk. Only W|P faults can be spurious; the walk is of
 * init_mm (the kernel's tables).
 */
function* spuriousFault(x: Assembler, kernel: Kernel, ctx: HandlerContext): KernelProgram<boolean> {
  if (ctx.errorCode !== (PF_ERROR.W | PF_ERROR.P)) return false;
  let table = kernel.initMm;
  for (let level = 4; level >= 1; level--) {
    const entry = table + tableIndex(ctx.cr2, level as 1 | 2 | 3 | 4) * 8;
    const lo = yield x.load(direct(entry), 4);
    if ((lo & PTE_LO.P) === 0 || (lo & PTE_LO.RW) === 0) return false;
    if (level === 1 || (level <= 3 && (lo & PTE_LO.PS) !== 0)) return true;
    const hi = yield x.load(direct(entry + 4), 4);
    table = entryFrame(lo, hi);
  }
  return false;
}

/**
 * migration_entry_wait(): the PTE for CR2 is a migration entry, so the page is being moved: wait (interrupts on
 * again if the faulting context had them, so the migrating CPU's flush IPI gets through) until the entry changes,
 * then return to retry the access. A PTE present again by now is retried at once. False for any other PTE.
 */
function* migrationEntryWait(x: Assembler, kernel: Kernel, ctx: HandlerContext): KernelProgram<boolean> {
  let table = kernel.initMm;
  for (let level = 4; level > 1; level--) {
    const entry = table + tableIndex(ctx.cr2, level as 2 | 3 | 4) * 8;
    const lo = yield x.load(direct(entry), 4);
    if ((lo & PTE_LO.P) === 0 || (lo & PTE_LO.PS) !== 0) return false;
    const hi = yield x.load(direct(entry + 4), 4);
    table = entryFrame(lo, hi);
  }
  const pte = direct(table + tableIndex(ctx.cr2, 1) * 8);
  const lo = yield x.load(pte, 4);
  // The migration finished between the fault and this read: the access can be retried (pte_same() fails).
  if ((lo & PTE_LO.P) !== 0) return true;
  if (!isMigrationEntry(lo)) return false;
  const rflags = yield x.load(ctx.frameRsp + 24, 8); // the frame: error code, RIP, CS, RFLAGS
  if ((rflags & RFLAGS.IF) !== 0) yield x.sti();
  yield x.waitUntil(pte, 4, (lo) => !isMigrationEntry(lo));
  return true;
}

/** The RIP the fault saved, read from the frame (after the error code) as the oops report prints it. */
function* savedRip(x: Assembler, ctx: HandlerContext): KernelProgram {
  const lo = yield x.load(ctx.frameRsp + 8, 4);
  const hi = yield x.load(ctx.frameRsp + 12, 4);
  return fromCanonicalHalves(lo, hi);
}

/**
 * A fault from user mode that nothing fixes (do_user_addr_fault -> bad_area -> force_sig(SIGSEGV)): the kernel
 * logs "NAME[cpu]: segfault at ADDR ip IP error N" and the task dies; the CPU runs on in its idle context, on its
 * kernel stack (TSS.RSP0, where the handler runs). The kernel is not stopped.
 */
function* userSegfault(x: Assembler, kernel: Kernel, ctx: HandlerContext): KernelProgram<void> {
  const rip = yield* savedRip(x, ctx);
  yield x.atomic(LOCK.LOG, () => {
    const task = kernel.current[x.cpuId] ?? 'user';
    kernel.log.push(
      `${task}[cpu${x.cpuId}]: segfault at ${formatVirtual(ctx.cr2)} ip ${formatVirtual(rip)} error ${ctx.errorCode}`,
    );
    return 0;
  });
  const dead = new ExecutionContext(undefined, [], 0, 'exited');
  const idle = new ExecutionContext(idleTask, [], ctx.frameRsp, 'idle');
  yield x.switchContext(dead, idle); // do_exit(SIGSEGV): never returns to the task
}

/** The idle loop a CPU falls back to: interrupts on, then halted (the model's idle state). */
const idleTask: Program = function* idle(x) {
  yield x.sti();
};

/** The #PF handler: with a kernel, the whole kernel-address path; without one, fixup or oops (the minimal boot). */
export function pageFaultHandler(kernel: Kernel | undefined): Program<[HandlerContext]> {
  return function* pageFault(x, ctx) {
    if (kernel && (ctx.errorCode & PF_ERROR.U) !== 0) {
      yield* userSegfault(x, kernel, ctx);
      return;
    }
    const kernelAddress = ctx.cr2 >= LOWER_HALF_END;
    const notPresentSupervisor = (ctx.errorCode & (PF_ERROR.RSVD | PF_ERROR.U | PF_ERROR.P)) === 0;
    if (kernel && kernelAddress && notPresentSupervisor && kernel.sync === 'lazy-fault') {
      if ((yield* vmallocFault(x, kernel, ctx.cr2)) >= 0) return;
    }
    if (kernel && kernelAddress && notPresentSupervisor && (yield* migrationEntryWait(x, kernel, ctx))) return;
    if (kernel && kernelAddress && (yield* spuriousFault(x, kernel, ctx))) return;
    if (ctx.hasFixup) {
      yield x.iret({ fixup: true });
      return;
    }
    const rip = yield* savedRip(x, ctx);
    yield x.die('oops', pageFaultReport(ctx, rip));
  };
}
