import type { Assembler } from '../cpu/assembler.ts';
import { KTHREAD_WAKE_WORD } from './alloc-pages.ts';
import { kcompactdDoWork } from './compaction.ts';
import { type Kernel, LOCK } from './kernel.ts';
import type { KernelProgram } from './kernel-page-tables.ts';
import { kswapd } from './reclaim.ts';
import { lockWord } from './smp.ts';

// The memory-management kernel threads, kswapd and kcompactd, as one program on a CPU of their own (Linux runs one
// of each per node). They sleep on a word in memory: allocations that wake them (wakeup_kswapd(),
// wakeup_kcompactd()) set bit 0, and stopKthreads() sets bit 1 when the workload ends. Each round takes the
// pending work under the zone lock: kswapd's reclaim first (it may wake kcompactd), then kcompactd's compaction.

const WORK = 1;
const STOP = 2;

/** kswapd and kcompactd: run them with `m.load(cpu, (x) => kthreads(x, kernel))`. Interrupts stay on. */
export function* kthreads(x: Assembler, kernel: Kernel): KernelProgram<void> {
  const word = lockWord(kernel, KTHREAD_WAKE_WORD);
  const pages = kernel.pages;
  yield x.sti();
  for (;;) {
    yield x.waitUntil(word, 8, (v) => v !== 0);
    const v: number = yield x.xchg(word, 8, 0);
    if ((v & STOP) !== 0) return;
    const reclaim: number = yield x.atomic(LOCK.ZONE, () => {
      const pending = pages.kswapdPending;
      pages.kswapdPending = false;
      return pending ? 1 : 0;
    });
    if (reclaim) yield* kswapd(x, kernel);
    const compact: number = yield x.atomic(LOCK.ZONE, () => {
      const pending = pages.kcompactdPending;
      pages.kcompactdPending = false;
      return pending ? 1 : 0;
    });
    if (compact) yield* kcompactdDoWork(x, kernel);
  }
}

/** Ends the kernel threads once they finish what they are doing (the workload's last step). */
export function* stopKthreads(x: Assembler, kernel: Kernel): KernelProgram<void> {
  yield x.store(lockWord(kernel, KTHREAD_WAKE_WORD), 8, WORK | STOP);
}
