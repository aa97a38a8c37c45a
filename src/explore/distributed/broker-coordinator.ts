import createDebug from 'debug';
import type { Redis } from 'ioredis';
import type { Machine } from '../../machine/machine.ts';
import { InputError } from '../../mmu/input-error.ts';
import { copiedWordRead, deadWordsRead } from '../stateful.ts';
import {
  COORDINATOR,
  CURRENT,
  connect,
  encodeBatch,
  GROUP,
  HEARTBEAT_MS,
  keys,
  LOST_AFTER_MS,
  type Order,
  type RunConfig,
  type WorkerReport,
} from './broker.ts';
import { type LevelLimits, LevelMerge, type LevelResult } from './level-merge.ts';
import { LevelSearch, rangeOf } from './level-search.ts';

// `x86slice explore ... --broker <url>`: the coordinator of the distributed search (broker.ts). It publishes the run,
// waits for workers, shares the ranges out, and drives the search level by level: it orders each worker to do the
// level for its ranges, and the next level starts when every range has reported.
//
// Termination: the rounds are synchronous, so counting messages suffices (Mattern's counting method in its
// synchronous form): every worker reports how many states it sent for the next level, after they are in the
// broker; the coordinator starts level d + 1 only when all of level d's reports are in, so every state sent for
// it is there to read; the search has ended when a level's reports sent none.
//
// A lost worker (no heartbeat for LOST_AFTER_MS) is replaced in the level being done: its ranges go to the live
// worker with the fewest, which rebuilds their visited sets from the fingerprints logged in the broker and claims
// their unacknowledged entries. What it costs: the lost worker's part of the level is done again, and the broker
// keeps 8 bytes per state (the fingerprint logs) beyond the messages in flight.

export interface CoordinatorOptions {
  readonly broker: string;
  readonly config: Omit<RunConfig, 'root'>;
  readonly build: () => Machine;
  readonly limits: LevelLimits;
  /** Workers to wait for before the first level. */
  readonly minWorkers: number;
  readonly onProgress?: (p: Progress) => void;
  readonly log: (line: string) => void;
}

export interface Progress {
  readonly level: number;
  readonly states: number;
  /** Per worker: states explored per second in its last level. */
  readonly workers: readonly { readonly name: string; readonly statesPerSecond: number }[];
  /** States sent and not yet taken (the range streams' entries, in batches). */
  readonly queue: number;
}

export interface CoordinatorResult extends LevelResult {
  readonly workers: number;
  /** Workers lost during the search, and the ranges taken over. */
  readonly lost: readonly string[];
  readonly deadWordsOff?: string;
  /** A dead word was read (its physical address), or -1, and whether its frame was one copied away. */
  readonly deadRead: number;
  readonly deadReadCopied: boolean;
  readonly run: string;
  /** Whether the workers were told the search is over. */
  readonly final: boolean;
  /** Messages (stream entries) the workers sent, and the states in them. */
  readonly messages: number;
  readonly sent: number;
}

/** DEBUG=x86slice:explore:coordinator: each level's wall time against the time its workers spent on it. */
const debug = createDebug('x86slice:explore:coordinator');

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runCoordinator(o: CoordinatorOptions): Promise<CoordinatorResult> {
  const redis = await connect(o.broker);
  const reader = redis.duplicate();
  reader.on('error', () => {});
  try {
    const again = o.config.deadWords;
    let result = await coordinate(redis, reader, o, !again);
    /** The address of a word of a copied-away frame the first run read, when a run with copiedLive followed. */
    let copiedRead: number | undefined;
    if (result.deadRead >= 0 && again && result.deadReadCopied && !o.config.copiedLive) {
      // As the stateful search does: a word of a frame copied away was read, so again with those frames' words in
      // the states and the other dead words left out (a run that may in turn read a dead word).
      copiedRead = result.deadRead;
      result = await coordinate(redis, reader, { ...o, config: { ...o.config, copiedLive: true } }, false);
      if (result.deadRead < 0) return { ...result, deadWordsOff: copiedWordRead(copiedRead) };
    }
    if (result.deadRead >= 0 && again) {
      // As the stateful search does: a dead word was read, so states merged for their dead words do not stand.
      const config = { ...o.config, deadWords: false, copiedLive: false };
      const rerun = await coordinate(redis, reader, { ...o, config }, true);
      const off = deadWordsRead(result.deadRead);
      return { ...rerun, deadWordsOff: copiedRead === undefined ? off : copiedWordRead(copiedRead, undefined, off) };
    }
    return result;
  } finally {
    reader.disconnect();
    redis.disconnect();
  }
}

