import { hostname } from 'node:os';
import createDebug from 'debug';
import type { Redis } from 'ioredis';
import type { Machine } from '../../machine/machine.ts';
import { InputError } from '../../mmu/input-error.ts';
import type { FinalCheck } from '../execution.ts';
import {
  BATCH,
  type Batch,
  COORDINATOR,
  CURRENT,
  connect,
  decodeBatch,
  decodeFingerprints,
  encodeBatch,
  encodeFingerprints,
  GROUP,
  HEARTBEAT_MS,
  keys,
  LOST_AFTER_MS,
  type Order,
  type RunConfig,
  type WorkerReport,
} from './broker.ts';
import { type Arrival, emptyReport, inPathOrder, LevelSearch } from './level-search.ts';

// `x86slice worker`: one process of the distributed search (broker.ts). It joins the run the broker names, builds
// the coordinator's machine (refused if its version or initial state differ), and does what the coordinator orders:
// for a level, take the states sent to its ranges, explore the new ones (level-search.ts), send their successors to
// their ranges, log the new states' fingerprints in the broker, report, and acknowledge. A range it takes over from
// a lost worker starts from the fingerprints that worker logged for the earlier levels, and from its unacknowledged
// entries, claimed (XAUTOCLAIM).

export interface BrokerWorkerOptions {
  readonly broker: string;
  readonly version: string;
  /** This worker's name (default: host and process id). */
  readonly name?: string;
  /** Leave after one run. */
  readonly once: boolean;
  /** Builds the run's machine: the scenario and parameters of its config. */
  readonly resolve: (config: RunConfig) => Promise<{ build: () => Machine; check: FinalCheck | undefined }>;
  readonly log: (line: string) => void;
}

/** DEBUG=x86slice:explore:worker: each level's phases, in ms. */
const debug = createDebug('x86slice:explore:worker');

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** States explored between two looks at the event loop (heartbeats, sends). */
const CHUNK = 64;
/** Stream entries read at once per range. */
const PAGE = 256;

export async function runBrokerWorker(o: BrokerWorkerOptions): Promise<void> {
  const redis = await connect(o.broker);
  const blocking = redis.duplicate();
  blocking.on('error', () => {});
  const name = o.name ?? `${hostname()}-${process.pid}`;
  const served = new Set<string>();
  try {
    for (;;) {
      const run = await redis.get(CURRENT);
      const text = run === null || served.has(run) ? null : await redis.get(keys(run).config);
      // A run whose coordinator went away (no heartbeat) is not joined.
      if (run === null || text === null || (await redis.exists(keys(run).alive(COORDINATOR))) === 0) {
        await sleep(100);
        continue;
      }
      served.add(run);
      const final = await serve(redis, blocking, run, JSON.parse(text) as RunConfig, name, o);
      if (o.once && final) return;
    }
  } finally {
    blocking.disconnect();
    redis.disconnect();
  }
}

async function refuse(redis: Redis, run: string, name: string, reason: string): Promise<never> {
  await redis.xadd(keys(run).refused, '*', 'worker', name, 'reason', reason);
  throw new InputError(`worker ${name} cannot join run ${run}: ${reason}`);
}

