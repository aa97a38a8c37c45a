import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_USAGE, EXIT_VIOLATION, main } from '../../src/cli/main.ts';
import { progressBar, progressLines } from '../../src/cli/progress.ts';

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

// Scenario files are given as a user types them: relative to the working directory.
const fixture = (name: string) => `./${relative(process.cwd(), join(import.meta.dirname, 'fixtures', name))}`;
const MY_SCENARIO = fixture('my-scenario.ts');

const temp = mkdtempSync(join(tmpdir(), 'x86slice-cli-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

describe('x86slice explore', () => {
  it('finds the double fault in pf-in-pf, and its schedule replays to the same violation', async () => {
    const { code, out } = await cli('explore', 'pf-in-pf', '--strategy', 'random', '--budget', '20', '--json');
    expect(code).toBe(EXIT_VIOLATION);
    const report = JSON.parse(out);
    expect(report).toMatchObject({ scenario: 'pf-in-pf', strategy: 'random', executions: 20, complete: false });
    expect(report.steps).toBeGreaterThan(0);
    const violation = report.violations.find((v: { outcome: string }) => v.outcome === 'double-fault');
    expect(violation).toMatchObject({ schedule: expect.any(String), scheduleLength: expect.any(Number) });
    expect(violation.message).toContain('double fault');

    const replayed = await cli('replay', 'pf-in-pf', '--schedule', violation.schedule);
    expect(replayed.code).toBe(EXIT_VIOLATION);
    expect(replayed.out).toContain('#DF(0x0) delivered on ist1');
    expect(replayed.out).toContain('outcome: double-fault after 6 steps: a violation: PANIC: double fault');
  });

  it("--json names a violation's schedule entries scheduleLength, apart from the machine steps; steps stays as its alias", async () => {
    const { out } = await cli('explore', MY_SCENARIO, '--strategy', 'exhaustive', '--json');
    const report = JSON.parse(out);
    expect(report.violations).toMatchObject([{ schedule: '0,1', scheduleLength: 2, steps: 2 }]);
    expect(report.steps).toBeGreaterThan(2 * report.executions); // every execution takes more than two steps
  });

  it('finds no violation in stale-tlb: exit 0, and the text says the run was sampled', async () => {
    const { code, out } = await cli('explore', 'stale-tlb', '--strategy', 'random', '--budget', '20');
    expect(code).toBe(0);
    expect(out).toMatch(/^explore stale-tlb \(reads=1\): random, 20 executions, \d+ steps/);
    expect(out).toContain('no violation found (sampled: not every interleaving was run)');
  });

  it('the text form names each violation with the command that replays it', async () => {
    const { code, out } = await cli('explore', 'pf-in-pf', '-p', 'df-ist=0', '--budget', '5');
    expect(code).toBe(EXIT_VIOLATION);
    expect(out).toContain('1 violation (sampled: not every interleaving was run):');
    expect(out).toMatch(/ {2}triple-fault, schedule '[^']*' \(\d+ entries\)/);
    expect(out).toMatch(/ {4}x86slice replay pf-in-pf -p df-ist=0 --schedule '[^']*'/);
  });

  it('the same seed gives the same result', async () => {
    const args = ['explore', MY_SCENARIO, '--strategy', 'pct', '--budget', '30', '--seed', '7', '--json'];
    const [a, b] = [await cli(...args), await cli(...args)];
    expect(a.out).toBe(b.out);
  });

  it('--workers 2 gives the result one process gives, for a catalogue scenario and a scenario file', async () => {
    for (const ref of ['pf-in-pf', MY_SCENARIO]) {
      const args = ['explore', ref, '--strategy', 'pct', '--budget', '40', '--json'];
      const one = await cli(...args);
      const two = await cli(...args, '--workers', '2');
      expect(two.code).toBe(EXIT_VIOLATION);
      expect(two.out).toBe(one.out);
    }
  }, 60_000);

  it('--time-limit stops a long exhaustive search: not complete, and the result says the time limit stopped it', async () => {
    // With a reader on a third CPU: about 250,000 states, several seconds.
    const args = ['explore', 'stack-migration', '-p', 'protocol=ipi-switcheroo', '-p', 'remote=reader', '-p', 'cpus=3'];
    args.push('--strategy', 'exhaustive');
    const json = await cli(...args, '--time-limit', '0.5', '--json');
    // The stateful search (exhaustive's default) takes the time limit.
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({
      search: 'stateful',
      complete: false,
      stoppedBy: 'time-limit',
      violations: [],
    });
    const text = await cli(...args, '--time-limit=0.5');
    expect(text.out).toContain(
      'no violation found (incomplete: the time limit ran out before every reachable state was visited; a ' +
        'time-limited result is not reproducible)',
    );
    const stateless = await cli(...args, '--search', 'stateless', '--time-limit=0.5');
    expect(stateless.out).toContain(
      'no violation found (incomplete: the time limit ran out before every interleaving was run; a time-limited ' +
        'result is not reproducible)',
    );
  }, 60_000);

  it('--json says stoppedBy budget when the budget ended the search', async () => {
    const args = ['explore', 'stale-tlb', '--strategy', 'exhaustive', '--search', 'stateless', '--budget', '2'];
    const { out } = await cli(...args, '--json');
    expect(JSON.parse(out)).toMatchObject({ executions: 2, complete: false, stoppedBy: 'budget' });
  });

  it('explores stale-tlb exhaustively: complete, no violation', async () => {
    const { code, out } = await cli('explore', 'stale-tlb', '--strategy', 'exhaustive', '--json');
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ strategy: 'exhaustive', complete: true, violations: [] });
  });

  it('--strategy exhaustive runs the stateful search and says so, with its figures', async () => {
    const json = await cli('explore', 'stale-tlb', '--strategy', 'exhaustive', '--json');
    const report = JSON.parse(json.out);
    expect(report).toMatchObject({ search: 'stateful', complete: true, violations: [] });
    for (const key of ['states', 'transitions', 'depth', 'seconds', 'statesPerSecond', 'bytesPerState']) {
      expect(report[key], key).toBeGreaterThan(0);
    }
    expect(report.collisionProbability).toBeCloseTo(report.states ** 2 / 2 ** 65, 30);
    const text = await cli('explore', 'stale-tlb', '--strategy', 'exhaustive');
    expect(text.out).toMatch(
      /^explore stale-tlb \(reads=1\): exhaustive \(stateful search\), [\d,]+ states, [\d,]+ transitions, depth \d+, .* states\/s .*collision probability \d/,
    );
    expect(text.out).toContain('complete: every reachable state within the TLB-event budget was visited');
  });

  it('--workers 2 runs the stateful search on two workers, with the states one process visits', async () => {
    const args = ['explore', 'stale-tlb', '--strategy', 'exhaustive', '--json'];
    const one = JSON.parse((await cli(...args)).out);
    const { code, out } = await cli(...args, '--workers', '2');
    expect(code).toBe(0);
    const two = JSON.parse(out);
    expect(two).toMatchObject({ search: 'stateful', workers: 2, complete: true, violations: [] });
    expect(two.states).toBe(one.states);
    expect(two.distinctStates).toBe(one.distinctStates);
    const text = await cli('explore', 'stale-tlb', '--strategy', 'exhaustive', '--workers', '2');
    expect(text.out).toMatch(/exhaustive \(stateful search, 2 workers\), [\d,]+ states/);
  }, 60_000);

  it('--search stateless, or a preemption bound, runs the stateless search', async () => {
    for (const flags of [
      ['--search', 'stateless'],
      ['--preemptions', '1'],
    ]) {
      const { out } = await cli('explore', 'stale-tlb', '--strategy', 'exhaustive', ...flags, '--json');
      expect(JSON.parse(out)).toMatchObject({ search: 'stateless', complete: true, executions: expect.any(Number) });
    }
  });

  it("finds the naive stack migration's double fault with one TLB event allowed, and the schedule replays", async () => {
    const args = ['explore', 'stack-migration', '-p', 'protocol=naive', '-p', 'rounds=3', '--strategy', 'exhaustive'];
    const { code, out } = await cli(...args, '--tlb-events', '1', '--json');
    expect(code).toBe(EXIT_VIOLATION);
    const report = JSON.parse(out);
    expect(report).toMatchObject({ search: 'stateful', complete: true });
    const v = report.violations.find((x: { outcome: string }) => x.outcome === 'double-fault');
    // The shortest double fault needs no event: the least interleaved run (replay's completion) is one.
    expect(v.schedule).toBe('');
    const replayed = await cli(
      'replay',
      'stack-migration',
      '-p',
      'protocol=naive',
      '-p',
      'rounds=3',
      '--schedule',
      v.schedule,
    );
    expect(replayed.code).toBe(EXIT_VIOLATION);
  }, 120_000);
});

