import type { Assembler, Program } from '../cpu/assembler.ts';
import { type HandlerContext, RFLAGS } from '../cpu/registers.ts';
import { PAGE_SIZE } from '../mmu/address.ts';
import { type Kernel, LOCK } from './kernel.ts';
import { direct, type KernelProgram } from './kernel-page-tables.ts';

// SMP as kernel programs (kernel/smp.c, kernel/locking, arch/x86/mm/tlb.c): spinlocks on words in memory,
// smp_call_function_many() with per-CPU call-single data (csd) and the call-function IPI, and
// flush_tlb_kernel_range(). Everything that races lives in emulated memory: lock words and csd flags are bytes
// another CPU can read between any two steps.
//
// The SMP area (one block from the zone, direct-mapped) holds, in order: a csd per (initiator, target) pair,
// LOCK_WORDS lock words the kernel and scenarios name, and a 4 KiB IRQ stack per CPU. Linux queues csds on a
// per-CPU llist; here each initiator has its own csd for each target (as Linux's per-CPU cfd_data), and the
// call-function handler scans the csds addressed to its CPU.

/** CALL_FUNCTION_VECTOR (arch/x86/include/asm/irq_vectors.h). */
export const CALL_FUNCTION_VECTOR = 0xfb;
/** The csd's flags word: CSD_FLAG_LOCK while queued or running. */
const CSD_FLAG_LOCK = 1;
const CSD_SIZE = 32;
/** Lock words in the SMP area, numbered for the kernel and scenarios (see lockWord()). */
export const LOCK_WORDS = 128;
/**
 * Lock words 96..96+CPUs-1: each CPU's queue of one on-stack csd (call_single_queue, kernel/smp.c), the csd's
 * address or 0.
 */
const CALL_SINGLE_QUEUE_WORDS = 96;
/** flush_tlb_kernel_range(): above this many pages, flush everything (tlb_single_page_flush_ceiling). */
export const FLUSH_CEILING = 33;
const IRQ_STACK_SIZE = PAGE_SIZE;

function csdBytes(cpus: number): number {
  return cpus * cpus * CSD_SIZE;
}

/** Byte offset of the IRQ stacks in the SMP area: page-aligned, after the csds and the lock words. */
function irqStacksOffset(cpus: number): number {
  return Math.ceil((csdBytes(cpus) + LOCK_WORDS * 8) / PAGE_SIZE) * PAGE_SIZE;
}

/** The buddy order of the SMP area for `cpus` CPUs. */
export function smpAreaOrder(cpus: number): number {
  const pages = irqStacksOffset(cpus) / PAGE_SIZE + cpus * (IRQ_STACK_SIZE / PAGE_SIZE);
  return Math.ceil(Math.log2(pages));
}

/** Direct-map address of the csd `initiator` uses to call `target`. */
export function csdAddress(kernel: Kernel, initiator: number, target: number): number {
  return direct(kernel.smpArea + (initiator * kernel.cpus + target) * CSD_SIZE);
}

/** Direct-map address of lock word `n` (0..LOCK_WORDS-1) in the SMP area: a spinlock, zero when unlocked. */
export function lockWord(kernel: Kernel, n: number): number {
  return direct(kernel.smpArea + csdBytes(kernel.cpus) + n * 8);
}

/** The top of CPU `cpu`'s IRQ stack (Linux's per-CPU hardirq stack), direct-mapped. */
export function irqStackTop(kernel: Kernel, cpu: number): number {
  return direct(kernel.smpArea + irqStacksOffset(kernel.cpus) + (cpu + 1) * IRQ_STACK_SIZE);
}

/** Names for the SMP area's words, for deadlock reports ("CPU0 spins on csd CPU0->CPU1"). */
export function smpSymbols(kernel: Kernel): Map<number, string> {
  const names = new Map<number, string>();
  for (let i = 0; i < kernel.cpus; i++) {
    for (let t = 0; t < kernel.cpus; t++) if (i !== t) names.set(csdAddress(kernel, i, t), `csd CPU${i}->CPU${t}`);
  }
  for (let n = 0; n < LOCK_WORDS; n++) names.set(lockWord(kernel, n), `lock word ${n}`);
  return names;
}

/**
 * spin_lock(): xchg until the old value was 0, spinning (not moving) while it is held. With `kernel.timing`, the
 * time it was taken is noted (for the hold time spinUnlock records).
 */
export function* spinLock(x: Assembler, lock: number, kernel?: Kernel): KernelProgram<void> {
  for (;;) {
    const old = yield x.xchg(lock, 8, 1);
    if (old === 0) break;
    yield x.waitUntil(lock, 8, (v) => v === 0);
  }
  if (kernel?.timing) {
    const now = yield x.rdtsc();
    yield x.atomic(LOCK.STATS, () => {
      kernel.timings.lockTaken.set(lock, now);
      return 0;
    });
  }
}

