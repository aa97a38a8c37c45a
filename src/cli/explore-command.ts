import { writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ExploreOptions, type ExploreResult, explore, replay } from '../explore/explore.ts';
import { type SearchSnapshot, STATE_FORMAT } from '../explore/search-snapshot.ts';
import type { Machine } from '../machine/machine.ts';
import { describeValue, InputError } from '../mmu/input-error.ts';
import type { Scenario, ScenarioParams } from '../scenarios/scenario.ts';
import { parseParamStrings, resolveParams } from '../scenarios/scenario.ts';
import { buildScenario, findScenarioRef, isScenarioPath, machineFactory } from '../scenarios/scenario-module.ts';
import { type CliIo, EXIT_OK, EXIT_VIOLATION } from './io.ts';
import { paramStrings } from './params.ts';
import { progressBar, progressLines } from './progress.ts';
import { type ReplayRun, replayOutcome, replayReport, replayText } from './report.ts';
import { readSavedSearch, writeSavedSearch } from './saved-search.ts';
import { VERSION } from './version.ts';

// `x86slice explore` and `x86slice replay`: explore a scenario's interleavings (a catalogue name or a user's module)
// and report each violation as a schedule; replay one schedule as a per-CPU timeline, a Chrome trace or a Mermaid
// sequence diagram. Loaded on first use by main.ts, so `x86slice list` never loads the checker.

export interface ExploreFlags {
  readonly param?: unknown;
  readonly strategy?: unknown;
  readonly search?: unknown;
  readonly preemptions?: unknown;
  readonly tlbEvents?: unknown;
  readonly cacheEvents?: unknown;
  readonly seed?: unknown;
  readonly budget?: unknown;
  readonly timeLimit?: unknown;
  readonly workers?: unknown;
  readonly broker?: unknown;
  readonly ranges?: unknown;
  readonly minWorkers?: unknown;
  readonly saveSearch?: unknown;
  readonly saveEvery?: unknown;
  readonly resume?: unknown;
  readonly deadWords?: unknown;
  readonly json?: unknown;
}

export interface ReplayFlags {
  readonly param?: unknown;
  readonly schedule?: unknown;
  readonly trace?: unknown;
  readonly out?: unknown;
  readonly json?: unknown;
}

const STRATEGIES = ['exhaustive', 'pct', 'random'] as const;
const SEARCHES = ['stateful', 'stateless'] as const;
const CACHE_EVENTS = ['held', 'mapped'] as const;
const ON_OFF = ['on', 'off'] as const;
const TRACE_FORMATS = ['text', 'chrome', 'mermaid'] as const;

/**
 * The text typed for a value option, each time it was given (`--name v` or `--name=v`, and cac's camelCase
 * spelling). cac's parser turns text that looks numeric into a number ('0x10' is 16, '1e3' 1000, '' 0), so a
 * strict check, and a schedule such as '' or '1', read the argv itself.
 */
export function optionTexts(argv: readonly string[], flag: string): string[] {
  const names = [flag, flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())];
  const texts: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    for (const name of names) {
      if (arg.startsWith(`${name}=`)) texts.push(arg.slice(name.length + 1));
      else if (arg === name && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('-')) texts.push(argv[++i]!);
    }
  }
  return texts;
}

/** One value option's text as typed (undefined when absent); given twice is refused rather than one winning. */
export function optionText(argv: readonly string[], flag: string, parsed: unknown): string | undefined {
  if (parsed === undefined) return undefined;
  const texts = optionTexts(argv, flag);
  if (Array.isArray(parsed) || texts.length > 1) throw new InputError(`${flag} is given more than once; give it once`);
  return texts[0] ?? String(parsed);
}

/** A decimal integer option in min..max; `meaning` says what it counts. */
export function integerOption(
  argv: readonly string[],
  flag: string,
  parsed: unknown,
  range: readonly [number, number],
  meaning: string,
): number | undefined {
  const text = optionText(argv, flag, parsed);
  if (text === undefined) return undefined;
  const [min, max] = range;
  const n = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max)) {
    throw new InputError(`${flag} ${describeValue(text)} must be a decimal integer in ${min}..${max} (${meaning})`);
  }
  return n;
}