describe("a user's scenario module", () => {
  it('explored by path: the lost update is an assertion violation whose schedule replays', async () => {
    const { code, out } = await cli('explore', MY_SCENARIO, '--budget', '50', '--json');
    expect(code).toBe(EXIT_VIOLATION);
    const report = JSON.parse(out);
    expect(report).toMatchObject({ scenario: 'racy-counter', file: MY_SCENARIO, params: { locked: false } });
    expect(report.violations).toMatchObject([
      { outcome: 'assertion', message: 'the counter is 1, not 2: an update was lost' },
    ]);

    const replayed = await cli('replay', MY_SCENARIO, '--schedule', report.violations[0].schedule);
    expect(replayed.code).toBe(EXIT_VIOLATION);
    expect(replayed.out).toContain('outcome: assertion after');
    expect(replayed.out).toContain('an update was lost');
  });

  it('takes -p parameters: with cmpxchg no interleaving loses an update', async () => {
    const { code, out } = await cli('explore', MY_SCENARIO, '-p', 'locked=true', '--budget', '50', '--json');
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ params: { locked: true }, violations: [] });
  });

  it('a JavaScript module loads too, and its named export is found when there is no default', async () => {
    const file = join(temp, 'named.mjs');
    const lib = new URL('../../src/index.ts', import.meta.url).href;
    writeFileSync(
      file,
      `import { Machine } from '${lib}';
export const solo = {
  name: 'solo', params: [],
  build: (p, o) => {
    const machine = Machine.create({ cpus: 1, trace: o.trace });
    machine.load(0, function* (x) { yield x.pause(); });
    return { machine, run: {} };
  },
};`,
    );
    const { code, out } = await cli('explore', file, '--budget', '3', '--json');
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ scenario: 'solo', executions: 3, violations: [] });
  });
});

