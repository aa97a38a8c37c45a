import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { Machine } from '../../src/machine/machine.ts';
import { type CompactOptions, type CompactResult, compactZone } from '../../src/mm/compaction.ts';
import { COMPACT } from '../../src/mm/compaction-control.ts';
import { type Kernel, LOCK, OWNER } from '../../src/mm/kernel.ts';
import { direct, type KernelProgram } from '../../src/mm/kernel-page-tables.ts';
import { LRU } from '../../src/mm/lru.ts';
import { migratePage, type ProtocolName } from '../../src/mm/migrate.ts';
import { addPageCachePage, removePageCachePage } from '../../src/mm/page-cache.ts';
import { lockWord } from '../../src/mm/smp.ts';
import { contextSwitch, runningTask, taskCreate } from '../../src/mm/task.ts';
import { vmalloc } from '../../src/mm/vmalloc.ts';
import { PAGE_SIZE } from '../../src/mmu/address.ts';
import { InputError } from '../../src/mmu/input-error.ts';

const MiB = 1024 * 1024;

/**
 * CPU0 fills the zone with page-cache pages (each holding its id), frees every other one (so no order-1 block is
 * free), then compacts for `order`.
 */
function fragmentedCache(order: number) {
  const m = Machine.create({ cpus: 1, trace: false, memory: 16 * MiB, kernel: {} });
  const kernel = m.kernel!;
  const zone = kernel.zone;
  let result: CompactResult | undefined;
  let freeBefore = -1;
  m.load(0, function* (x: Assembler) {
    const pages: number[] = [];
    for (let id = 0; ; id++) {
      const pfn: number = yield x.atomic(LOCK.ZONE, () => addPageCachePage(kernel, id));
      if (pfn < 0) break;
      yield x.store(direct(pfn * PAGE_SIZE), 8, 1000 + id);
      pages.push(id);
    }
    for (const id of pages) {
      if (id % 2 === 1) continue;
      yield x.atomic(LOCK.ZONE, () => {
        removePageCachePage(kernel, id);
        return 0;
      });
    }
    freeBefore = yield x.atomic(LOCK.ZONE, () => zone.freePages);
    result = yield* compactZone(x, kernel, order < 0 ? {} : { order });
  });
  m.run({ maxSteps: 5_000_000 });
  return { m, kernel, result: () => result!, freeBefore: () => freeBefore };
}

