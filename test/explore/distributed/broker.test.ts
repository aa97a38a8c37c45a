import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COORDINATOR, CURRENT, connect, keys } from '../../../src/explore/distributed/broker.ts';
import { runBrokerWorker } from '../../../src/explore/distributed/broker-worker.ts';
import { LevelSearch } from '../../../src/explore/distributed/level-search.ts';
import { explore, replay } from '../../../src/explore/explore.ts';
import { findScenario } from '../../../src/scenarios/catalogue.ts';
import { resolveParams } from '../../../src/scenarios/scenario.ts';
import { machineFactory } from '../../../src/scenarios/scenario-module.ts';
import { copiedReader } from '../fixtures/copied-reader.ts';

// The distributed search over a real broker (issue 22): a coordinator and 1 to 3 worker processes on this machine
// find what the single-process stateful search finds, and a worker killed mid-search changes nothing. The broker is
// X86SLICE_BROKER when set (.ci/run starts one), else a redis-server started here on a unix socket; with neither,
// these tests are skipped (and say so).

const ROOT = join(import.meta.dirname, '..', '..', '..');
const ENTRY = join(import.meta.dirname, 'cli-entry.ts');

/** The newest modification time of the files under `dir`. */
function newest(dir: string): number {
  return Math.max(
    ...readdirSync(dir, { withFileTypes: true }).map((e) =>
      e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
    ),
  );
}

/**
 * The processes run the compiled CLI when dist/ is newer than every source (npm ci builds it: CI), else the sources
 * through tsx (a developer's edit not yet built); the same for all, as workers check the coordinator's machine by
 * its fingerprint, which hashes programs' text.
 */
const DIST = join(ROOT, 'dist', 'cli', 'main.js');
const COMMAND =
  existsSync(DIST) && statSync(DIST).mtimeMs >= newest(join(ROOT, 'src'))
    ? [join(ROOT, 'bin', 'x86slice.js')]
    : ['--import', 'tsx', ENTRY];
const given = process.env.X86SLICE_BROKER;
const haveServer = spawnSync('redis-server', ['--version']).status === 0;
const usable = given !== undefined || haveServer;
if (!usable)
  console.warn('broker tests skipped: no X86SLICE_BROKER and no redis-server (apt-get install redis-server)');

let broker = given ?? '';
let server: ChildProcess | undefined;
let dir = '';