/** spin_unlock(): a store of 0 (x86 stores are release). With `kernel.timing`, records the hold time. */
export function* spinUnlock(x: Assembler, lock: number, kernel?: Kernel): KernelProgram<void> {
  yield x.store(lock, 8, 0);
  if (kernel?.timing) {
    const now = yield x.rdtsc();
    yield x.atomic(LOCK.STATS, () => {
      const taken = kernel.timings.lockTaken.get(lock);
      if (taken !== undefined) kernel.timings.lockHolds.push(now - taken);
      kernel.timings.lockTaken.delete(lock);
      return 0;
    });
  }
}

/**
 * spin_lock_irqsave(): saves RFLAGS, disables interrupts, takes the lock; returns the saved flags for
 * spinUnlockIrqrestore (which re-enables interrupts only if they were on).
 */
export function* spinLockIrqsave(x: Assembler, lock: number): KernelProgram {
  const flags: number = yield x.readFlags();
  yield x.cli();
  yield* spinLock(x, lock);
  return flags;
}

/** spin_unlock_irqrestore(): releases the lock, then IF as `flags` had it. */
export function* spinUnlockIrqrestore(x: Assembler, lock: number, flags: number): KernelProgram<void> {
  yield* spinUnlock(x, lock);
  if ((flags & RFLAGS.IF) !== 0) yield x.sti();
}

/** spin_lock_irq(): interrupts off, then the lock (for a caller known to run with IF=1). */
export function* spinLockIrq(x: Assembler, lock: number): KernelProgram<void> {
  yield x.cli();
  yield* spinLock(x, lock);
}

/** spin_unlock_irq(): the lock, then interrupts on. */
export function* spinUnlockIrq(x: Assembler, lock: number): KernelProgram<void> {
  yield* spinUnlock(x, lock);
  yield x.sti();
}

/** The number a csd holds for `fn`: registered on first use, in a step under its own lock. */
function* functionNumber(x: Assembler, kernel: Kernel, fn: Program<[number]>): KernelProgram {
  return yield x.atomic(LOCK.CALL_FUNCTIONS, () => {
    const known = kernel.callFunctions.indexOf(fn);
    if (known >= 0) return known;
    kernel.callFunctions.push(fn);
    return kernel.callFunctions.length - 1;
  });
}

/**
 * smp_call_function_many(mask, fn, info, wait) from this CPU: for each target but itself, wait for its csd to be
 * free (csd_lock_wait), fill it, lock it (csd_lock), then send the call-function IPI to all targets; with `wait`,
 * spin until every csd is unlocked again (the targets ran `fn`). `fn(info)` runs on each target in interrupt
 * context with IF=0, on the target's IRQ stack.
 */
export function* smpCallFunctionMany(
  x: Assembler,
  kernel: Kernel,
  mask: readonly number[],
  fn: Program<[number]>,
  info: number,
  wait: boolean,
): KernelProgram<void> {
  const me = x.cpuId;
  const targets = mask.filter((t) => t !== me);
  if (targets.length === 0) return;
  const id = yield* functionNumber(x, kernel, fn);
  const start = kernel.timing ? yield x.rdtsc() : 0;
  for (const t of targets) {
    const csd = csdAddress(kernel, me, t);
    yield x.waitUntil(csd, 8, (v) => (v & CSD_FLAG_LOCK) === 0); // csd_lock_wait
    yield x.store(csd + 8, 8, id);
    yield x.store(csd + 16, 8, info);
    yield x.store(csd, 8, CSD_FLAG_LOCK); // csd_lock
  }
  yield x.sendIpi(targets, CALL_FUNCTION_VECTOR);
  if (!wait) return;
  for (const t of targets) yield x.waitUntil(csdAddress(kernel, me, t), 8, (v) => (v & CSD_FLAG_LOCK) === 0);
  if (kernel.timing) {
    const end = yield x.rdtsc();
    yield x.atomic(LOCK.STATS, () => {
      kernel.timings.ipiRoundTrips.push(end - start);
      return 0;
    });
  }
}

/**
 * smp_call_function_single(target, fn, info, wait=1) (kernel/smp.c, v6.6) with the csd on the caller's stack (as Linux's
 * `call_single_data_t csd` local in smp_call_function_single()): `csd` is 24 bytes the caller reserved there. It
 * fills and locks the csd, queues it on the target (one queued csd a target: it waits for the slot), sends the IPI,
 * then spins in csd_lock_wait() on its own stack until the target's csd_unlock() writes it.
 */
export function* smpCallFunctionSingleOnStack(
  x: Assembler,
  kernel: Kernel,
  target: number,
  fn: Program<[number]>,
  info: number,
  csd: number,
): KernelProgram<void> {
  const id = yield* functionNumber(x, kernel, fn);
  yield x.store(csd + 8, 8, id);
  yield x.store(csd + 16, 8, info);
  yield x.store(csd, 8, CSD_FLAG_LOCK); // csd_lock
  const queue = lockWord(kernel, CALL_SINGLE_QUEUE_WORDS + target);
  for (;;) {
    const old = yield x.cmpxchg(queue, 8, 0, csd); // __smp_call_single_queue(): llist_add
    if (old === 0) break;
    yield x.waitUntil(queue, 8, (v) => v === 0);
  }
  yield x.sendIpi([target], CALL_FUNCTION_VECTOR);
  yield x.waitUntil(csd, 8, (v) => (v & CSD_FLAG_LOCK) === 0); // csd_lock_wait, on this stack
}

