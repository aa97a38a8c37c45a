// The memory-management layer, timed in a plain node process on the compiled package (dist/):
//  - buddy operations per second: BuddyAllocator alloc + free of orders 0..3 (the zone lock's work, no CPU steps);
//  - page-allocator fast-path operations per second: PageAllocator allocFast + free of order 0 through the per-CPU
//    lists, at 1 GiB;
//  - compaction pages scanned per second: an explicit (compact_memory) compaction of 1 GiB of half-freed page
//    cache, run as a kernel program; the migrate and free scanners' pages, and the pages migrated;
//  - the fragmentation experiment: one 1 GiB stress-highalloc run of 100,000 operations, and one at the CLI's
//    default 4,000 operations.
// Wall-clock figures, median of ROUNDS rounds, spread min..max. One JSON line at the end.
import {
  addPageCachePage,
  BuddyAllocator,
  compactZone,
  GFP_KERNEL,
  Machine,
  PageAllocator,
  removePageCachePage,
  runFrag,
} from '../dist/index.js';

const ROUNDS = 3;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const spread = (xs) => [Math.min(...xs), Math.max(...xs)];
const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;
const GiB_PAGES = 262144;

/** alloc + free pairs of orders 0..3 on a 1 GiB zone, half of it held; operations (allocs and frees) per second. */
function buddyRate() {
  const zone = new BuddyAllocator(0x800, GiB_PAGES - 2048);
  const held = [];
  let seed = 1;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  while (zone.freePages > zone.frames / 2) {
    const order = next() % 4;
    held.push([zone.alloc(order, next() % 3, 1), order]);
  }
  const OPS = 400_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < OPS / 2; i++) {
    const order = next() % 4;
    const pfn = zone.alloc(order, next() % 3, 1);
    if (pfn >= 0) held.push([pfn, order]);
    const k = next() % held.length;
    const [p, o] = held[k];
    held[k] = held[held.length - 1];
    held.pop();
    if (p >= 0) zone.freeBlock(p, o);
  }
  return OPS / seconds(start);
}

/** allocFast + free of order 0 through CPU 0's per-CPU list on a 1 GiB zone; operations per second. */
function fastPathRate() {
  const pages = new PageAllocator(new BuddyAllocator(0x800, GiB_PAGES - 2048), { cpus: 2 });
  const held = [];
  const OPS = 400_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < OPS / 2; i++) {
    held.push(pages.allocFast(0, GFP_KERNEL, 0, 1));
    if (held.length > 2000) pages.free(0, held.shift(), 0);
  }
  return OPS / seconds(start);
}

/** compact_memory over 1 GiB of page cache with every other page freed. */
function compaction() {
  const m = Machine.create({ cpus: 1, trace: false, memory: 1024 * 1024 * 1024, kernel: {} });
  const kernel = m.kernel;
  let result;
  m.load(0, function* (x) {
    yield x.atomic('zone', () => {
      const ids = [];
      for (let id = 0; addPageCachePage(kernel, id) >= 0; id++) ids.push(id);
      for (const id of ids) if (id % 2 === 0) removePageCachePage(kernel, id);
      return 0;
    });
    result = yield* compactZone(x, kernel);
  });
  const start = process.hrtime.bigint();
  m.run({ maxSteps: 50_000_000 });
  const s = seconds(start);
  return {
    scannedPerSecond: (result.migrateScanned + result.freeScanned) / s,
    migratedPerSecond: result.moved / s,
    result,
  };
}

function fragRun(operations) {
  const start = process.hrtime.bigint();
  const r = runFrag({
    workload: 'stress-highalloc',
    policy: 'order0',
    variant: 'default',
    seed: 1,
    memory: 1024,
    operations,
  });
  return { seconds: seconds(start), steps: r.steps };
}

const buddy = [];
const fast = [];
const comp = [];
for (let r = 0; r < ROUNDS; r++) {
  buddy.push(buddyRate());
  fast.push(fastPathRate());
  comp.push(compaction());
}
const frag100k = [];
const fragDefault = [];
for (let r = 0; r < ROUNDS; r++) {
  frag100k.push(fragRun(100_000));
  fragDefault.push(fragRun(4000));
}
console.log(
  JSON.stringify({
    buddyOpsPerSecond: median(buddy),
    buddySpread: spread(buddy),
    fastPathOpsPerSecond: median(fast),
    fastPathSpread: spread(fast),
    compactionScannedPerSecond: median(comp.map((c) => c.scannedPerSecond)),
    compactionScannedSpread: spread(comp.map((c) => c.scannedPerSecond)),
    compactionMigratedPerSecond: median(comp.map((c) => c.migratedPerSecond)),
    compactionScanned: comp[0].result.migrateScanned + comp[0].result.freeScanned,
    compactionMoved: comp[0].result.moved,
    frag100kSeconds: median(frag100k.map((f) => f.seconds)),
    frag100kSpread: spread(frag100k.map((f) => f.seconds)),
    frag100kSteps: frag100k[0].steps,
    fragDefaultSeconds: median(fragDefault.map((f) => f.seconds)),
    fragDefaultSpread: spread(fragDefault.map((f) => f.seconds)),
  }),
);