/** Serves one run; returns whether the search is over (no run follows it). */
async function serve(
  redis: Redis,
  blocking: Redis,
  run: string,
  config: RunConfig,
  name: string,
  o: BrokerWorkerOptions,
): Promise<boolean> {
  const k = keys(run);
  if (config.version !== o.version) {
    await refuse(
      redis,
      run,
      name,
      `the coordinator runs x86slice ${config.version} and this worker ${o.version}: run the same version everywhere`,
    );
  }
  let made: Awaited<ReturnType<BrokerWorkerOptions['resolve']>>;
  try {
    made = await o.resolve(config);
  } catch (error) {
    // A scenario file missing here, or a parameter this version does not know: the coordinator's log says so too.
    return refuse(redis, run, name, error instanceof Error ? error.message : String(error));
  }
  const { build, check } = made;
  const search = new LevelSearch(build, {
    maxSteps: config.maxSteps,
    tlbEvents: config.tlbEvents,
    cacheEvents: config.cacheEvents,
    check,
    deadWords: config.deadWords,
    ...(config.copiedLive ? { copiedLive: true } : {}),
    ranges: config.ranges,
  });
  const root = search.root;
  if (root.fpA !== config.root[0] || root.fpB !== config.root[1]) {
    await refuse(
      redis,
      run,
      name,
      `scenario ${config.scenario} with ${JSON.stringify(config.params)} builds another machine here than on the ` +
        'coordinator (its initial state differs): give every worker the same scenario file and x86slice build',
    );
  }
  if ((await redis.hsetnx(k.workers, name, String(Date.now()))) === 0) {
    await refuse(redis, run, name, `a worker named ${name} has joined it already: give each worker its own --name`);
  }
  const beat = () => redis.set(k.alive(name), '1', 'PX', LOST_AFTER_MS).catch(() => {});
  await beat();
  const heartbeat = setInterval(beat, HEARTBEAT_MS);
  o.log(`worker ${name}: joined run ${run} (${config.scenario})`);
  try {
    for (;;) {
      const got = await blocking.brpop(k.go(name), 1);
      if (got === null) {
        // The coordinator went away: the run is abandoned (not over: a worker with --once waits for the next).
        if ((await redis.exists(k.alive(COORDINATOR))) === 0) {
          o.log(`worker ${name}: run ${run} abandoned (its coordinator stopped)`);
          return false;
        }
        continue;
      }
      const order = JSON.parse(got[1]) as Order;
      if ('stop' in order) return order.final;
      await doLevel(redis, k, search, name, order);
    }
  } finally {
    clearInterval(heartbeat);
    await redis.del(k.alive(name)).catch(() => {});
    search.detach();
  }
}

type Keys = ReturnType<typeof keys>;

/**
 * The entries of `ranges`' streams this worker has to look at, read through the group: its pending ones (read at an
 * earlier level, or claimed from a lost owner), then new ones; one round trip per page for all the ranges.
 */
async function readLevel(
  redis: Redis,
  k: Keys,
  ranges: readonly number[],
  name: string,
): Promise<Map<number, Batch[]>> {
  const out = new Map<number, Batch[]>(ranges.map((r) => [r, []]));
  const seen = new Set<string>();
  // Per range, its pending entries (from id 0) and then new ones ('>'), in one pipeline; a full page is read on.
  let open: [number, string][] = ranges.flatMap((r) => [
    [r, '0'],
    [r, '>'],
  ]);
  while (open.length > 0) {
    const pipe = redis.pipeline();
    for (const [r, last] of open) pipe.xreadgroup('GROUP', GROUP, name, 'COUNT', PAGE, 'STREAMS', k.range(r), last);
    const replies = (await pipe.exec()) ?? [];
    const next: [number, string][] = [];
    replies.forEach(([error, got], i) => {
      if (error) throw error;
      const [r, last] = open[i]!;
      const entries = (got as [string, [string, string[] | null][]][] | null)?.[0]?.[1] ?? [];
      // A pending entry that was deleted comes back with no fields.
      // (A page of pending entries read on may hold entries the '>' read just delivered: each is taken once.)
      for (const [id, fields] of entries) {
        // (Ids are per stream: two ranges' streams may both have an entry 1733...-0.)
        const key = `${r}:${id}`;
        if (!fields || fields.length === 0 || seen.has(key)) continue;
        seen.add(key);
        out.get(r)!.push(decodeBatch(id, fields));
      }
      if (entries.length === PAGE) next.push([r, last === '>' ? '>' : entries[entries.length - 1]![0]]);
    });
    open = next;
  }
  return out;
}

function* pairs(f: Int32Array): Generator<readonly [number, number]> {
  for (let i = 0; i < f.length; i += 2) yield [f[i]!, f[i + 1]!];
}

/** Takes range `range` over at `level`: its visited set from the log, and the lost owner's pending entries. */
async function takeOver(redis: Redis, k: Keys, search: LevelSearch, range: number, level: number, name: string) {
  search.own(range);
  // The log a page at a time (an entry holds a level's new states of the range: it can be megabytes).
  let from = '-';
  for (;;) {
    const page = (await redis.xrange(k.visited(range), from, '+', 'COUNT', 16)) as [string, string[]][];
    for (const [, fields] of page) {
      if (Number(fields[1]) >= level) continue; // a level not reported: done again
      search.own(range, pairs(decodeFingerprints(fields[3]!)));
    }
    if (page.length < 16) break;
    from = `(${page[page.length - 1]![0]}`;
  }
  let cursor = '0-0';
  do {
    const got = (await redis.xautoclaim(k.range(range), GROUP, name, 0, cursor, 'COUNT', 1000)) as [string, unknown];
    cursor = got[0];
  } while (cursor !== '0-0');
}