describe('x86slice replay', () => {
  it('--json prints one object in the shape of run --json, with the schedule, and the stop message', async () => {
    const replayed = await cli('replay', 'pf-in-pf', '--schedule', '', '--json');
    expect(replayed.code).toBe(EXIT_VIOLATION);
    const report = JSON.parse(replayed.out);
    // pf-in-pf has one CPU: the replay is the run, and says so field for field.
    const { report: _measured, ...run } = JSON.parse((await cli('run', 'pf-in-pf', '--json')).out);
    expect(report).toMatchObject(run);
    expect(report).toMatchObject({
      scenario: 'pf-in-pf',
      schedule: '',
      outcome: 'double-fault',
      violation: true,
      steps: 6,
      stop: { cpu: 0, outcome: 'double-fault' },
      message: expect.stringMatching(/^PANIC: double fault/),
    });
    expect(report.cpus).toHaveLength(1);
  });

  it('--json of a run that is no violation: exit 0, violation false, no message', async () => {
    const { code, out } = await cli('replay', 'stale-tlb', '--schedule', '', '--json');
    expect(code).toBe(0);
    const report = JSON.parse(out);
    expect(report).toMatchObject({ scenario: 'stale-tlb', outcome: 'ok', violation: false, limitReached: false });
    expect(report.steps).toBeGreaterThan(0);
    expect(report.cpus).toHaveLength(2);
    expect('message' in report).toBe(false);
  });

  it('every violation explore --json reports replays with replay --json to the same outcome and message', async () => {
    for (const args of [
      [MY_SCENARIO, '--strategy', 'exhaustive'],
      ['stack-migration', '-p', 'protocol=naive', '-p', 'rounds=4', '--strategy', 'exhaustive', '--preemptions', '1'],
      ['stack-migration', '-p', 'protocol=no-wait', '-p', 'rounds=4', '--strategy', 'pct', '--budget', '100'],
    ]) {
      const explored = JSON.parse((await cli('explore', ...args, '--json')).out);
      expect(explored.violations.length).toBeGreaterThan(0);
      const params = args.slice(1, args.indexOf('--strategy'));
      for (const v of explored.violations) {
        const replayed = await cli('replay', args[0]!, ...params, '--schedule', v.schedule, '--json');
        expect(replayed.code).toBe(EXIT_VIOLATION);
        const report = JSON.parse(replayed.out);
        expect({ outcome: report.outcome, message: report.message }).toEqual({
          outcome: v.outcome,
          message: v.message,
        });
      }
    }
  }, 60_000);

  it('--json with --out writes the trace to the file and prints the JSON; with --trace alone it is refused', async () => {
    const file = join(temp, 'replay-json-trace.json');
    const { code, out } = await cli(
      'replay',
      'pf-in-pf',
      '--schedule',
      '',
      '--trace',
      'chrome',
      '--out',
      file,
      '--json',
    );
    expect(code).toBe(EXIT_VIOLATION);
    expect(JSON.parse(out)).toMatchObject({ outcome: 'double-fault', steps: 6 });
    expect(() => JSON.parse(readFileSync(file, 'utf8'))).not.toThrow();
    const both = await cli('replay', 'pf-in-pf', '--schedule', '', '--trace', 'chrome', '--json');
    expect(both.code).toBe(EXIT_USAGE);
    expect(both.err).toContain('--json and --trace chrome would both go to stdout: give --out <file> for the trace');
  });

  it('--trace chrome --out writes Chrome trace-event JSON to the file', async () => {
    const file = join(temp, 'trace.json');
    const { code, out } = await cli('replay', 'pf-in-pf', '--schedule', '', '--trace', 'chrome', '--out', file);
    expect(code).toBe(EXIT_VIOLATION);
    expect(out).toContain(`wrote the chrome trace of 6 steps to ${file}`);
    expect(out).toContain('outcome: double-fault');
    expect(() => JSON.parse(readFileSync(file, 'utf8'))).not.toThrow();
  });

  it('--trace mermaid --out writes a sequence diagram to the file', async () => {
    const file = join(temp, 'trace.mmd');
    const { code } = await cli('replay', 'stale-tlb', '--schedule', '1,1,0', '--trace', 'mermaid', '--out', file);
    expect(code).toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/^sequenceDiagram/);
  });

  it('a trace on stdout stays clean: the outcome goes to stderr', async () => {
    const { code, out, err } = await cli('replay', 'stale-tlb', '--schedule', '1', '--trace', 'chrome');
    expect(code).toBe(0);
    expect(() => JSON.parse(out)).not.toThrow();
    expect(err).toMatch(/^outcome: ok after \d+ steps: no violation$/);
  });

  it('text --out writes the timeline to the file and the outcome to stdout', async () => {
    const file = join(temp, 'timeline.txt');
    const { code, out } = await cli('replay', 'stale-tlb', '--schedule', '1,1,0', '--out', file);
    expect(code).toBe(0);
    expect(out).toMatch(/outcome: ok after \d+ steps: no violation/);
    expect(readFileSync(file, 'utf8')).toMatch(/CPU0 +│ CPU1/);
  });
});

