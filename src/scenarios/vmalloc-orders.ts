import type { Assembler } from '../cpu/assembler.ts';
import { Machine } from '../machine/machine.ts';
import { Prng } from '../machine/schedule.ts';
import { MIGRATETYPE } from '../mm/buddy.ts';
import { LOCK, OWNER, type VmallocPolicy } from '../mm/kernel.ts';
import { vfree, vmalloc, vmallocHuge } from '../mm/vmalloc.ts';
import { VMALLOC_ORDERS } from './listing.ts';
import type { Scenario } from './scenario.ts';

// The vmalloc family (docs/scenarios/vmalloc.md): one seeded workload of vmalloc/vfree of mixed sizes beside other
// allocations (page-cache-like MOVABLE pages and slab-like UNMOVABLE ones, some freed, some kept), run under one
// backing policy. Its report: the orders vmalloc obtained, buddyinfo at the end, and the fragmentation index for
// orders 3, 9 and 10. Run it under each policy with the same seed to compare them.

const SIZES = [4096, 8192, 16384, 32768, 65536, 262144, 1 << 20, 4 << 20];

export const vmallocOrders: Scenario = {
  ...VMALLOC_ORDERS,
  build(p, o) {
    const policy = p.policy as VmallocPolicy;
    const seed = p.seed as number;
    const ops = p.ops as number;
    const machine = Machine.create({ cpus: 1, trace: o.trace, memory: 64 * 1024 * 1024, kernel: { vmalloc: policy } });
    const kernel = machine.kernel!;
    const orders = new Map<number, number>();
    let failures = 0;
    machine.load(0, function* workload(x: Assembler) {
      // The workload is chosen by a seeded PRNG inside the program: the same seed gives the same run.
      const prng = new Prng(seed);
      const areas: number[] = [];
      const pages: { pfn: number; order: number }[] = [];
      for (let i = 0; i < ops; i++) {
        const roll = prng.below(10);
        if (roll < 4) {
          // Areas of 2 MiB or more are asked for as large tables are, with vmalloc_huge() (VM_ALLOW_HUGE_VMAP).
          const size = SIZES[prng.below(SIZES.length)]!;
          const va = size >= 2 << 20 ? yield* vmallocHuge(x, kernel, size) : yield* vmalloc(x, kernel, size);
          if (va === 0) failures++;
          else {
            areas.push(va);
            // Counted under the area lock, as a kernel reading its vmap areas would (a step like any other).
            yield x.atomic(LOCK.VMAP_AREA, () => {
              for (const b of kernel.vmap.find(va)!.blocks) orders.set(b.order, (orders.get(b.order) ?? 0) + 1);
              return 0;
            });
          }
        } else if (roll < 6 && areas.length > 0) {
          const [va] = areas.splice(prng.below(areas.length), 1);
          yield* vfree(x, kernel, va!);
        } else if (roll < 9) {
          const type = roll === 8 ? MIGRATETYPE.UNMOVABLE : MIGRATETYPE.MOVABLE;
          const order = prng.below(3);
          const pfn = yield x.atomic(LOCK.ZONE, () => kernel.zone.alloc(order, type, OWNER.OTHER));
          if (pfn >= 0) pages.push({ pfn, order });
        } else if (pages.length > 0) {
          const [page] = pages.splice(prng.below(pages.length), 1);
          yield x.atomic(LOCK.ZONE, () => {
            kernel.zone.freeBlock(page!.pfn, page!.order);
            return 0;
          });
        }
      }
    });
    return {
      machine,
      run: { schedule: 'round-robin', maxSteps: 5_000_000 },
      report: () => {
        const info = kernel.zone.buddyinfo();
        return {
          policy,
          'vmalloc blocks by order': Object.fromEntries([...orders.entries()].sort((a, b) => a[0] - b[0])),
          'vmalloc failures': failures,
          buddyinfo: info.free,
          'free pages': info.freePages,
          'fragmentation index (order 3, 9, 10)': [3, 9, 10].map((order) => kernel.zone.fragmentationIndex(order)),
        };
      },
    };
  },
};