beforeAll(async () => {
  if (!usable || given !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), 'x86slice-broker-'));
  broker = join(dir, 'redis.sock');
  server = spawn('redis-server', ['--port', '0', '--unixsocket', broker, '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  for (let i = 0; i < 100; i++) {
    try {
      (await connect(broker)).disconnect();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('redis-server did not start');
});

afterAll(() => {
  server?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function cli(args: readonly string[]): ChildProcess {
  return spawn(process.execPath, [...COMMAND, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function finished(p: ChildProcess): Promise<{ code: number | null; out: string; err: string }> {
  let out = '';
  let err = '';
  p.stdout?.on('data', (d) => {
    out += d;
  });
  p.stderr?.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve) => p.on('close', (code) => resolve({ code, out, err })));
}

interface Json {
  states: number;
  deadWords: boolean;
  copiedLive?: boolean;
  deadWordsOff?: string;
  transitions: number;
  distinctStates: number;
  complete: boolean;
  violations: { outcome: string; schedule: string; scheduleLength: number }[];
  broker: { workers: number; lost: string[] };
}

/**
 * explore --broker with `workers` worker processes; with `killAfter`, the second worker is killed (SIGKILL) once the
 * run has that many level reports, mid-search whatever the machine's speed.
 */
async function distributed(
  params: readonly string[],
  workers: number,
  killAfter?: number,
  scenario = 'stack-migration',
): Promise<Json> {
  const pairs = params.flatMap((p) => ['-p', p]);
  const coordinator = cli([
    'explore',
    scenario,
    ...pairs,
    '--strategy',
    'exhaustive',
    '--json',
    '--broker',
    broker,
    '--min-workers',
    String(workers),
    '--ranges',
    '4',
  ]);
  const done = finished(coordinator);
  const started = Array.from({ length: workers }, (_, i) =>
    cli(['worker', '--broker', broker, '--once', '--name', `w${i + 1}`]),
  );
  const ends = started.map(finished);
  if (killAfter !== undefined) {
    const redis = await connect(broker);
    try {
      for (;;) {
        const run = await redis.get(CURRENT);
        if (run !== null && (await redis.xlen(keys(run).reports)) >= killAfter) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      started[1]!.kill('SIGKILL');
    } finally {
      redis.disconnect();
    }
  }
  const result = await done;
  await Promise.all(ends);
  expect(result.err).not.toMatch(/refused|Error/);
  return JSON.parse(result.out) as Json;
}

/** What a search stored: compared between the distributed and the single-process search. */
function counts(r: { readonly states?: number; readonly transitions?: number; readonly distinctStates: number }) {
  return [r.states, r.transitions, r.distinctStates];
}

function single(params: Record<string, string>) {
  const s = findScenario('stack-migration');
  const build = machineFactory(s, resolveParams(s, params));
  return { build, result: explore(build, { strategy: 'exhaustive', search: 'stateful' }) };
}

describe.skipIf(!usable)('the distributed search over a Redis broker', () => {
  it('finds the switcheroo clean with the states of the single-process search, on 1, 2 and 3 workers', async () => {
    const { result } = single({ protocol: 'ipi-switcheroo', rounds: '3' });
    for (const workers of [1, 2, 3]) {
      const r = await distributed(['protocol=ipi-switcheroo', 'rounds=3'], workers);
      expect(r.broker.workers).toBe(workers);
      expect([r.complete, ...counts(r), r.violations]).toEqual([true, ...counts(result), []]);
    }
  }, 120_000);

  it('reports the violations of the single-process search, the same shortest schedules on 1, 2 and 3 workers', async () => {
    const { build, result } = single({ protocol: 'naive', rounds: '3' });
    const runs: Json[] = [];
    for (const workers of [1, 2, 3]) runs.push(await distributed(['protocol=naive', 'rounds=3'], workers));
    for (const r of runs) {
      expect([r.complete, ...counts(r)]).toEqual([true, ...counts(result)]);
      // The same counterexamples, schedules included, after minimisation (breadth first the path found is a shortest
      // one, depth first the first one met: in general the two can differ; docs/distributed.md).
      expect(r.violations.map((v) => [v.outcome, v.schedule])).toEqual(
        result.violations.map((v) => [v.kind, v.schedule]),
      );
      expect(r.violations).toEqual(runs[0]!.violations);
    }
    for (const v of runs[0]!.violations) {
      expect(replay(build, v.schedule).kind).toBe(v.outcome);
      const dfs = result.violations.find((w) => w.kind === v.outcome)!;
      expect(v.scheduleLength).toBeLessThanOrEqual(dfs.scheduleLength);
    }
  }, 120_000);

  it('runs again with copied-away frames in its states when a worker reads one, as the single-process search does', async () => {
    const one = explore(copiedReader, { strategy: 'exhaustive', search: 'stateful' });
    const scenario = fileURLToPath(new URL('../fixtures/copied-reader-scenario.ts', import.meta.url));
    const r = await distributed([], 2, undefined, scenario);
    expect([r.complete, ...counts(r)]).toEqual([true, ...counts(one)]);
    expect([r.deadWords, r.copiedLive]).toEqual([true, true]);
    expect(r.deadWordsOff).toMatch(/a word of a frame a migration copied away was read/);
  }, 120_000);

  it('loses nothing when a worker is killed mid-search: the verdict and the state count stand', async () => {
    const { result } = single({ protocol: 'ipi-switcheroo', rounds: '4' });
    // 3 workers, killed after 60 reports: about level 20 of 200.
    const r = await distributed(['protocol=ipi-switcheroo', 'rounds=4'], 3, 60);
    expect(r.broker.lost).toEqual(['w2']);
    expect([r.complete, ...counts(r), r.violations]).toEqual([true, ...counts(result), []]);
  }, 120_000);

  it('refuses a worker of another version, one that builds another machine, or a second of one name, saying why', async () => {
    const redis = await connect(broker);
    const config = {
      version: '0.0.1',
      scenario: 'stack-migration',
      params: { protocol: 'naive' },
      maxSteps: 10_000,
      tlbEvents: 0,
      cacheEvents: 'held',
      ipiDelivery: 'scheduled',
      deadWords: true,
      ranges: 4,
      root: [1, 2],
    };
    const s = findScenario('stack-migration');
    const resolve = async () => ({
      build: machineFactory(s, resolveParams(s, { protocol: 'naive' })),
      check: undefined,
    });
    const search = new LevelSearch((await resolve()).build, { ...config, cacheEvents: 'held', check: undefined });
    const root = [search.root.fpA, search.root.fpB];
    search.detach();
    try {
      for (const [run, version, reason] of [
        ['old', '0.0.1', /coordinator runs x86slice 0\.0\.1 and this worker 0\.1\.0: run the same version/],
        ['other', '0.1.0', /builds another machine here than on the coordinator/],
        ['twice', '0.1.0', /a worker named w has joined it already: give each worker its own --name/],
      ] as const) {
        const k = keys(run);
        if (run === 'twice') await redis.hset(k.workers, 'w', '1');
        await redis.set(k.config, JSON.stringify({ ...config, version, root: run === 'twice' ? root : config.root }));
        await redis.set(k.alive(COORDINATOR), '1', 'PX', 5000);
        await redis.set(CURRENT, run);
        const joined = runBrokerWorker({ broker, version: '0.1.0', name: 'w', once: true, resolve, log: () => {} });
        await expect(joined).rejects.toThrow(reason);
        expect(await redis.xlen(k.refused)).toBe(1);
        await redis.del(CURRENT, k.config, k.alive(COORDINATOR), k.refused, k.workers);
      }
    } finally {
      redis.disconnect();
    }
  });

  it('says which broker it cannot reach', async () => {
    await expect(connect('/nonexistent/redis.sock')).rejects.toThrow(
      /cannot reach the broker at \/nonexistent\/redis\.sock/,
    );
    await expect(connect('http://example')).rejects.toThrow(/must be a redis:\/\/ URL or a unix socket path/);
  });
});
