import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { MachineImage } from '../../src/machine/image.ts';
import { Machine } from '../../src/machine/machine.ts';
import { MAX_ORDER } from '../../src/mm/buddy.ts';
import { OWNER } from '../../src/mm/kernel.ts';
import { vfree, vmalloc, vmallocHuge } from '../../src/mm/vmalloc.ts';
import { lazyMaxPages, purgeVmapAreaLazy } from '../../src/mm/vmalloc-purge.ts';
import { LAYOUT, PAGE_SIZE } from '../../src/mmu/address.ts';
import { InputError } from '../../src/mmu/input-error.ts';

// vmalloc and vfree as kernel programs: the area, its backing by policy, every entry written with stores, and an
// exact undo on failure.

const MiB = 1024 * 1024;

function kernelMachine(vmalloc: 'order0' | 'high-order' | 'huge' = 'order0', memory = 64 * MiB) {
  return Machine.create({ cpus: 1, memory, kernel: { vmalloc } });
}

describe('vmalloc and vfree', () => {
  it('vmalloc(16 KiB) maps four fresh pages after the boot stacks; stores and loads go through', () => {
    const m = kernelMachine();
    const k = m.kernel!;
    const free = k.pages.freePagesWithPcp;
    let va = 0;
    let read = 0;
    m.load(0, function* (x: Assembler) {
      va = yield* vmalloc(x, k, 16 * 1024);
      yield x.store(va + 12 * 1024, 8, 0x1234);
      read = yield x.load(va + 12 * 1024, 8);
    });
    expect(m.run().outcome).toBe('ok');
    // The boot's VMAP stack (its guard page below it, and a guard after) comes first in the vmalloc space.
    const stack = m.boot!.taskStacks[0]!;
    expect(va).toBe(stack.top + PAGE_SIZE);
    expect(read).toBe(0x1234);
    const area = k.vmap.find(va)!;
    expect(area.blocks.map((b) => b.order)).toEqual([0, 0, 0, 0]);
    // Four data pages (the bulk allocator refilled the per-CPU list from the zone; those are still free); the
    // stacks' page table already covers this 2 MiB.
    expect(free - k.pages.freePagesWithPcp).toBe(4);
    // Every entry was written by the program: the trace shows the stores through the direct map.
    expect(m.trace.filter((e) => e.op === 'store').length).toBeGreaterThanOrEqual(8);
  });

  it('an area reaching a 2 MiB range with no page table gets one from the zone, zeroed, published with cmpxchg', () => {
    const m = kernelMachine();
    const k = m.kernel!;
    let va = 0;
    m.load(0, function* (x: Assembler) {
      va = yield* vmalloc(x, k, 2 * MiB);
    });
    expect(m.run().outcome).toBe('ok');
    const tables = [...k.zone.owner].filter((o) => o === OWNER.PAGE_TABLE).length;
    expect(tables).toBe(1);
    expect(m.trace.filter((e) => e.op === 'fill')).toHaveLength(512); // clear_page of the new table
    expect(m.trace.filter((e) => e.op === 'cmpxchg')).toHaveLength(1);
    expect(m.physicalAddress(va + 2 * MiB - PAGE_SIZE)).toBe(k.vmap.find(va)!.blocks[511]!.pfn * PAGE_SIZE);
  });

  it('high-order backs 20 KiB with an order-2 block and an order-0 page (ilog2 of what remains, stepping down)', () => {
    const m = kernelMachine('high-order');
    let va = 0;
    m.load(0, function* (x: Assembler) {
      va = yield* vmalloc(x, m.kernel!, 20 * 1024);
    });
    expect(m.run().outcome).toBe('ok');
    expect(m.kernel!.vmap.find(va)!.blocks.map((b) => b.order)).toEqual([2, 0]);
    expect(m.physicalAddress(va + 4 * PAGE_SIZE)).toBe(m.kernel!.vmap.find(va)!.blocks[1]!.pfn * PAGE_SIZE);
  });

  it('vmalloc_huge under the huge policy maps 4 MiB with two 2 MiB PMD leaves, 2 MiB aligned', () => {
    const m = kernelMachine('huge');
    let va = 0;
    m.load(0, function* (x: Assembler) {
      va = yield* vmallocHuge(x, m.kernel!, 4 * MiB);
      yield x.store(va + 3 * MiB, 8, 7);
    });
    expect(m.run().outcome).toBe('ok');
    expect(va % (2 * MiB)).toBe(0);
    const area = m.kernel!.vmap.find(va)!;
    expect(area.huge).toBe(true);
    expect(area.blocks.map((b) => b.order)).toEqual([9, 9]);
    expect(() => m.entryAddress(va, 1)).toThrow(/a 2 MiB page/);
    expect(m.physicalAddress(va + 3 * MiB)).toBe(area.blocks[1]!.pfn * PAGE_SIZE + MiB);
    // split_page(): every 4 KiB page is an order-0 page of its own, freed one by one.
    expect(area.pages).toHaveLength(1024);
    expect(m.kernel!.zone.orderAt(area.blocks[1]!.pfn + 1)).toBe(0);
  });

  it('huge mappings are opt-in (VM_ALLOW_HUGE_VMAP, 5.18+): a plain vmalloc of 4 MiB gets small pages', () => {
    const m = kernelMachine('huge');
    let va = 0;
    m.load(0, function* (x: Assembler) {
      va = yield* vmalloc(x, m.kernel!, 4 * MiB);
    });
    expect(m.run().outcome).toBe('ok');
    const area = m.kernel!.vmap.find(va)!;
    expect(area.huge).toBe(false);
    expect(new Set(area.blocks.map((b) => b.order))).toEqual(new Set([0]));
  });

  it('a huge area that cannot be backed falls back to small pages for the real size, not the rounded one', () => {
    const m = kernelMachine('huge', 16 * MiB); // the zone: 8 MiB, of which no 2 MiB block will be free
    const k = m.kernel!;
    let va = 0;
    m.load(0, function* (x: Assembler) {
      // Pin one page in every pageblock, so no order-9 block can be had.
      yield x.atomic('zone', () => {
        const held = [];
        for (;;) {
          const p = k.zone.alloc(0, 0, OWNER.OTHER);
          if (p < 0) break;
          held.push(p);
        }
        for (const p of held) if ((p - k.zone.firstPfn) % 512 !== 7) k.zone.freeBlock(p, 0);
        return 0;
      });
      va = yield* vmallocHuge(x, k, 2 * MiB + PAGE_SIZE);
    });
    expect(m.run().outcome).toBe('ok');
    const area = k.vmap.find(va)!;
    expect(area.huge).toBe(false);
    expect(area.pages).toHaveLength(513); // 2 MiB + 4 KiB, not 1024 pages
    expect(area.size).toBe(2 * MiB + PAGE_SIZE);
    expect(k.vmallocStats.hugeFallbacks).toBe(1);
  });

  it('the page after an area is its unmapped guard: an access there faults', () => {
    const m = kernelMachine();
    let va = 0;
    m.load(0, function* (x: Assembler) {
      va = yield* vmalloc(x, m.kernel!, PAGE_SIZE);
      yield x.load(va + PAGE_SIZE, 8);
    });
    expect(m.run().outcome).toBe('oops');
    expect(m.cpu(0).lastException).toMatchObject({ vector: 14, cr2: va + PAGE_SIZE });
  });

  it('vfree unmaps without a flush and frees every page at once; the range waits for the lazy purge', () => {
    const m = kernelMachine('high-order');
    const k = m.kernel!;
    let va = 0;
    let free = 0;
    m.load(0, function* (x: Assembler) {
      va = yield* vmalloc(x, k, 64 * 1024);
      yield x.store(va, 8, 1); // cached in this CPU's TLB
      free = k.pages.freePagesWithPcp;
      yield* vfree(x, k, va);
      // Linux does not flush at vfree: the stale translation still reaches the freed frame. Reading a vfree()d
      // address is the caller's use after free, and the frame guard says so.
      yield x.load(va, 8);
    });
    expect(m.run().outcome).toBe('use-after-free');
    expect(k.pages.freePagesWithPcp - free).toBe(16); // the tables stay, as Linux keeps vmalloc page tables
    expect(k.vmap.find(va)).toBeUndefined();
    expect(k.vmap.lazyAreas().map((a) => a.start)).toEqual([va]);
    expect(k.vmapLazyNr).toBe(17); // its pages and its guard page
  });

  it('after the purge (vm_unmap_aliases) the TLBs are flushed and the range is free: an access faults', () => {
    const m = kernelMachine('high-order');
    const k = m.kernel!;
    let va = 0;
    m.load(0, function* (x: Assembler) {
      va = yield* vmalloc(x, k, 64 * 1024);
      yield x.store(va, 8, 1);
      yield* vfree(x, k, va);
      yield* purgeVmapAreaLazy(x, k);
      yield x.load(va, 8);
    });
    expect(m.run().outcome).toBe('oops');
    expect(k.vmap.lazyAreas()).toEqual([]);
    expect(k.vmapLazyNr).toBe(0);
    expect(k.vmapPurges).toBe(1);
    expect(m.cpu(0).lastException).toMatchObject({ vector: 14, errorCode: 0, cr2: va });
  });

  it('lazy_max_pages is 32 MiB of pages per fls(CPUs); past it, one purge flushes many vfrees with one IPI round', () => {
    expect(lazyMaxPages(1)).toBe(8192);
    expect(lazyMaxPages(2)).toBe(16384);
    expect(lazyMaxPages(4)).toBe(24576);
    const m = Machine.create({ cpus: 2, memory: 256 * MiB, kernel: {}, ipiDelivery: 'scheduled' });
    const k = m.kernel!;
    m.load(1, function* (x: Assembler) {
      yield x.sti();
    });
    m.load(0, function* (x: Assembler) {
      // 40 areas of 2 MiB (513 pages with the guard each): the 32nd vfree passes 16384 and purges.
      for (let i = 0; i < 40; i++) {
        const va = yield* vmalloc(x, k, 2 * MiB);
        yield* vfree(x, k, va);
      }
    });
    expect(m.run({ maxSteps: 20_000_000 }).outcome).toBe('ok');
    expect(k.vmapPurges).toBe(1);
    expect(m.ipiBus.sentCount).toBe(1); // eager flushing would have sent one per vfree
    expect(k.vmapLazyNr).toBe(8 * 513);
  });

  it('a vmalloc the zone cannot back returns 0 (NULL) and undoes everything', () => {
    const m = kernelMachine('order0', 16 * MiB); // the zone holds one 4 MiB block
    const k = m.kernel!;
    const free = k.pages.freePagesWithPcp;
    const areas = k.vmap.list.length; // the boot stack's
    let va = -1;
    m.load(0, function* (x: Assembler) {
      va = yield* vmalloc(x, k, 8 * MiB);
    });
    expect(m.run().outcome).toBe('ok');
    expect(va).toBe(0);
    expect(k.pages.freePagesWithPcp).toBe(free);
    // The failed area was __vfree()d: its range waits on the lazy list like any other.
    expect(k.vmap.list.filter((a) => !a.lazy)).toHaveLength(areas);
    expect(k.vmallocStats.failures).toBe(1);
  });

  it('a size beyond the vmalloc space, zero or negative gets 0 (NULL), as in Linux, with nothing reserved', () => {
    const m = kernelMachine();
    const k = m.kernel!;
    const areas = k.vmap.list.length;
    const results: number[] = [];
    m.load(0, function* (x: Assembler) {
      for (const size of [LAYOUT.vmallocEnd - LAYOUT.vmallocStart + 1, 0, -PAGE_SIZE]) {
        results.push(yield* vmalloc(x, k, size));
      }
    });
    expect(m.run().outcome).toBe('ok');
    expect(results).toEqual([0, 0, 0]);
    expect(k.vmap.list).toHaveLength(areas);
  });

  it.each([
    ['a size that is not an integer', Number.NaN, undefined, /^vmalloc size NaN must be an integer/],
    ['a size given as a string', '4096', undefined, /^vmalloc size '4096' must be an integer/],
    ['a range with an unknown option', PAGE_SIZE, { from: 0 }, /^vmalloc range has an unknown option 'from'/],
    ['a range start outside the space', PAGE_SIZE, { start: 0 }, /^vmalloc range start 0 must be an integer in/],
    ['a range end before its start', PAGE_SIZE, { start: LAYOUT.vmallocEnd - 2 * PAGE_SIZE, end: 1 }, /range end 1/],
    ['an alignment that is no power of two', PAGE_SIZE, { align: 3 * PAGE_SIZE }, /align 0x3000 is not a power of two/],
  ])('vmalloc refuses %s before its first step, reserving nothing', (_what, size, range, rule) => {
    const m = kernelMachine();
    const k = m.kernel!;
    const areas = k.vmap.list.length;
    const free = k.zone.freePages;
    m.load(0, function* (x: Assembler) {
      yield* vmalloc(x, k, size as number, range as never);
    });
    let error: unknown;
    try {
      m.run();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(rule);
    expect(k.vmap.list).toHaveLength(areas);
    expect(k.zone.freePages).toBe(free);
  });

  it('vfree of an address that is no area is refused (-1) and frees nothing', () => {
    const m = kernelMachine();
    let result = 0;
    m.load(0, function* (x: Assembler) {
      result = yield* vfree(x, m.kernel!, LAYOUT.vmallocStart);
    });
    m.run();
    expect(result).toBe(-1);
  });

  it('sync preallocated gives every top-level entry of the vmalloc space its table at boot', () => {
    const lazy = Machine.create({ cpus: 1, kernel: {} });
    const pre = Machine.create({ cpus: 1, kernel: { sync: 'preallocated' } });
    expect(() => lazy.entryAddress(LAYOUT.vmallocEnd - PAGE_SIZE, 3)).toThrow(/non-present/);
    expect(pre.entryAddress(LAYOUT.vmallocEnd - PAGE_SIZE, 3)).toBeGreaterThan(0);
  });

  it("an image's instances share the kernel object its programs close over, restored at each instantiate", () => {
    const m = kernelMachine();
    const free = m.kernel!.zone.freePages;
    const image = MachineImage.capture(m);
    const a = image.instantiate();
    expect(a.kernel).toBe(m.kernel); // the object kernel programs and handlers were written against
    a.kernel!.zone.alloc(MAX_ORDER, 1);
    expect(a.kernel!.zone.freePages).toBe(free - (1 << MAX_ORDER));
    const b = image.instantiate(); // the next execution: the bookkeeping is the image's again
    expect(b.kernel).toBe(m.kernel);
    expect(b.kernel!.zone.freePages).toBe(free);
    image.reset(b);
    expect(b.kernel!.zone.freePages).toBe(free);
  });

  it('bad kernel options are refused, naming the value', () => {
    expect(() => Machine.create({ kernel: { vmalloc: 'big' as never } })).toThrow(InputError);
    expect(() => Machine.create({ kernel: { vmalloc: 'big' as never } })).toThrow(/kernel option vmalloc 'big'/);
    expect(() => Machine.create({ kernel: {}, boot: false })).toThrow(/needs boot/);
    expect(() => Machine.create({ kernel: {}, memory: 8 * MiB })).toThrow(/too small for a kernel/);
  });
});