export function choiceOption<T extends string>(
  argv: readonly string[],
  flag: string,
  parsed: unknown,
  choices: readonly T[],
): T | undefined {
  const text = optionText(argv, flag, parsed);
  if (text === undefined) return undefined;
  if (!choices.includes(text as T))
    throw new InputError(`${flag} ${describeValue(text)} must be one of ${choices.join(', ')}`);
  return text as T;
}

/**
 * `--time-limit <seconds>`: a positive decimal number of seconds (at most 3 decimals, at most 30 days), as
 * milliseconds.
 */
export function secondsOption(argv: readonly string[], flag: string, parsed: unknown): number | undefined {
  const text = optionText(argv, flag, parsed);
  if (text === undefined) return undefined;
  const ms = /^\d{1,7}(\.\d{1,3})?$/.test(text) ? Math.round(Number(text) * 1000) : Number.NaN;
  if (!(ms >= 1 && ms <= 30 * 24 * 3600 * 1000)) {
    throw new InputError(
      `${flag} ${describeValue(text)} must be a positive number of seconds, such as 60 or 0.5 (at most 3 decimals, ` +
        'at most 30 days)',
    );
  }
  return ms;
}

/** The scenario a command names and its parameters, resolved; `pairs` are the `-p` strings as typed. */
async function scenarioOf(ref: string, pairs: readonly string[]) {
  const raw = parseParamStrings(pairs);
  const scenario = await findScenarioRef(ref);
  const params = resolveParams(scenario, raw);
  // The scenario's own step bound (a long workload needs more than explore's default), read from one build.
  const { maxSteps } = buildScenario(scenario, params, { trace: false }).run;
  return { scenario, params, ...(maxSteps === undefined ? {} : { maxSteps }) };
}

/** scenario-module's URL as the running code has it: its .ts source under vitest or tsx, its .js build in dist/. */
function scenarioModuleUrl(): string {
  const ext = extname(fileURLToPath(import.meta.url));
  return new URL(`../scenarios/scenario-module${ext}`, import.meta.url).href;
}

/** The command that replays a schedule, for the user to paste (schedules hold no quotes or shell characters). */
function replayCommandLine(ref: string, pairs: readonly string[], schedule: string): string {
  // A value the shell would read (a phase list's parentheses) is quoted; no parameter value holds a quote.
  const params = pairs.map((p) => (/^[\w.,:=/+-]*$/.test(p) ? ` -p ${p}` : ` -p '${p}'`)).join('');
  return `x86slice replay ${ref}${params} --schedule '${schedule}'`;
}

/**
 * The stateful search's figures: what it stored and took, and how fast (wall clock: the CLI's, not the model's).
 * `resumedAt`: the states of the saved search it took up (the rate counts only this run's).
 */
function statefulFigures(r: ExploreResult, seconds: number, resumedAt = 0) {
  if (r.search !== 'stateful') return undefined;
  return {
    states: r.states!,
    ...(resumedAt > 0 ? { resumedAt } : {}),
    transitions: r.transitions!,
    depth: r.depth!,
    seconds: Math.round(seconds * 1000) / 1000,
    statesPerSecond: Math.round((r.states! - resumedAt) / Math.max(seconds, 1e-6)),
    bytesPerState: Math.round((10 * r.visitedBytes!) / Math.max(1, r.states!)) / 10,
    collisionProbability: r.collisionProbability!,
    deadWords: r.deadWords === true,
    ...(r.copiedLive ? { copiedLive: true } : {}),
    ...(r.deadWordsOff === undefined ? {} : { deadWordsOff: r.deadWordsOff }),
  };
}

