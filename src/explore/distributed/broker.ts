import { Redis } from 'ioredis';
import type { IpiDelivery } from '../../cpu/ipi-bus.ts';
import { InputError } from '../../mmu/input-error.ts';
import type { CacheScope } from '../hardware-choices.ts';
import type { Arrival, LevelReport } from './level-search.ts';

// The distributed search's transport (issue 22): Redis Streams with consumer groups. Why Redis: its streams give
// at-least-once delivery (an entry read through a consumer group stays pending until acknowledged, and a pending
// entry of a lost consumer can be claimed by another: XAUTOCLAIM), Debian ships the server and npm a maintained
// client (ioredis), and one server holds both the messages and what survives a worker (each range's visited log).
// NATS JetStream gives the same delivery; Redis was chosen for being one package with no configuration here.
//
// Keys, under `x86slice:` and the run's id:
//   current                 the run workers join (its id)
//   run:<id>:config         the run: version, scenario, options, initial state's fingerprint (JSON)
//   run:<id>:workers        hash: worker name -> when it joined
//   run:<id>:alive:<w>      heartbeat, expires 3 s after the last beat: a worker without one is lost (and a run
//                           whose coordinator has none is abandoned: workers leave it)
//   run:<id>:go:<w>         list: the coordinator's orders to worker w (a level to do, ranges to take over, stop)
//   run:<id>:reports        stream: each worker's report of each level
//   run:<id>:refused        stream: workers that could not join, and why
//   run:<id>:r<k>           stream of range k: batches of states sent to it, consumer group `owners`
//   run:<id>:v<k>           stream of range k: per level, the fingerprints of the states its owner found new
//                           (a range's visited set, kept in the broker for whoever takes the range over)

export const HEARTBEAT_MS = 500;
export const LOST_AFTER_MS = 3_000;
/** States in one message: the broker sees one XADD per batch, not per state. */
export const BATCH = 512;
export const GROUP = 'owners';
/** The coordinator's heartbeat name (worker names are letters, digits, '.', '_' and '-': never this one). */
export const COORDINATOR = ':coordinator';

/** What a run is: everything a worker needs to build the coordinator's machine and search as it does. */
export interface RunConfig {
  readonly version: string;
  /** The scenario as the coordinator was given it (a catalogue name or a module path) and its parameters. */
  readonly scenario: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly maxSteps: number;
  readonly tlbEvents: number;
  readonly cacheEvents: CacheScope;
  readonly ipiDelivery: IpiDelivery;
  readonly deadWords: boolean;
  /** With dead words: copied-away frames keep their words in the states (a run after one read such a word). */
  readonly copiedLive?: boolean;
  readonly ranges: number;
  /** The initial state's fingerprint: a worker whose machine differs is refused. */
  readonly root: readonly [number, number];
}

/** An order to a worker. */
export type Order =
  | { readonly level: number; readonly ranges: readonly number[]; readonly takeover: readonly number[] }
  /** `final`: the search is over (else a run for the same search follows: a worker with --once stays for it). */
  | { readonly stop: true; readonly final: boolean };

/** A worker's report of one level, over the ranges it did. */
export interface WorkerReport {
  readonly worker: string;
  readonly level: number;
  readonly ranges: readonly number[];
  readonly report: LevelReport;
  /** States it sent for the next level, and the messages (stream entries) they went in. */
  readonly sent: number;
  readonly messages: number;
  /** Its visited sets' size over all its ranges, and their bytes. */
  readonly held: number;
  readonly bytes: number;
  readonly ms: number;
  readonly replayed: number;
}

export const keys = (run: string) => ({
  config: `x86slice:run:${run}:config`,
  workers: `x86slice:run:${run}:workers`,
  alive: (w: string) => `x86slice:run:${run}:alive:${w}`,
  go: (w: string) => `x86slice:run:${run}:go:${w}`,
  reports: `x86slice:run:${run}:reports`,
  refused: `x86slice:run:${run}:refused`,
  range: (k: number) => `x86slice:run:${run}:r${k}`,
  visited: (k: number) => `x86slice:run:${run}:v${k}`,
  prefix: `x86slice:run:${run}:`,
});
export const CURRENT = 'x86slice:current';

/** Connects to the broker at `url` (redis://host:port[/db], or a unix socket path), or says why it cannot. */
export async function connect(url: string): Promise<Redis> {
  const redis = url.startsWith('/')
    ? new Redis({ path: url, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
    : (() => {
        if (!/^rediss?:\/\//.test(url)) {
          throw new InputError(`--broker ${JSON.stringify(url)} must be a redis:// URL or a unix socket path`);
        }
        return new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
      })();
  redis.on('error', () => {}); // reported by the command that fails
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    throw new InputError(`cannot reach the broker at ${url}: ${(error as Error).message || String(error)}`);
  }
  return redis;
}

/** A batch of states as a stream entry's fields. */
export function encodeBatch(level: number, batch: readonly Arrival[]): string[] {
  const fps = new Int32Array(2 * batch.length);
  batch.forEach((a, i) => {
    fps[2 * i] = a.fpA;
    fps[2 * i + 1] = a.fpB;
  });
  return [
    'level',
    String(level),
    'fps',
    Buffer.from(fps.buffer).toString('base64'),
    'paths',
    batch.map((a) => a.path).join('\n'),
  ];
}

export interface Batch {
  readonly id: string;
  readonly level: number;
  readonly states: Arrival[];
}

function field(fields: readonly string[], name: string): string {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]!;
  throw new Error(`a stream entry without ${name}`);
}

/** Fingerprints as base64 of an Int32Array, two per state. */
export function decodeFingerprints(text: string): Int32Array {
  const bytes = Buffer.from(text, 'base64');
  return new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

export function decodeBatch(id: string, fields: readonly string[]): Batch {
  const fps = decodeFingerprints(field(fields, 'fps'));
  const paths = field(fields, 'paths').split('\n');
  const states: Arrival[] = [];
  for (let i = 0; i < fps.length / 2; i++) states.push({ fpA: fps[2 * i]!, fpB: fps[2 * i + 1]!, path: paths[i]! });
  return { id, level: Number(field(fields, 'level')), states };
}

export function encodeFingerprints(fps: readonly number[]): string {
  return Buffer.from(Int32Array.from(fps).buffer).toString('base64');
}