/** on_each_cpu(fn, info, wait): the other CPUs through smp_call_function_many, this one directly (IF off). */
export function* onEachCpu(
  x: Assembler,
  kernel: Kernel,
  fn: Program<[number]>,
  info: number,
  wait: boolean,
): KernelProgram<void> {
  const all = Array.from({ length: kernel.cpus }, (_, i) => i);
  yield* smpCallFunctionMany(x, kernel, all, fn, info, wait);
  yield x.call(fn, info);
}

/**
 * The call-function IPI handler (generic_smp_call_function_single_interrupt): on this CPU's IRQ stack, run and
 * unlock every csd addressed to this CPU, then EOI. Interrupt gate: IF is 0 throughout.
 */
export function callFunctionHandler(kernel: Kernel): Program<[HandlerContext]> {
  return function* callFunctionInterrupt(x, ctx) {
    const me = x.cpuId;
    const start: number = kernel.timing ? yield x.rdtsc() : 0;
    yield x.movToRsp(irqStackTop(kernel, me)); // the frame is on the interrupted stack; the work is not
    for (let i = 0; i < kernel.cpus; i++) {
      if (i === me) continue;
      const csd = csdAddress(kernel, i, me);
      const flags = yield x.load(csd, 8);
      if ((flags & CSD_FLAG_LOCK) === 0) continue;
      const id = yield x.load(csd + 8, 8);
      const info = yield x.load(csd + 16, 8);
      yield x.call(kernel.callFunctions[id]!, info);
      yield x.store(csd, 8, 0); // csd_unlock: the initiator's wait ends
    }
    // An on-stack csd queued for this CPU (smp_call_function_single with the caller's csd): run it, then
    // csd_unlock() stores into the caller's stack, through this CPU's translation of it.
    const queue = lockWord(kernel, CALL_SINGLE_QUEUE_WORDS + me);
    const onStack = yield x.load(queue, 8);
    if (onStack !== 0) {
      const id = yield x.load(onStack + 8, 8);
      const info = yield x.load(onStack + 16, 8);
      yield x.store(queue, 8, 0);
      const fn = kernel.callFunctions[id];
      // A csd read from a stale copy of the caller's stack can name no function: Linux calls a wild pointer.
      if (fn === undefined) yield x.die('oops', `CPU${me} ran an on-stack csd with no function (${id}): a corrupt csd`);
      else yield x.call(fn, info);
      yield x.store(onStack, 8, 0); // csd_unlock
    }
    yield x.eoi();
    yield x.movToRsp(ctx.frameRsp); // back to the frame, which iret pops
    if (kernel.timing) {
      const end: number = yield x.rdtsc();
      yield x.atomic(LOCK.STATS, () => {
        kernel.timings.irqTime[me] = (kernel.timings.irqTime[me] ?? 0) + (end - start);
        return 0;
      });
    }
  };
}

/** The pages a flush covers, encoded in `info`: the first page number and the count (<= FLUSH_CEILING). */
export function flushInfo(start: number, pages: number): number {
  return (start / PAGE_SIZE) * 64 + pages;
}

/** do_kernel_range_flush(): INVLPG each page, or (-1 pages) flush everything, global entries included. */
export const kernelRangeFlush: Program<[number]> = function* kernelRangeFlush(x, info) {
  const pages = info % 64;
  const first = Math.floor(info / 64) * PAGE_SIZE;
  if (pages === 0) {
    // __flush_tlb_all(): toggling CR4.PGE drops global entries too (kernel mappings are global).
    const cr4 = yield x.movFromCr(4);
    yield x.movToCr4(cr4 & ~0x80);
    yield x.movToCr4(cr4);
    return;
  }
  for (let p = 0; p < pages; p++) yield x.invlpg(first + p * PAGE_SIZE);
};

/**
 * flush_tlb_kernel_range(start, end): every CPU drops its translations of [start, end): INVLPG per page up to 33
 * pages, else a full flush; the other CPUs by IPI, waiting for all of them (on_each_cpu(..., wait=1)).
 */
export function* flushTlbKernelRange(x: Assembler, kernel: Kernel, start: number, end: number): KernelProgram<void> {
  const pages = Math.ceil((end - start) / PAGE_SIZE);
  if (pages <= 0) return;
  const info = pages > FLUSH_CEILING ? 0 : flushInfo(start - (start % PAGE_SIZE), pages);
  yield* onEachCpu(x, kernel, kernelRangeFlush, info, true);
}
