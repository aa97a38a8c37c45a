import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BootFrameAllocator, PageTableEditor } from '../../src/machine/page-tables.ts';
import { HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, LAYOUT, PAGE_SIZE } from '../../src/mmu/address.ts';
import { PhysicalMemory } from '../../src/mmu/physical-memory.ts';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** The direct map's base (1 GiB aligned; the ranges start 0 to 1,536 2 MiB units past it). */
const DIRECT_MAP = LAYOUT.directMap;

function editor(): PageTableEditor {
  const memory = new PhysicalMemory(64 * MiB);
  const frames = new BootFrameAllocator(PAGE_SIZE, 64 * MiB);
  return new PageTableEditor(memory, frames.alloc(), frames);
}

describe('the boot page-table editor', () => {
  it('maps a range with the largest page each address allows: 1 GiB where both sides are aligned and a whole GiB remains (property)', () => {
    // The rule as mapLargeRange's comment gives it, chunk by chunk: what its counting in 2 MiB units must match.
    const range = fc.record({
      vaUnits: fc.integer({ min: 0, max: 3 * 512 }),
      paUnits: fc.oneof(fc.integer({ min: 0, max: 3 * 512 }), fc.constant(0.5)),
      bytes: fc.integer({ min: 1, max: 3 * GiB }),
    });
    fc.assert(
      fc.property(range, ({ vaUnits, paUnits, bytes }) => {
        const va = DIRECT_MAP + vaUnits * LARGE_PAGE_SIZE;
        const pa = paUnits * LARGE_PAGE_SIZE;
        const pt = editor();
        pt.mapLargeRange(va, pa, bytes);
        for (let offset = 0; offset < bytes; ) {
          const huge = (va + offset) % HUGE_PAGE_SIZE === 0 && (pa + offset) % HUGE_PAGE_SIZE === 0;
          const size = huge && bytes - offset >= HUGE_PAGE_SIZE ? HUGE_PAGE_SIZE : LARGE_PAGE_SIZE;
          const m = pt.lookup(va + offset)!;
          expect(m.pageSize, `the page at offset ${offset}`).toBe(size);
          expect(m.pte.address, `the frame at offset ${offset}`).toBe(pa + offset - ((pa + offset) % PAGE_SIZE));
          offset += size;
        }
        expect(pt.lookup(va + Math.ceil(bytes / LARGE_PAGE_SIZE) * LARGE_PAGE_SIZE)).toBeUndefined();
      }),
      {
        numRuns: 150,
        // A range a byte short of a GiB takes 2 MiB pages (its last one reaching past), a byte over takes a 1 GiB
        // page and a 2 MiB one; a physical start inside a 2 MiB page never takes a 1 GiB page.
        examples: [
          [{ vaUnits: 0, paUnits: 0, bytes: GiB - 1 }],
          [{ vaUnits: 0, paUnits: 512, bytes: GiB + 1 }],
          [{ vaUnits: 1, paUnits: 1, bytes: 2 * GiB }],
          [{ vaUnits: 0, paUnits: 0.5, bytes: 2 * GiB }],
        ],
      },
    );
  });
});