function exploreJson(
  scenario: Scenario,
  ref: string,
  params: ScenarioParams,
  r: ExploreResult,
  seconds: number,
  resumedAt = 0,
) {
  return {
    scenario: scenario.name,
    ...(isScenarioPath(ref) ? { file: ref } : {}),
    params,
    strategy: r.strategy,
    ...(r.search === undefined ? {} : { search: r.search }),
    ...(r.workers === undefined ? {} : { workers: r.workers }),
    executions: r.executions,
    steps: r.steps,
    distinctStates: r.distinctStates,
    ...(r.preemptionBound === undefined ? {} : { preemptionBound: r.preemptionBound }),
    ...statefulFigures(r, seconds, resumedAt),
    complete: r.complete,
    ...(r.stoppedBy === undefined ? {} : { stoppedBy: r.stoppedBy }),
    violations: r.violations.map((v) => ({
      outcome: v.kind,
      schedule: v.schedule,
      scheduleLength: v.scheduleLength,
      // Deprecated: the same count under its 0.1 name (schedule entries, not machine steps); removed in 0.2.
      steps: v.scheduleLength,
      ...(v.message === undefined ? {} : { message: v.message }),
    })),
  };
}

function count(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}

/** A count with thousands separators (a stateful search stores millions of states). */
function grouped(n: number): string {
  return n.toLocaleString('en-US');
}

function exploreText(
  scenario: Scenario,
  ref: string,
  pairs: readonly string[],
  params: ScenarioParams,
  r: ExploreResult,
  seconds: number,
  resumedAt = 0,
): string {
  const shown = Object.entries(params)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const figures = statefulFigures(r, seconds, resumedAt);
  const counts = figures
    ? [
        `${grouped(figures.states)} states${resumedAt > 0 ? ` (resumed at ${grouped(resumedAt)})` : ''}`,
        `${grouped(figures.transitions)} transitions`,
        `depth ${figures.depth}`,
        count(r.distinctStates, 'final state'),
        `${grouped(figures.statesPerSecond)} states/s (${figures.seconds.toFixed(1)} s)`,
        `${figures.bytesPerState} bytes/state`,
        `collision probability ${figures.collisionProbability.toExponential(1)}`,
      ].join(', ')
    : [
        count(r.executions, 'execution'),
        count(r.steps, 'step'),
        count(r.distinctStates, 'distinct final state'),
        ...(r.preemptionBound === undefined ? [] : [`preemption bound ${r.preemptionBound}`]),
      ].join(', ');
  const on = r.workers === undefined ? '' : `, ${r.workers} workers`;
  const how = r.search === undefined ? r.strategy : `${r.strategy} (${r.search} search${on})`;
  const lines = [`explore ${scenario.name}${shown ? ` (${shown})` : ''}: ${how}, ${counts}`];
  if (r.deadWordsOff !== undefined) lines.push(`note: ${r.deadWordsOff}`);
  const coverage = r.complete
    ? r.search === 'stateful'
      ? 'complete: every reachable state within the TLB-event budget was visited'
      : 'complete: every interleaving within the bounds was run'
    : r.stoppedBy === 'time-limit'
      ? r.strategy === 'exhaustive'
        ? r.search === 'stateful'
          ? 'incomplete: the time limit ran out before every reachable state was visited; a time-limited result is not reproducible'
          : 'incomplete: the time limit ran out before every interleaving was run; a time-limited result is not reproducible'
        : `sampled: the time limit stopped it after ${count(r.executions, 'execution')}; a time-limited result is not reproducible`
      : r.strategy === 'exhaustive'
        ? r.search === 'stateful'
          ? 'incomplete: the search stopped at the budget of states (or the step bound) before the end'
          : 'incomplete: the budget ran out before every interleaving was run'
        : 'sampled: not every interleaving was run';
  if (r.violations.length === 0) {
    lines.push(`no violation found (${coverage})`);
    return lines.join('\n');
  }
  lines.push(`${count(r.violations.length, 'violation')} (${coverage}):`);
  for (const v of r.violations) {
    const why = v.message ? `: ${v.message.split('\n')[0]}` : '';
    lines.push(`  ${v.kind}, schedule '${v.schedule}' (${count(v.scheduleLength, 'entry', 'entries')})${why}`);
    lines.push(`    ${replayCommandLine(ref, pairs, v.schedule)}`);
  }
  return lines.join('\n');
}