describe('compaction', () => {
  it('moves page-cache pages up until a free block of the wanted order exists; no page lost, data intact', () => {
    const { m, kernel, result, freeBefore } = fragmentedCache(4);
    expect(m.outcome).toBe('ok');
    expect(result()).toMatchObject({ success: true });
    expect(result().moved).toBeGreaterThan(0);
    expect(
      kernel.zone
        .buddyinfo()
        .free.slice(4)
        .some((n) => n > 0),
    ).toBe(true);
    // No page lost: every page-cache page is where the registry says, holding its own id.
    expect(kernel.pages.freePagesWithPcp).toBe(freeBefore());
    for (const [id, pfn] of kernel.lru.entries(LRU.FILE)) {
      expect(kernel.lru.pfnOf(id, LRU.FILE)).toBe(pfn);
      expect(kernel.zone.ownerOf(pfn)).toBe(OWNER.PAGE_CACHE);
      expect(m.memory.read64(pfn * PAGE_SIZE)).toBe(1000 + id);
    }
  });

  it('compaction_suitable: with too few free pages for a costly order, compaction is skipped and moves nothing', () => {
    const { m, result } = fragmentedCache(10);
    expect(m.outcome).toBe('ok');
    // 8 MiB of zone, half in use: the low watermark plus compact_gap(10) = 2048 pages is more than is free.
    expect(result()).toMatchObject({ result: COMPACT.SKIPPED, moved: 0, success: false });
  });

  it('a whole-zone compaction (compact_memory) runs until the scanners meet', () => {
    const { m, result } = fragmentedCache(-1);
    expect(m.outcome).toBe('ok');
    expect(result().result).toBe(COMPACT.COMPLETE);
    expect(result().moved).toBeGreaterThan(0);
    expect(result().migrateScanned).toBeGreaterThan(0);
    expect(result().freeScanned).toBeGreaterThan(0);
  });

  /** A task runs on a vmalloc'ed stack on CPU1; CPU0 compacts the zone with vmalloc pages movable by `protocol`. */
  function compactUnderTask(protocol: ProtocolName) {
    const m = Machine.create({ cpus: 2, trace: false, memory: 16 * MiB, kernel: {}, ipiDelivery: 'scheduled' });
    const kernel = m.kernel!;
    const running = lockWord(kernel, 8);
    const done = lockWord(kernel, 9);
    m.load(1, function* (x: Assembler) {
      const boot = runningTask('boot', kernel.initMm, m.boot!.taskStacks[1]!);
      const task = yield* taskCreate(
        x,
        kernel,
        'worker',
        kernel.initMm,
        function* worker(y: Assembler) {
          for (let round = 0; round < 200; round++) {
            yield y.store(running, 8, 1);
            const stop: number = yield y.load(done, 8);
            if (stop) return;
            yield y.push(round);
            const back: number = yield y.pop();
            yield y.assert(back === round, `the stack gave back ${back}`);
          }
        },
        [],
      );
      yield x.sti();
      yield* contextSwitch(x, kernel, boot, task!, { syncStack: false });
    });
    m.load(0, function* (x: Assembler) {
      yield x.sti();
      // Some vmalloc pages to move too; then page-cache pages everywhere else, every other one freed, so that every
      // pageblock has free pages to receive migrated ones (a wholly free pageblock is never a target).
      yield* vmalloc(x, kernel, 8 * PAGE_SIZE);
      const ids: number[] = [];
      for (let id = 0; ; id++) {
        const pfn: number = yield x.atomic(LOCK.ZONE, () => addPageCachePage(kernel, id));
        if (pfn < 0) break;
        ids.push(id);
      }
      for (const id of ids) {
        if (id % 2 !== 0) continue;
        yield x.atomic(LOCK.ZONE, () => {
          removePageCachePage(kernel, id);
          return 0;
        });
      }
      yield x.spinUntil(running, 8, (v) => v === 1);
      const r = yield* compactZone(x, kernel, { protocol, taskCpu: 1 });
      yield x.assert(r.movedVmalloc > 0, 'vmalloc pages moved');
      yield x.store(done, 8, 1);
    });
    return m;
  }

  it("compacting under a running task's VMAP stack double-faults with naive and works with ipi-switcheroo", () => {
    const naive = compactUnderTask('naive');
    expect(naive.run({ maxSteps: 2_000_000 }).outcome).toBe('double-fault');
    const switcheroo = compactUnderTask('ipi-switcheroo');
    expect(switcheroo.run({ maxSteps: 2_000_000 }).outcome).toBe('ok');
  });
});

describe('compaction and migration options', () => {
  const refused: [string, (x: Assembler, k: Kernel) => KernelProgram<unknown>, RegExp][] = [
    [
      'an order past MAX_ORDER',
      (x, k) => compactZone(x, k, { order: 99 }),
      /compactZone order 99 must be an integer in 0\.\.10/,
    ],
    [
      'a chunk that is not a power of two',
      (x, k) => compactZone(x, k, { chunk: 12 }),
      /compactZone chunk 12 must be a power of two/,
    ],
    [
      'an unknown protocol',
      (x, k) => compactZone(x, k, { protocol: 'nope' as ProtocolName }),
      /migration protocol 'nope' is not one of/,
    ],
    ['an unknown option', (x, k) => compactZone(x, k, { bogus: 1 } as CompactOptions), /unknown option 'bogus'/],
    [
      'a taskCpu past the last CPU',
      (x, k) => migratePage(x, k, 0x1000, 'naive', { taskCpu: 5 }),
      /migratePage taskCpu 5/,
    ],
    ['an unaligned address', (x, k) => migratePage(x, k, 0x1001, 'naive'), /4097 is not a 4 KiB aligned address/],
  ];
  for (const [what, call, message] of refused) {
    it(`${what} is refused with an InputError before the first step, leaving the zone untouched`, () => {
      const m = Machine.create({ cpus: 1, trace: false, memory: 16 * MiB, kernel: {} });
      const kernel = m.kernel!;
      const before = kernel.zone.buddyinfo().free.join();
      m.load(0, function* (x: Assembler) {
        yield* call(x, kernel);
      });
      let error: unknown;
      try {
        m.run({ maxSteps: 1000 });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InputError);
      expect(String(error)).toMatch(message);
      expect(kernel.zone.buddyinfo().free.join()).toBe(before);
    });
  }
});