async function doLevel(
  redis: Redis,
  k: Keys,
  search: LevelSearch,
  name: string,
  order: Exclude<Order, { stop: true }>,
) {
  const started = Date.now();
  const replayedBefore = search.replayed;
  for (const range of order.takeover) await takeOver(redis, k, search, range, order.level, name);
  for (const range of order.ranges) if (!search.owns(range)) search.own(range);
  const report = emptyReport();
  const out = new Map<number, Arrival[]>();
  const full: number[] = [];
  let sent = 0;
  let messages = 0;
  const emit = (range: number, fpA: number, fpB: number, path: string) => {
    let batch = out.get(range);
    if (batch === undefined) {
      batch = [];
      out.set(range, batch);
    }
    batch.push({ fpA, fpB, path });
    sent++;
    if (batch.length === BATCH) full.push(range);
  };
  /** Queues the batches of `ranges` on `pipe` (successors for the next level). */
  const queue = (pipe: ReturnType<Redis['pipeline']>, ranges: Iterable<number>) => {
    for (const range of ranges) {
      const batch = out.get(range);
      if (batch === undefined || batch.length === 0) continue;
      pipe.xadd(k.range(range), '*', ...encodeBatch(order.level + 1, batch));
      messages++;
      out.set(range, []);
    }
  };
  const flush = async (ranges: Iterable<number>) => {
    const pipe = redis.pipeline();
    queue(pipe, ranges);
    await pipe.exec();
  };
  const done = new Map<number, string[]>();
  const found = new Map<number, number[]>();
  const t0 = performance.now();
  const entries = await readLevel(redis, k, order.ranges, name);
  const t1 = performance.now();
  // Every range's new states in one order, so that the machine goes back only as far as two paths differ.
  const states: Arrival[] = [];
  for (const range of order.ranges) {
    const ids: string[] = [];
    const arrivals: Arrival[] = [];
    for (const b of entries.get(range) ?? []) {
      if (b.level > order.level) continue; // the next level's: stays pending until then
      ids.push(b.id);
      if (b.level === order.level) arrivals.push(...b.states);
    }
    done.set(range, ids);
    const fresh = search.fresh(range, arrivals);
    const fps: number[] = [];
    for (const a of fresh) fps.push(a.fpA, a.fpB);
    found.set(range, fps);
    states.push(...fresh);
  }
  inPathOrder(states);
  for (let i = 0; i < states.length; i++) {
    search.explore(states[i]!, report, emit);
    if (report.deadRead >= 0) break;
    if (i % CHUNK === CHUNK - 1 || full.length > 0) await flush(full.splice(0));
  }
  const t2 = performance.now();
  // One round trip, in this order (the server runs a pipeline's commands in order): the last successors; the new
  // states' fingerprints, after their successors (whoever takes a range over starts from these); the report; then
  // the acknowledgements of the entries taken.
  const pipe = redis.pipeline();
  queue(pipe, [...out.keys()]);
  for (const [range, fps] of found) {
    pipe.xadd(k.visited(range), '*', 'level', String(order.level), 'fps', encodeFingerprints(fps));
  }
  const r: WorkerReport = {
    worker: name,
    level: order.level,
    ranges: order.ranges,
    report,
    sent,
    messages,
    held: search.states,
    bytes: search.visitedBytes,
    ms: Date.now() - started,
    replayed: search.replayed - replayedBefore,
  };
  pipe.xadd(k.reports, '*', 'report', JSON.stringify(r));
  for (const [range, ids] of done) {
    if (ids.length === 0) continue;
    pipe.xack(k.range(range), GROUP, ...ids);
    pipe.xdel(k.range(range), ...ids);
  }
  const replies = (await pipe.exec()) ?? [];
  for (const [error] of replies) if (error) throw error;
  debug(
    'level %d: read %d, explore %d ms; %d states',
    order.level,
    Math.round(t1 - t0),
    Math.round(t2 - t1),
    report.states,
  );
}
