import { describe, expect, it } from 'vitest';
import type { Assembler } from '../../src/cpu/assembler.ts';
import { explore } from '../../src/explore/explore.ts';
import { Machine } from '../../src/machine/machine.ts';
import { compactZone } from '../../src/mm/compaction.ts';
import { LOCK } from '../../src/mm/kernel.ts';
import { addPageCachePage, removePageCachePage } from '../../src/mm/page-cache.ts';
import { lockWord } from '../../src/mm/smp.ts';
import { vmalloc } from '../../src/mm/vmalloc.ts';
import { PAGE_SIZE } from '../../src/mmu/address.ts';

// A small compaction under the checker: with migratable vmalloc, compaction moves a vmalloc page by the kernel's
// migration protocol (migration-entry) while another CPU keeps reading it. The moves are the same programs the
// migration scenarios explore, so every interleaving the checker tries must keep the data and raise no violation.

const MiB = 1024 * 1024;
const BLOCK = 512;

function build() {
  const m = Machine.create({ cpus: 2, trace: false, memory: 16 * MiB, kernel: { vmalloc: 'high-order+migratable' } });
  const kernel = m.kernel!;
  const published = lockWord(kernel, 5);
  m.load(0, function* (x: Assembler) {
    yield x.sti();
    const va = yield* vmalloc(x, kernel, PAGE_SIZE);
    yield x.store(va, 8, 42);
    // One step of set-up: the zone full of page-cache pages, then all freed but every other one in the top two
    // pageblocks (a wholly free pageblock is never a migration target; the vmalloc page is in the lower one).
    yield x.atomic(LOCK.ZONE, () => {
      const zone = kernel.zone;
      const ids: number[] = [];
      for (let id = 0; addPageCachePage(kernel, id) >= 0; id++) ids.push(id);
      for (const id of ids) {
        const pfn = kernel.lru.pfnOf(id, 1);
        const top = pfn - zone.firstPfn >= 2 * BLOCK;
        if (!top || id % 2 === 0) removePageCachePage(kernel, id);
      }
      return 0;
    });
    yield x.store(published, 8, va);
    const r = yield* compactZone(x, kernel);
    yield x.assert(r.movedVmalloc === 1, `compaction moved ${r.movedVmalloc} vmalloc pages`);
  });
  m.load(1, function* (x: Assembler) {
    yield x.sti();
    yield x.spinUntil(published, 8, (v) => v !== 0);
    const va: number = yield x.load(published, 8);
    for (let i = 0; i < 12; i++) {
      const v: number = yield x.load(va, 8);
      yield x.assert(v === 42, `read ${v}`);
    }
  });
  return m;
}

describe('compaction under the checker', () => {
  it('moving a vmalloc page another CPU reads keeps its data under every schedule tried (migration-entry)', () => {
    const result = explore(build, { strategy: 'pct', budget: 16, maxSteps: 100_000 });
    expect(result.violations).toEqual([]);
    expect(result.executions).toBe(16);
  }, 120_000);
});