/** `x86slice explore`: exit 1 when a violation is found, 0 when none. */
export async function exploreCommand(ref: string, flags: ExploreFlags, argv: readonly string[], io: CliIo) {
  const strategy = choiceOption(argv, '--strategy', flags.strategy, STRATEGIES);
  const budget = integerOption(argv, '--budget', flags.budget, [1, 1e12], 'executions to run at most');
  const timeLimit = secondsOption(argv, '--time-limit', flags.timeLimit);
  const seed = integerOption(argv, '--seed', flags.seed, [0, 2 ** 32 - 1], 'the PRNG seed');
  const preemptions = integerOption(
    argv,
    '--preemptions',
    flags.preemptions,
    [0, 1000],
    'preemptions an execution may have',
  );
  const tlbEvents = integerOption(
    argv,
    '--tlb-events',
    flags.tlbEvents,
    [0, 1000],
    'TLB events an execution may choose',
  );
  const cacheEvents = choiceOption(argv, '--cache-events', flags.cacheEvents, CACHE_EVENTS);
  const workersGiven = integerOption(argv, '--workers', flags.workers, [1, 64], 'worker threads');
  const workers = workersGiven ?? 1;
  const searchGiven = choiceOption(argv, '--search', flags.search, SEARCHES);
  if (searchGiven !== undefined && strategy !== 'exhaustive') {
    throw new InputError(`--search applies to --strategy exhaustive, not ${strategy ?? 'random'}`);
  }
  // The stateful search where it applies: exhaustive, with no preemption bound.
  let search: (typeof SEARCHES)[number] | undefined;
  if (strategy === 'exhaustive') {
    search = searchGiven ?? (preemptions !== undefined ? 'stateless' : 'stateful');
    if (search === 'stateful' && preemptions !== undefined) {
      throw new InputError('--preemptions applies to --search stateless: the stateful search has no bound');
    }
  }
  const broker = optionText(argv, '--broker', flags.broker);
  const ranges = integerOption(argv, '--ranges', flags.ranges, [1, 4096], 'parts the states are split into');
  const minWorkers = integerOption(argv, '--min-workers', flags.minWorkers, [1, 1024], 'workers to wait for');
  if (broker === undefined && (ranges !== undefined || minWorkers !== undefined)) {
    throw new InputError(`${ranges !== undefined ? '--ranges' : '--min-workers'} applies with --broker only`);
  }
  if (broker !== undefined) {
    if (search !== 'stateful') {
      throw new InputError(
        '--broker distributes the stateful exhaustive search: give --strategy exhaustive (without --search stateless ' +
          'or --preemptions)',
      );
    }
    if (workersGiven !== undefined) {
      throw new InputError(
        '--workers counts threads of this process; with --broker the workers are processes: start them with ' +
          `x86slice worker --broker ${broker}`,
      );
    }
  }
  const saveTo = optionText(argv, '--save-search', flags.saveSearch);
  const resumeFrom = optionText(argv, '--resume', flags.resume);
  const saveEvery = integerOption(argv, '--save-every', flags.saveEvery, [1, 30 * 24 * 3600], 'seconds between saves');
  if (saveEvery !== undefined && saveTo === undefined) {
    throw new InputError('--save-every applies with --save-search FILE (the file it saves to)');
  }
  for (const [flag, given] of [
    ['--save-search', saveTo],
    ['--resume', resumeFrom],
  ] as const) {
    if (given === undefined) continue;
    if (given === '' || given === 'true') throw new InputError(`${flag} needs a file name`);
    if (search !== 'stateful' || broker !== undefined || workers > 1) {
      throw new InputError(
        `${flag} applies to the stateful exhaustive search on one thread (--strategy exhaustive, without --search ` +
          'stateless, --preemptions, --workers or --broker)',
      );
    }
  }
  const deadWords = choiceOption(argv, '--dead-words', flags.deadWords, ON_OFF);
  if (deadWords !== undefined && search !== 'stateful') {
    throw new InputError(
      '--dead-words applies to the stateful exhaustive search (--strategy exhaustive, without --search stateless or ' +
        '--preemptions): the others keep no states',
    );
  }
  const pairs = paramStrings(argv, flags.param);
  const { scenario, params, maxSteps } = await scenarioOf(ref, pairs);
  // What a saved search was run with: a resume with anything else is refused (src/cli/saved-search.ts).
  const about = {
    version: VERSION,
    stateFormat: STATE_FORMAT,
    scenario: isScenarioPath(ref) ? resolve(process.cwd(), ref) : scenario.name,
    params,
    tlbEvents: tlbEvents ?? 0,
    cacheEvents: cacheEvents ?? 'held',
    maxSteps: maxSteps ?? null,
  };
  const resume = resumeFrom === undefined ? undefined : readSavedSearch(resumeFrom, about);
  // Each save on the way says so on stderr (a long search run unattended shows its progress in its log).
  const launched = performance.now();
  const saveOnTheWay = (file: string, s: SearchSnapshot) => {
    writeSavedSearch(file, s, about);
    const seconds = (performance.now() - launched) / 1000;
    const rate = (s.visitedSize - (resume?.visitedSize ?? 0)) / Math.max(seconds, 1e-6);
    io.err(
      `saved ${grouped(s.visitedSize)} states to ${file} after ${Math.round(seconds)} s ` +
        `(${grouped(Math.round(rate))} states/s, depth ${s.next.length})`,
    );
  };

  const label = `exploring ${scenario.name}`;
  const bar = io.progress
    ? flags.json
      ? undefined
      : progressBar(io.progress, label)
    : progressLines(io.err, label, search === 'stateful' ? 'states' : 'executions', () => performance.now(), {
        from: resume?.visitedSize ?? 0,
        // A stateful search's memory grows with its states: the log shows how close it is to the machine's.
        ...(search === 'stateful' ? { resident: () => process.memoryUsage.rss(), machine: totalmem() } : {}),
      });
  const options: ExploreOptions = {
    ...(strategy === undefined ? {} : { strategy }),
    ...(search === undefined ? {} : { search }),
    ...(budget === undefined ? {} : { budget }),
    ...(timeLimit === undefined ? {} : { timeLimit }),
    ...(seed === undefined ? {} : { seed }),
    ...(preemptions === undefined ? {} : { preemptions }),
    ...(tlbEvents === undefined ? {} : { tlbEvents }),
    ...(cacheEvents === undefined ? {} : { cacheEvents }),
    ...(maxSteps === undefined ? {} : { maxSteps }),
    ...(bar ? { onProgress: (done: number, total: number) => bar.update(done, total) } : {}),
    ...(saveTo === undefined ? {} : { saveSearch: true }),
    ...(saveTo === undefined || saveEvery === undefined
      ? {}
      : { saveSearchEvery: { seconds: saveEvery, save: (s: SearchSnapshot) => saveOnTheWay(saveTo, s) } }),
    ...(resume === undefined ? {} : { resume }),
    ...(deadWords === undefined ? {} : { deadWords: deadWords === 'on' }),
  };
  let result: ExploreResult;
  const started = performance.now();
  let distributed: Record<string, unknown> | undefined;
  try {
    if (broker !== undefined) {
      const { exploreOverBroker } = await import('./broker-explore.ts');
      const scenarioRef = isScenarioPath(ref) ? resolve(process.cwd(), ref) : ref;
      const done = await exploreOverBroker(broker, scenario, scenarioRef, params, options, {
        ranges: ranges ?? 16,
        minWorkers: minWorkers ?? 1,
        io,
      });
      result = done.result;
      distributed = done.broker;
    } else if (workers > 1) {
      const { exploreParallel } = await import('../explore/parallel.ts');
      // Workers rebuild the scenario from plain data; a module path is made absolute so each finds the same file.
      const source = {
        module: scenarioModuleUrl(),
        export: 'scenarioBuilder',
        args: [isScenarioPath(ref) ? resolve(process.cwd(), ref) : ref, params],
      };
      result = await exploreParallel(source, { ...options, workers });
    } else {
      result = explore(machineFactory(scenario, params), options);
    }
  } finally {
    bar?.done();
  }
  const seconds = (performance.now() - started) / 1000;
  const saved = saveTo !== undefined && result.snapshot !== undefined ? saveTo : undefined;
  if (saved !== undefined) writeSavedSearch(saved, result.snapshot!, about);
  io.out(
    flags.json
      ? JSON.stringify(
          {
            ...exploreJson(scenario, ref, params, result, seconds, resume?.visitedSize),
            ...(distributed ? { broker: distributed } : {}),
            ...(saved ? { savedSearch: saved } : {}),
          },
          null,
          2,
        )
      : exploreText(scenario, ref, pairs, params, result, seconds, resume?.visitedSize) +
          (distributed ? `\nbroker: ${JSON.stringify(distributed)}` : '') +
          (saved
            ? `\nsearch saved to ${saved}: take it up with --resume ${saved}`
            : saveTo !== undefined
              ? `\nthe search ended with nothing left to explore: ${saveTo} not written`
              : ''),
  );
  return result.violations.length > 0 ? EXIT_VIOLATION : EXIT_OK;
}