/**
 * One run of the search; `final` when no run follows whatever it finds (with dead words left out, a run that reads
 * one is followed by one without, and the workers are told to stay).
 */
async function coordinate(redis: Redis, reader: Redis, o: CoordinatorOptions, final: boolean) {
  const search = new LevelSearch(o.build, { ...o.config, check: undefined });
  const root = search.root;
  search.detach();
  const run = `${Date.now().toString(36)}-${process.pid}`;
  const k = keys(run);
  const config: RunConfig = { ...o.config, root: [root.fpA, root.fpB] };
  const setup = redis.pipeline();
  for (let r = 0; r < config.ranges; r++) setup.xgroup('CREATE', k.range(r), GROUP, '0', 'MKSTREAM');
  setup.xadd(k.range(rangeOf(root.fpB, config.ranges)), '*', ...encodeBatch(0, [root]));
  setup.set(k.config, JSON.stringify(config));
  setup.set(CURRENT, run);
  await setup.exec();
  const beat = () => redis.set(k.alive(COORDINATOR), '1', 'PX', LOST_AFTER_MS).catch(() => {});
  await beat();
  const heartbeat = setInterval(beat, HEARTBEAT_MS);
  const merge = new LevelMerge(o.limits);
  const lost: string[] = [];
  let messages = 0;
  let sentTotal = 0;
  try {
    const owners = await waitForWorkers(redis, k, o);
    const owner = new Map<number, string>();
    for (let r = 0; r < config.ranges; r++) owner.set(r, owners[r % owners.length]!);
    const live = new Set(owners);
    const speed = new Map<string, number>();
    const bytes = new Map<string, number>();
    let lastId = '0-0';
    /** Ranges a worker takes over at the next level (their lost owner had reported them for this one). */
    const takeOverNext = new Map<string, number[]>();
    let shown = 0;
    for (let level = 0; ; level++) {
      const pending = new Set(owner.keys());
      const order = (ranges: number[], takeover: number[]) =>
        JSON.stringify({ level, ranges, takeover } satisfies Order);
      const orders = redis.pipeline();
      for (const w of live) {
        const ranges = [...owner].filter(([, x]) => x === w).map(([r]) => r);
        if (ranges.length > 0) orders.lpush(k.go(w), order(ranges, takeOverNext.get(w) ?? []));
      }
      await orders.exec();
      takeOverNext.clear();
      let sent = 0;
      let workerMs = 0;
      const levelStarted = performance.now();
      let lastCheck = Date.now();
      while (pending.size > 0) {
        const got = (await reader.xread('COUNT', 100, 'BLOCK', 250, 'STREAMS', k.reports, lastId)) as
          | [string, [string, string[]][]][]
          | null;
        for (const [id, fields] of got?.[0]?.[1] ?? []) {
          lastId = id;
          const rep = JSON.parse(fields[1]!) as WorkerReport;
          // Only the current owner's report of this level counts (a worker taken for lost may still report).
          if (rep.level !== level || !rep.ranges.every((r) => pending.has(r) && owner.get(r) === rep.worker)) continue;
          for (const r of rep.ranges) pending.delete(r);
          merge.add(rep.report);
          sent += rep.sent;
          workerMs = Math.max(workerMs, rep.ms);
          messages += rep.messages;
          speed.set(rep.worker, Math.round((1000 * rep.report.states) / Math.max(1, rep.ms)));
          bytes.set(rep.worker, rep.bytes);
        }
        if (Date.now() - lastCheck >= 250) {
          lastCheck = Date.now();
          // Workers that joined after the start stand by: each is a possible heir.
          for (const w of Object.keys(await redis.hgetall(k.workers))) if (!lost.includes(w)) live.add(w);
          const beats = redis.pipeline();
          for (const w of live) beats.exists(k.alive(w));
          const alive = ((await beats.exec()) ?? []).map(([, n]) => n === 1);
          for (const [i, w] of [...live].entries()) {
            if (alive[i]) continue;
            live.delete(w);
            lost.push(w);
            const theirs = [...owner].filter(([, x]) => x === w).map(([r]) => r);
            const heir = [...live].sort((a, b) => count(owner, a) - count(owner, b) || (a < b ? -1 : 1))[0];
            if (heir === undefined) {
              throw new InputError(`every worker of run ${run} was lost (the last, ${w}, at level ${level})`);
            }
            o.log(`worker ${w} lost at level ${level}: ${heir} takes over ranges ${theirs.join(', ')}`);
            for (const r of theirs) owner.set(r, heir);
            // A range not reported for this level is done again by the heir, from the log of the levels before; one
            // reported is taken over at the next level, from a log that has this level too.
            const redo = theirs.filter((r) => pending.has(r));
            const done = theirs.filter((r) => !pending.has(r));
            if (redo.length > 0) await redis.lpush(k.go(heir), order(redo, redo));
            if (done.length > 0) takeOverNext.set(heir, [...(takeOverNext.get(heir) ?? []), ...done]);
          }
        }
      }
      sentTotal += sent;
      debug(
        'level %d: %d ms, slowest worker %d ms, %d sent',
        level,
        Math.round(performance.now() - levelStarted),
        workerMs,
        sent,
      );
      if (o.onProgress && (Date.now() - shown >= 1000 || sent === 0)) {
        shown = Date.now();
        let queue = 0;
        for (let r = 0; r < config.ranges; r++) queue += await redis.xlen(k.range(r));
        o.onProgress({
          level,
          states: merge.states,
          workers: [...live].map((name) => ({ name, statesPerSecond: speed.get(name) ?? 0 })),
          queue,
        });
      }
      if (!merge.next(sent)) break;
    }
    const held = [...bytes.values()].reduce((a, b) => a + b, 0);
    return {
      ...merge.result(held, config.deadWords, config.copiedLive),
      deadRead: merge.deadRead,
      deadReadCopied: merge.deadReadCopied,
      workers: owners.length,
      lost,
      messages,
      sent: sentTotal,
      run,
      final: final || merge.deadRead < 0,
    };
  } finally {
    clearInterval(heartbeat);
    await finishRun(redis, run, final || merge.deadRead < 0);
  }
}

