// The distributed search (issue 22) against the single-process stateful search, on this machine, timed in plain node
// processes on the compiled package (bin/x86slice.js, dist/):
//  1. the single-process search (`explore ... --json`): states, seconds, states/s;
//  2. the same search over a Redis broker with 1 and 2 worker processes (`explore --broker`, `x86slice worker`),
//     in alternating pairs with the single-process one: wall seconds, states/s, the overhead per state against (1),
//     messages (stream entries) per state, and the broker's throughput (commands and bytes in per second, read from
//     INFO before and after).
// The broker is X86SLICE_BROKER when set, else a redis-server started here on a unix socket.
// Usage: npm run build && node bench/distributed.mjs [--rounds N] [--pairs N]
// Prints a table, then one JSON line.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '8' }, pairs: { type: 'string', default: '2' } },
});
const BIN = fileURLToPath(new URL('../bin/x86slice.js', import.meta.url));
const SCENARIO = ['stack-migration', '-p', 'protocol=ipi-switcheroo', '-p', `rounds=${values.rounds}`];

let broker = process.env.X86SLICE_BROKER;
let server;
let dir;
if (broker === undefined) {
  dir = mkdtempSync(join(tmpdir(), 'x86slice-bench-'));
  broker = join(dir, 'redis.sock');
  server = spawn('redis-server', ['--port', '0', '--unixsocket', broker, '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  for (let i = 0; i < 100 && spawnSync('redis-cli', ['-s', broker, 'ping']).status !== 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
}
const redis = broker.startsWith('/') ? new Redis({ path: broker }) : new Redis(broker);

async function stats() {
  const info = await redis.info('stats');
  const field = (name) => Number(new RegExp(`${name}:(\\d+)`).exec(info)[1]);
  return { commands: field('total_commands_processed'), bytesIn: field('total_net_input_bytes') };
}

function single() {
  const out = execFileSync(process.execPath, [BIN, 'explore', ...SCENARIO, '--strategy', 'exhaustive', '--json'], {
    encoding: 'utf8',
  });
  const r = JSON.parse(out);
  return { states: r.states, seconds: r.seconds };
}

async function distributed(workers) {
  const before = await stats();
  const started = performance.now();
  const procs = Array.from({ length: workers }, (_, i) =>
    spawn(process.execPath, [BIN, 'worker', '--broker', broker, '--once', '--name', `bench${i + 1}`], {
      stdio: 'ignore',
    }),
  );
  const out = execFileSync(
    process.execPath,
    [
      BIN,
      'explore',
      ...SCENARIO,
      '--strategy',
      'exhaustive',
      '--json',
      '--broker',
      broker,
      '--min-workers',
      `${workers}`,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const wall = (performance.now() - started) / 1000;
  await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r() : p.on('close', r)))));
  const after = await stats();
  const r = JSON.parse(out);
  return {
    workers,
    states: r.states,
    seconds: r.seconds,
    wall,
    messages: r.broker.messages,
    statesSent: r.broker.statesSent,
    commands: after.commands - before.commands,
    bytesIn: after.bytesIn - before.bytesIn,
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = { single: [], 1: [], 2: [] };
for (let p = 0; p < Number(values.pairs); p++) {
  rows.single.push(single());
  rows[1].push(await distributed(1));
  rows.single.push(single());
  rows[2].push(await distributed(2));
}
const base = median(rows.single.map((r) => r.seconds));
const states = rows.single[0].states;
const figures = [1, 2].map((w) => {
  const rs = rows[w];
  const seconds = median(rs.map((r) => r.seconds));
  const r = rs[0];
  return {
    workers: w,
    states: r.states,
    seconds,
    spread: [Math.min(...rs.map((x) => x.seconds)), Math.max(...rs.map((x) => x.seconds))],
    statesPerSecond: Math.round(r.states / seconds),
    overheadPerState: Number((seconds / base).toFixed(1)),
    microsecondsPerState: Math.round((1e6 * seconds) / r.states),
    messagesPerState: Number((r.messages / r.states).toFixed(3)),
    statesSentPerState: Number((r.statesSent / r.states).toFixed(2)),
    brokerCommandsPerSecond: Math.round(r.commands / seconds),
    brokerBytesInPerSecond: Math.round(r.bytesIn / seconds),
    brokerBytesPerState: Math.round(r.bytesIn / r.states),
  };
});
console.log(`distributed search: ${SCENARIO.join(' ')}, ${states.toLocaleString('en-US')} states`);
console.log(
  `  single process: ${base.toFixed(2)} s (median of ${rows.single.length}), ${Math.round(states / base)} states/s, ` +
    `${Math.round((1e6 * base) / states)} µs a state`,
);
for (const f of figures) {
  console.log(
    `  broker, ${f.workers} worker${f.workers > 1 ? 's' : ''}: ${f.seconds.toFixed(2)} s (${f.spread.map((x) => x.toFixed(2)).join('..')}), ` +
      `${f.statesPerSecond} states/s, ${f.microsecondsPerState} µs a state = ${f.overheadPerState}x the single process; ` +
      `${f.messagesPerState} messages and ${f.statesSentPerState} states sent a state; broker ${f.brokerCommandsPerSecond} ` +
      `commands/s, ${(f.brokerBytesInPerSecond / 1e6).toFixed(2)} MB/s in, ${f.brokerBytesPerState} bytes a state`,
  );
}
console.log(JSON.stringify({ bench: 'distributed', states, singleSeconds: base, figures }));
redis.disconnect();
server?.kill();
if (dir) rmSync(dir, { recursive: true, force: true });