describe('bad input is exit code 2, naming the value and the rule', () => {
  it.each([
    [['explore', 'nope'], "unknown scenario 'nope'; valid scenarios: pf-in-pf"],
    [['explore', 'pf-in-pf', '--strategy', 'bogus'], "--strategy 'bogus' must be one of exhaustive, pct, random"],
    [['explore', 'pf-in-pf', '--budget', '0'], "--budget '0' must be a decimal integer in 1..1000000000000"],
    [
      ['explore', 'pf-in-pf', '--budget', 'abc'],
      "--budget 'abc' must be a decimal integer in 1..1000000000000 (executions to run at most)",
    ],
    [['explore', 'pf-in-pf', '--budget', '12abc'], "--budget '12abc' must be a decimal integer"],
    [['explore', 'pf-in-pf', '--budget', '1e3'], "--budget '1e3' must be a decimal integer"],
    [['explore', 'pf-in-pf', '--budget=0x10'], "--budget '0x10' must be a decimal integer"],
    [['explore', 'pf-in-pf', '--budget', '5', '--budget', '6'], '--budget is given more than once'],
    [['explore', 'pf-in-pf', '--workers', '0'], "--workers '0' must be a decimal integer in 1..64 (worker threads)"],
    [['explore', 'pf-in-pf', '--search', 'stateful'], '--search applies to --strategy exhaustive, not random'],
    [['explore', 'pf-in-pf', '--strategy', 'exhaustive', '--search', 'bfs'], "--search 'bfs' must be one of"],
    [
      ['explore', 'pf-in-pf', '--strategy', 'exhaustive', '--search', 'stateful', '--preemptions', '1'],
      '--preemptions applies to --search stateless',
    ],
    [['explore', 'pf-in-pf', '--tlb-events', '-1'], 'Unknown option `-1`'],
    [['explore', 'pf-in-pf', '--seed', '1.5'], "--seed '1.5' must be a decimal integer in 0..4294967295"],
    [['explore', 'pf-in-pf', '-p', 'df-ist=7'], 'parameter df-ist=7 must be an integer in 0..2'],
    [
      ['explore', 'pf-in-pf', '--time-limit', 'abc'],
      "--time-limit 'abc' must be a positive number of seconds, such as 60 or 0.5",
    ],
    [['explore', 'pf-in-pf', '--time-limit', '0'], "--time-limit '0' must be a positive number of seconds"],
    [['explore', 'pf-in-pf', '--time-limit', '0.0001'], "--time-limit '0.0001' must be a positive number of seconds"],
    [['explore', 'pf-in-pf', '--time-limit', '1e3'], "--time-limit '1e3' must be a positive number of seconds"],
    [['explore', 'pf-in-pf', '--time-limit=1m'], "--time-limit '1m' must be a positive number of seconds"],
    [['replay', 'pf-in-pf'], 'replay needs --schedule <schedule>'],
    [['replay', 'pf-in-pf', '--schedule', '0,x'], "malformed schedule token 'x'"],
    [['replay', 'pf-in-pf', '--schedule', '0x1'], "malformed schedule token '0x1'"],
    [['replay', 'pf-in-pf', '--schedule', '1'], 'schedule entry 0 names CPU 1, which does not exist'],
    [['replay', 'pf-in-pf', '-p', 'cpus=2', '--schedule', '1'], 'schedule entry 0 names CPU 1, which has no program'],
    [['replay', 'pf-in-pf', '--schedule', '', '--trace', 'svg'], "--trace 'svg' must be one of text, chrome, mermaid"],
    [['replay', 'pf-in-pf', '--schedule', '', '--out', '/nonexistent-dir/x.txt'], "--out '/nonexistent-dir/x.txt'"],
    [['explore', './no-such-file.ts'], "scenario file './no-such-file.ts' does not exist (looked for "],
    [['replay', 'missing.mjs', '--schedule', ''], "scenario file 'missing.mjs' does not exist"],
  ])('%j', async (argv, message) => {
    const { code, out, err } = await cli(...argv);
    expect(code).toBe(EXIT_USAGE);
    expect(err).toContain(message);
    expect(out).toBe('');
  });

  it('a schedule naming a CPU that cannot move there', async () => {
    // In stale-tlb CPU0 first spins until CPU1 has cached the page, so CPU0 cannot move at the start.
    const { code, err } = await cli('replay', 'stale-tlb', '--schedule', '0,0');
    expect(code).toBe(EXIT_USAGE);
    expect(err).toContain('schedule entry 1 names CPU 0, which cannot move there (blocked)');
  });

  it('a file that exports no scenario', async () => {
    const { code, err } = await cli('explore', fixture('not-a-scenario.ts'));
    expect(code).toBe(EXIT_USAGE);
    expect(err).toContain(
      "scenario file './test/cli/fixtures/not-a-scenario.ts' does not export a scenario (a default export, or one " +
        'export with name, params and build); its exports: answer, greet',
    );
  });

  it('a default export that is not quite a scenario: what is wrong with it', async () => {
    const file = join(temp, 'broken.mjs');
    writeFileSync(
      file,
      "export default { name: 'broken', params: [{ name: 'n', kind: 'int', default: 1 }], build() {} };",
    );
    const { code, err } = await cli('explore', file);
    expect(code).toBe(EXIT_USAGE);
    expect(err).toContain("(scenario broken): parameter n kind 'int' must be one of 'integer', 'boolean', 'choice'");
  });

  it("a build that throws is the scenario's fault, reported with where it threw", async () => {
    const file = join(temp, 'throws.mjs');
    writeFileSync(file, "export default { name: 'throws', params: [], build() { throw new Error('boom'); } };");
    const { code, err } = await cli('explore', file);
    expect(code).toBe(EXIT_USAGE);
    expect(err).toMatch(/scenario throws build threw Error: boom \(at .*throws\.mjs:1:/);
  });

  it('a module that fails to load', async () => {
    const file = join(temp, 'syntax.mjs');
    writeFileSync(file, 'export default {');
    const { code, err } = await cli('explore', file);
    expect(code).toBe(EXIT_USAGE);
    expect(err).toContain(`scenario file '${file.slice(0, 60)}`);
    expect(err).toContain('could not be loaded: '); // then the parser's own words
  });

  it('the unknown-command message lists the new commands', async () => {
    const { code, err } = await cli('frobnicate');
    expect(code).toBe(EXIT_USAGE);
    expect(err).toContain('commands: list, run <scenario>, explore <scenario|file>, replay <scenario|file>');
  });
});

describe('the progress bar', () => {
  it('redraws only when the percent changes, and erases itself', () => {
    const writes: string[] = [];
    const bar = progressBar((t) => writes.push(t), 'exploring x');
    for (let i = 1; i <= 1000; i++) bar.update(i, 1000);
    bar.done();
    expect(writes.length).toBeLessThanOrEqual(102);
    expect(writes.at(-2)).toContain(`exploring x [${'#'.repeat(30)}] 100% 1000/1000`);
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });

  it('with no budget, shows the count at round numbers', () => {
    const writes: string[] = [];
    const bar = progressBar((t) => writes.push(t), 'exploring');
    for (let i = 1; i <= 1000; i++) bar.update(i, Number.POSITIVE_INFINITY);
    expect(writes.length).toBe(28); // 1..9, 10..90, 100..900, 1000
  });

  /** A progress log on a clock the test sets, and the lines it wrote. */
  const lineLog = (from?: number, memory?: { resident: () => number; machine: number }) => {
    const lines: string[] = [];
    const clock = { ms: 0 };
    const log = progressLines(
      (t) => lines.push(t),
      'exploring x',
      'states',
      () => clock.ms,
      { from: from ?? 0, ...memory },
    );
    return { lines, clock, log };
  };

  it('on a stderr that is not a terminal, is a plain line a minute with the count and its rate', () => {
    const { lines, clock, log } = lineLog();
    for (let i = 1; i <= 2_000; i++) {
      clock.ms += 500; // a progress call each half second, 16,384 states apart: 1,000 s in all
      log.update(16_384 * i, 1e9);
    }
    log.done();
    expect(lines).toHaveLength(16); // at 60 s, 120 s, ... 960 s: none closer than a minute to the one before
    expect(lines[0]).toBe('exploring x: 1,966,080 states after 60 s (32,768/s)');
  });

  it("of a stateful search, shows the process's memory against the machine's", () => {
    const { lines, clock, log } = lineLog(0, { resident: () => 11_840_900_000, machine: 25_300_000_000 });
    clock.ms = 60_000;
    log.update(6_000_000, 1e9);
    expect(lines).toEqual(['exploring x: 6,000,000 states after 60 s (100,000/s), 11.8 of 25.3 GB resident']);
  });

  it("of a resumed search, counts the saved search's states and leaves them out of the rate", () => {
    const { lines, clock, log } = lineLog(270_000_000);
    clock.ms = 60_000;
    log.update(270_000_000 + 3_000_000, 1e9);
    expect(lines).toEqual(['exploring x: 273,000,000 states after 60 s (50,000/s)']);
  });

  it('is drawn on a terminal for a text explore, never with --json', async () => {
    for (const json of [false, true]) {
      const drawn: string[] = [];
      const io = { out: () => {}, err: () => {}, progress: (t: string) => drawn.push(t) };
      const argv = ['explore', 'stale-tlb', '--budget', '20', ...(json ? ['--json'] : [])];
      expect(await main(argv, io)).toBe(0);
      if (json) expect(drawn).toEqual([]);
      else expect(drawn.join('')).toContain('20/20');
    }
  });
});

describe('the distributed search on the command line: bad input', () => {
  const refused = async (argv: string[], message: RegExp) => {
    const { code, err } = await cli(...argv);
    expect(code).toBe(EXIT_USAGE);
    expect(err).toMatch(message);
  };

  it('refuses --ranges or --min-workers without --broker, naming the option', async () => {
    await refused(
      ['explore', 'stale-tlb', '--strategy', 'exhaustive', '--ranges', '4'],
      /--ranges applies with --broker/,
    );
    await refused(['explore', 'stale-tlb', '--strategy', 'exhaustive', '--min-workers', '2'], /--min-workers applies/);
  });

  it('refuses --broker for a search it does not distribute, and --workers beside it', async () => {
    await refused(['explore', 'stale-tlb', '--broker', '/nowhere.sock'], /--broker distributes the stateful/);
    await refused(
      ['explore', 'stale-tlb', '--strategy', 'exhaustive', '--broker', '/nowhere.sock', '--workers', '2'],
      /with --broker the workers are processes: start them with x86slice worker --broker \/nowhere\.sock/,
    );
  });

  it('says which broker it cannot reach, and refuses a worker with no broker or a bad name', async () => {
    await refused(
      ['explore', 'stale-tlb', '--strategy', 'exhaustive', '--broker', '/nonexistent/redis.sock'],
      /cannot reach the broker at \/nonexistent\/redis\.sock/,
    );
    await refused(['explore', 'stale-tlb', '--strategy', 'exhaustive', '--broker', 'http://x'], /must be a redis:\/\//);
    await refused(['worker'], /worker needs --broker <url>/);
    await refused(['worker', '--broker', '/x.sock', '--name', 'a b'], /--name 'a b' must be 1 to 64 letters/);
  });
});

describe('x86slice explore --save-search and --resume', () => {
  const switcheroo = ['explore', 'stack-migration', '-p', 'protocol=ipi-switcheroo', '--strategy', 'exhaustive'];

  it('a search cut by its budget is saved, taken up twice, and ends as one search run to its end does', async () => {
    const file = join(temp, 'switcheroo.search');
    const first = await cli(...switcheroo, '--budget', '1000', '--save-search', file, '--json');
    expect(JSON.parse(first.out)).toMatchObject({ states: 1000, complete: false, savedSearch: file });
    const second = await cli(...switcheroo, '--budget', '3000', '--resume', file, '--save-search', file);
    expect(second.out).toContain('3,000 states (resumed at 1,000)');
    expect(second.out).toContain(`search saved to ${file}: take it up with --resume ${file}`);
    const last = JSON.parse((await cli(...switcheroo, '--resume', file, '--json')).out);
    const whole = JSON.parse((await cli(...switcheroo, '--json')).out);
    expect(last).toMatchObject({ complete: true, resumedAt: 3000 });
    expect(last.savedSearch).toBeUndefined();
    const small = await cli(
      'explore',
      MY_SCENARIO,
      '--strategy',
      'exhaustive',
      '--save-search',
      join(temp, 'no.search'),
    );
    expect(small.out).toContain(
      `the search ended with nothing left to explore: ${join(temp, 'no.search')} not written`,
    );
    for (const key of ['states', 'transitions', 'depth', 'executions', 'distinctStates', 'violations'] as const) {
      expect(last[key], key).toEqual(whole[key]);
    }
  });

  it('refuses a saved search taken up with other parameters or options, naming what differs', async () => {
    const file = join(temp, 'cut.search');
    await cli(...switcheroo, '--budget', '500', '--save-search', file);
    const naive = await cli(
      'explore',
      'stack-migration',
      '-p',
      'protocol=naive',
      '--strategy',
      'exhaustive',
      '--resume',
      file,
    );
    expect(naive.code).toBe(EXIT_USAGE);
    expect(naive.err).toMatch(
      /--resume '.*cut\.search' was saved with params \{"protocol":"ipi-switcheroo",.*this run has \{"protocol":"naive"/,
    );
    const events = await cli(...switcheroo, '--tlb-events', '1', '--resume', file);
    expect(events.err).toMatch(/was saved with tlbEvents 0; this run has 1/);
    // Saved by a search whose fingerprints covered something else (the same length of header, another number).
    const bytes = readFileSync(file);
    const at = bytes.indexOf('"stateFormat":2');
    expect(at).toBeGreaterThan(0);
    bytes.write('"stateFormat":1', at);
    writeFileSync(file, bytes);
    expect((await cli(...switcheroo, '--resume', file)).err).toMatch(/was saved with stateFormat 1; this run has 2/);
  });

  it('refuses a file that is not a saved search, one that is missing, and the options it does not apply to', async () => {
    const notes = join(temp, 'notes.txt');
    writeFileSync(notes, 'hello\n');
    expect((await cli(...switcheroo, '--resume', notes)).err).toMatch(
      /--resume '.*notes\.txt' is not a search saved by x86slice: it does not start with 'x86slice-search 2' or 'x86slice-search 3'/,
    );
    expect((await cli(...switcheroo, '--resume', join(temp, 'none.search'))).err).toMatch(
      /--resume '.*none\.search': cannot read the file \(ENOENT\)/,
    );
    for (const extra of [
      ['--workers', '2'],
      ['--search', 'stateless'],
    ]) {
      const r = await cli(...switcheroo, ...extra, '--save-search', join(temp, 'x.search'));
      expect(r.code).toBe(EXIT_USAGE);
      expect(r.err).toContain('--save-search applies to the stateful exhaustive search on one thread');
    }
    expect((await cli(...switcheroo, '--save-every', '60')).err).toContain(
      '--save-every applies with --save-search FILE (the file it saves to)',
    );
    const pct = await cli('explore', 'stack-migration', '--strategy', 'pct', '--resume', notes);
    expect(pct.err).toContain('--resume applies to the stateful exhaustive search on one thread');
  });

  it('--dead-words off searches with every word from the start, and a search saved so resumes so', async () => {
    const small = [...switcheroo, '-p', 'rounds=3'];
    const whole = JSON.parse((await cli(...small, '--dead-words', 'off', '--json')).out);
    const lean = JSON.parse((await cli(...small, '--json')).out);
    expect([whole.complete, whole.deadWords, lean.deadWords]).toEqual([true, false, true]);
    // Popped words in the state tell apart states that differ only below a stack pointer: more states.
    expect(whole.states).toBeGreaterThan(lean.states);
    const file = join(temp, 'every-word.search');
    await cli(...small, '--dead-words', 'off', '--budget', '2000', '--save-search', file);
    const rest = JSON.parse((await cli(...small, '--resume', file, '--json')).out);
    expect([rest.complete, rest.deadWords, rest.states, rest.violations]).toEqual([true, false, whole.states, []]);
    expect((await cli(...small, '--dead-words', 'maybe')).err).toContain("--dead-words 'maybe' must be one of on, off");
    const pct = await cli('explore', 'stack-migration', '--strategy', 'pct', '--dead-words', 'off');
    expect([pct.code, pct.err]).toEqual([
      EXIT_USAGE,
      expect.stringContaining('--dead-words applies to the stateful exhaustive search'),
    ]);
  });
});