function count(owner: Map<number, string>, w: string): number {
  let n = 0;
  for (const x of owner.values()) if (x === w) n++;
  return n;
}

/** Waits for `minWorkers` workers to join (refusals are logged); returns them by name. */
async function waitForWorkers(redis: Redis, k: ReturnType<typeof keys>, o: CoordinatorOptions): Promise<string[]> {
  let told = 0;
  let refusedSeen = '0-0';
  for (;;) {
    const names = Object.keys(await redis.hgetall(k.workers)).sort();
    if (names.length >= o.minWorkers) return names;
    const refused = (await redis.xrange(k.refused, `(${refusedSeen}`, '+')) as [string, string[]][];
    for (const [id, fields] of refused) {
      refusedSeen = id;
      o.log(`worker ${fields[1]} refused: ${fields[3]}`);
    }
    if (Date.now() - told > 5000) {
      told = Date.now();
      o.log(
        `waiting for workers: ${names.length} of ${o.minWorkers} joined (start them with x86slice worker --broker ${o.broker})`,
      );
    }
    await sleep(50);
  }
}

async function stopWorkers(redis: Redis, run: string, final: boolean): Promise<void> {
  const k = keys(run);
  const names = Object.keys(await redis.hgetall(k.workers));
  const stop = redis.pipeline();
  for (const w of names) stop.lpush(k.go(w), JSON.stringify({ stop: true, final } satisfies Order));
  await stop.exec();
}

/**
 * Tells the workers to stop (to stay for the next run unless `final`), and removes the run's keys; the order lists
 * expire a little later, so that each worker reads its stop order first.
 */
async function finishRun(redis: Redis, run: string, final: boolean): Promise<void> {
  const k = keys(run);
  await stopWorkers(redis, run, final);
  if ((await redis.get(CURRENT)) === run) await redis.del(CURRENT);
  const orders = `${k.prefix}go:`;
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${k.prefix}*`, 'COUNT', 1000);
    cursor = next;
    const pipe = redis.pipeline();
    for (const key of found) {
      if (key.startsWith(orders)) pipe.pexpire(key, 10 * LOST_AFTER_MS);
      else pipe.del(key);
    }
    await pipe.exec();
  } while (cursor !== '0');
}
