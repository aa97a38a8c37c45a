import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { RFLAGS } from '../../src/cpu/registers.ts';
import { explore, replay } from '../../src/explore/explore.ts';
import { Machine } from '../../src/machine/machine.ts';
import { LOCK } from '../../src/mm/kernel.ts';
import { direct, walkToEntry } from '../../src/mm/kernel-page-tables.ts';
import {
  CALL_FUNCTION_VECTOR,
  flushTlbKernelRange,
  lockWord,
  smpCallFunctionMany,
  spinLock,
  spinLockIrq,
  spinLockIrqsave,
  spinUnlock,
  spinUnlockIrqrestore,
} from '../../src/mm/smp.ts';
import { vfree, vmalloc } from '../../src/mm/vmalloc.ts';
import { purgeVmapAreaLazy } from '../../src/mm/vmalloc-purge.ts';
import { PAGE_SIZE } from '../../src/mmu/address.ts';
import { entryFrame } from '../../src/mmu/pte.ts';

const MiB = 1024 * 1024;

function kernelMachine(cpus = 2) {
  const m = Machine.create({ cpus, trace: false, memory: 32 * MiB, kernel: {} });
  return { m, kernel: m.kernel! };
}

describe('spinlocks', () => {
  /** Each CPU increments a shared word twice, each time under the lock, with a plain load and store. */
  function lockedCounter() {
    const { m, kernel } = kernelMachine();
    const lock = lockWord(kernel, 0);
    const counter = lockWord(kernel, 1);
    for (const id of [0, 1]) {
      m.load(id, function* (x) {
        for (let k = 0; k < 2; k++) {
          yield* spinLock(x, lock);
          const v: number = yield x.load(counter, 8);
          yield x.store(counter, 8, v + 1);
          yield* spinUnlock(x, lock);
        }
      });
    }
    return m;
  }
  const counted = (m: Machine) => m.memory.read64(m.physicalAddress(lockWord(m.kernel!, 1))!) === 4;

  it('a spinlock makes the increments exclusive in every interleaving (exhaustive)', () => {
    const result = explore(lockedCounter, { strategy: 'exhaustive', check: counted });
    expect(result).toMatchObject({ complete: true, violations: [] });
    expect(result.distinctStates).toBe(1);
  });
});

describe('spin_lock_irqsave', () => {
  it('restores the interrupt state the caller had: on stays on, off stays off', () => {
    const { m, kernel } = kernelMachine(1);
    const lock = lockWord(kernel, 0);
    const seen: number[] = [];
    m.load(0, function* (x) {
      for (const on of [true, false]) {
        yield on ? x.sti() : x.cli();
        const flags = yield* spinLockIrqsave(x, lock);
        seen.push((yield x.readFlags()) & RFLAGS.IF); // inside: off
        yield* spinUnlockIrqrestore(x, lock, flags);
        seen.push((yield x.readFlags()) & RFLAGS.IF); // after: as before
      }
    });
    m.run();
    expect(m.outcome).toBe('ok');
    expect(seen).toEqual([0, RFLAGS.IF, 0, 0]);
  });
});

describe('smp_call_function_many', () => {
  /** CPU0 asks CPU1 to store 42 at a word (the function's argument is the word's address), waiting for it. */
  function callAndWait(wait: boolean) {
    const { m, kernel } = kernelMachine();
    const word = lockWord(kernel, 2);
    const storeFortyTwo = function* storeFortyTwo(x: Assembler, at: number) {
      yield x.store(at, 8, 42);
    };
    m.load(0, function* (x) {
      yield* smpCallFunctionMany(x, kernel, [0, 1], storeFortyTwo, word, wait);
      const seen: number = yield x.load(word, 8);
      if (wait) yield x.assert(seen === 42, `after the wait the function has run (read ${seen})`);
    });
    m.load(1, function* (x) {
      yield x.sti();
      for (let i = 0; i < 3; i++) yield x.pause();
    });
    return m;
  }

  it('the target runs the function in interrupt context; with wait, the caller sees its effect', () => {
    const m = callAndWait(true);
    m.run({ maxSteps: 10_000 });
    expect(m.outcome).toBe('ok');
    expect(m.memory.read64(m.physicalAddress(lockWord(m.kernel!, 2))!)).toBe(42);
    // Every interleaving: the wait holds.
    expect(explore(() => callAndWait(true), { strategy: 'exhaustive' })).toMatchObject({
      complete: true,
      violations: [],
    });
  });

  it('the IPI is the call-function vector, and the csd is unlocked after the call', () => {
    const m = Machine.create({ cpus: 2, trace: true, memory: 32 * MiB, kernel: {} });
    const kernel = m.kernel!;
    const word = lockWord(kernel, 2);
    m.load(0, function* (x) {
      yield* smpCallFunctionMany(
        x,
        kernel,
        [1],
        function* f(y, at: number) {
          yield y.store(at, 8, 7);
        },
        word,
        true,
      );
    });
    m.load(1, function* (x) {
      yield x.sti();
      yield x.pause();
    });
    m.run({ maxSteps: 10_000 });
    expect(m.outcome).toBe('ok');
    const sent = m.trace.find((e) => e.ipi !== undefined && e.op !== 'deliver');
    expect(sent?.ipi).toMatchObject({ to: [1], vector: CALL_FUNCTION_VECTOR });
    expect(m.trace.some((e) => e.cpu === 1 && e.accepted?.vector === CALL_FUNCTION_VECTOR)).toBe(true);
  });

  /**
   * CPU0 takes a lock with interrupts off and asks CPU1 to run a function, waiting; CPU1 disables interrupts and
   * spins on that lock. Neither can move: CPU1 never takes the IPI (kernel/smp.c's warning about IRQs off).
   */
  function irqsOffDeadlock() {
    const { m, kernel } = kernelMachine();
    const lock = lockWord(kernel, 0);
    m.symbols.set(lock, 'page lock');
    m.load(0, function* (x) {
      yield* spinLockIrq(x, lock);
      yield* smpCallFunctionMany(x, kernel, [1], function* nothing() {}, 0, true);
    });
    m.load(1, function* (x) {
      yield x.pause();
      yield* spinLockIrq(x, lock);
    });
    return m;
  }

  it('a call with interrupts off to a CPU spinning with interrupts off deadlocks; the report names the waits', () => {
    const m = irqsOffDeadlock();
    const result = m.run({ maxSteps: 10_000 });
    expect(result.outcome).toBe('deadlock');
    expect(result.deadlock).toMatch(/CPU0 spins on csd CPU0->CPU1 \(0xffff8880[0-9a-f]+\) with interrupts off/);
    expect(result.deadlock).toMatch(
      /CPU1 spins on page lock \(0xffff8880[0-9a-f]+\) with interrupts off, IPI 0xfb pending/,
    );
    const explored = explore(irqsOffDeadlock, { strategy: 'exhaustive' });
    expect(explored.violations.map((v) => v.kind)).toEqual(['deadlock']);
    expect(explored.violations[0]!.message).toMatch(/^deadlock: no CPU can move/);
    expect(replay(irqsOffDeadlock, explored.violations[0]!.schedule).kind).toBe('deadlock');
  });
});