/** The trace in the format asked for. */
async function formatTrace(format: (typeof TRACE_FORMATS)[number], run: ReplayRun, machine: Machine): Promise<string> {
  if (format === 'text') return replayText(run);
  if (format === 'chrome') {
    const { formatChromeTrace } = await import('../trace/chrome.ts');
    return formatChromeTrace(machine.trace, machine.cpus.length);
  }
  const { formatMermaid } = await import('../trace/mermaid.ts');
  return formatMermaid(machine.trace, machine.cpus.length);
}

/** `x86slice replay`: exit 1 when the replayed run is a violation, 0 when not. */
export async function replayCommand(ref: string, flags: ReplayFlags, argv: readonly string[], io: CliIo) {
  const schedule = optionText(argv, '--schedule', flags.schedule);
  if (schedule === undefined) {
    throw new InputError(
      "replay needs --schedule <schedule>: a schedule x86slice explore reported, such as --schedule '0,1' " +
        "('' runs the least interleaved order)",
    );
  }
  const traceFormat = choiceOption(argv, '--trace', flags.trace, TRACE_FORMATS);
  const format = traceFormat ?? 'text';
  const out = optionText(argv, '--out', flags.out);
  if (out === '') throw new InputError("--out '' must name a file to write the trace to");
  const json = flags.json === true;
  if (json && traceFormat !== undefined && out === undefined) {
    throw new InputError(
      `--json and --trace ${traceFormat} would both go to stdout: give --out <file> for the trace, or drop one`,
    );
  }
  const { scenario, params, maxSteps } = await scenarioOf(ref, paramStrings(argv, flags.param));
  // With --json alone nothing reads the trace: the machine runs without one.
  const traced = !json || out !== undefined;
  const replayed = replay(
    machineFactory(scenario, params, { trace: traced }),
    schedule,
    maxSteps === undefined ? {} : { maxSteps },
  );
  const run: ReplayRun = { scenario, params, schedule, ...replayed };
  if (json && out === undefined) {
    io.out(JSON.stringify(replayReport(run), null, 2));
    return replayed.kind === undefined ? EXIT_OK : EXIT_VIOLATION;
  }
  const text = await formatTrace(format, run, replayed.machine);
  if (out === undefined) {
    io.out(text);
    // A Chrome trace or a diagram on stdout stays clean for a pipe: the outcome goes to stderr.
    if (format !== 'text') io.err(replayOutcome(run));
  } else {
    try {
      writeFileSync(out, format === 'text' ? `${text}\n` : text);
    } catch (error) {
      throw new InputError(`--out ${describeValue(out)} cannot be written: ${(error as Error).message}`);
    }
    if (json) io.out(JSON.stringify(replayReport(run), null, 2));
    else {
      io.out(`wrote the ${format} trace of ${replayed.machine.trace.length} steps to ${out}`);
      io.out(replayOutcome(run));
    }
  }
  return replayed.kind === undefined ? EXIT_OK : EXIT_VIOLATION;
}