describe('flush_tlb_kernel_range and the frame guard', () => {
  /**
   * CPU1 reads a vmalloc page (its TLB caches it) and keeps reading; CPU0 vfrees the area. With the purge's
   * shootdown (vm_unmap_aliases() after vfree), CPU1's next read faults (an oops: the page is gone), never reaching
   * the freed frame.
   */
  function readerAndVfree(shootdown: boolean) {
    const { m, kernel } = kernelMachine();
    const flag = lockWord(kernel, 3);
    const area = lockWord(kernel, 4);
    m.load(0, function* (x) {
      const va = yield* vmalloc(x, kernel, PAGE_SIZE);
      yield x.store(va, 8, 5);
      yield x.store(area, 8, va);
      yield x.spinUntil(flag, 8, (v) => v === 1); // CPU1 has read it
      if (shootdown) {
        // vfree() does not flush (lazily); vm_unmap_aliases() purges the lazy areas with a shootdown.
        yield* vfree(x, kernel, va);
        yield* purgeVmapAreaLazy(x, kernel);
      } else {
        // A broken vfree: unmap and free with only a local INVLPG (no shootdown).
        const pte = yield* walkToEntry(x, kernel, kernel.initMm, va, 1, false);
        const lo: number = yield x.load(direct(pte), 4);
        yield x.store(direct(pte), 8, 0);
        yield x.invlpg(va);
        yield x.atomic(LOCK.ZONE, () => {
          kernel.zone.freeBlock(entryFrame(lo, 0) / PAGE_SIZE, 0);
          return 0;
        });
      }
      yield x.store(flag, 8, 2);
    });
    m.load(1, function* (x) {
      yield x.sti();
      yield x.spinUntil(area, 8, (v) => v !== 0);
      const va: number = yield x.load(area, 8);
      yield x.load(va, 8);
      yield x.store(flag, 8, 1);
      yield x.spinUntil(flag, 8, (v) => v === 2);
      yield x.load(va, 8); // through the TLB entry made before the free
    });
    return m;
  }

  it('without a shootdown, a read through a stale TLB entry of a freed frame is a use after free', () => {
    const result = readerAndVfree(false).run({ maxSteps: 100_000 });
    expect(result.outcome).toBe('use-after-free');
    expect(result.stop?.cpu).toBe(1);
    expect(result.stop?.message).toMatch(/^use after free: CPU 1 accesses 0xffffc9[0-9a-f]+ in frame 0x[0-9a-f]+/);
  });

  it('with the purge after vfree the stale entry is gone first: the read faults (an oops), no use after free', () => {
    const result = readerAndVfree(true).run({ maxSteps: 100_000 });
    expect(result.outcome).toBe('oops');
    expect(result.stop?.cpu).toBe(1);
    expect(result.stop?.message).toMatch(/unable to handle page fault/);
  });

  it('flushTlbKernelRange drops the range from every CPU', () => {
    const { m, kernel } = kernelMachine(3);
    const va = m.map(0xffffc90002000000n, { writable: true });
    for (const id of [1, 2]) {
      m.load(id, function* (x) {
        yield x.sti();
        yield x.load(va, 8);
        for (let i = 0; i < 20; i++) yield x.pause();
      });
    }
    m.load(0, function* (x) {
      for (let i = 0; i < 4; i++) yield x.pause();
      yield x.load(va, 8);
      yield* flushTlbKernelRange(x, kernel, va, va + PAGE_SIZE);
    });
    m.run({ maxSteps: 10_000 });
    expect(m.outcome).toBe('ok');
    for (const cpu of m.cpus) expect(cpu.tlb.entries().some((e) => e.va === va)).toBe(false);
  });
});
