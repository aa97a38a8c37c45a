import { cac } from 'cac';
import { InputError } from '../mmu/input-error.ts';
import { SCENARIO_LIST as SCENARIOS } from '../scenarios/listing.ts';
import { paramRange, parseParamStrings } from '../scenarios/scenario.ts';
import { type CliIo, EXIT_USAGE, processIo } from './io.ts';
import { paramStrings } from './params.ts';
import { VERSION } from './version.ts';

// The x86slice command line: list the scenarios, run one, explore one's interleavings, replay a schedule explore
// reported, or show the flagship demo. `list` needs only the scenarios' descriptions; the machine, the checker and
// the reports load when a command uses them, so `list` starts fast.

/** The modules that run a scenario and print it, loaded on first use. */
async function runner() {
  const [{ runScenario }, { runReport, runText }] = await Promise.all([
    import('../scenarios/catalogue.ts'),
    import('./report.ts'),
  ]);
  return { runScenario, runReport, runText };
}

/** The explore and replay commands, loaded on first use: they bring in the checker. */
function checker() {
  return import('./explore-command.ts');
}

export type { CliIo } from './io.ts';
// Exit codes: 0 the command ran (no violation), 1 explore or replay found a violation, 2 bad input (unknown
// scenario, parameter, option or command; a malformed schedule; a scenario file that is missing or exports none).
export { EXIT_OK, EXIT_USAGE, EXIT_VIOLATION } from './io.ts';

const COMMANDS =
  'list, run <scenario>, explore <scenario|file>, replay <scenario|file> --schedule S, mutate <scenario>, frag, ' +
  'worker --broker URL, demo';

const EXIT_CODES = `  0  the command ran; explore found no violation, or the replayed run is not one
  1  explore found a violation, or the replayed run is one
  2  bad input: an unknown command, option, scenario or parameter, a malformed or inapplicable schedule,
     a scenario file that does not exist or exports no scenario`;

function listText(): string {
  const width = Math.max(...SCENARIOS.map((s) => s.name.length));
  const lines = ['Scenarios (x86slice run <name> [-p key=value ...] [--json]):', ''];
  for (const s of SCENARIOS) {
    lines.push(`  ${s.name.padEnd(width)}  ${s.summary}`);
    lines.push(`  ${''.padEnd(width)}  family: ${s.family}; demonstrates: ${s.expected}`);
    for (const p of s.params) {
      const range = paramRange(p);
      lines.push(`  ${''.padEnd(width)}  -p ${p.name}=<${range}> (default ${p.default}): ${p.description}`);
    }
  }
  return lines.join('\n');
}

const DEMO_INTRO = `x86slice demo: migrating the page under a running task's VMAP stack (the 2018 linux-mm question).
CPU1 runs a task that calls and pushes on its vmalloc'ed stack; CPU0 moves the stack's top page to a new frame.
The naive protocol clears the PTE and shoots it down (flush_tlb_kernel_range): CPU1 takes the flush IPI, its
frame goes on the old stack, the INVLPG drops the entry, and the iret finds the stack unmapped. The #PF cannot be
delivered on that stack either: SDM Table 6-5 makes it #DF, which runs on IST1 and panics.
`;

const SWITCHEROO_INTRO = `
The ipi-switcheroo protocol instead sends a synchronized IPI to the task's CPU. Its handler, on the IRQ stack,
copies the page, installs the new PTE and INVLPGs locally; then every other CPU is flushed, and only then is the
old frame freed. The task never sees the page missing:
`;

const DEMO_OUTRO = `
Explore it yourself: x86slice explore stack-migration -p protocol=naive (a double fault in under a second);
-p protocol=ipi-switcheroo --strategy exhaustive --preemptions 1 proves it clean within that bound. The other
protocols (no-wait, migration-entry), data pages and the IRQs-off deadlock: x86slice list, docs/scenarios/migration.md.
The same double fault without migration: x86slice run pf-in-pf, x86slice run vmap-stack-switch.
`;

export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const cli = cac('x86slice');
  let code = 0;
  cli.command('list', 'List the scenarios and their parameters').action(() => io.out(listText()));
  cli
    .command('run <scenario>', 'Run a scenario and print its per-CPU timeline')
    .option('-p, --param <key=value>', 'Scenario parameter (repeatable)')
    .option('--json', 'Print one JSON object: scenario, outcome, steps, per-CPU final state')
    .option('--tail <steps>', 'Print only the last <steps> steps of the timeline')
    .option('--timed', "Run on the cost model's clocks (schedule 'timed'); the report adds simulated nanoseconds")
    .action(async (name: string, options: { param?: unknown; json?: boolean; tail?: unknown; timed?: boolean }) => {
      const tail = options.tail === undefined ? undefined : Number(options.tail);
      if (tail !== undefined && !(Number.isInteger(tail) && tail >= 1)) {
        throw new InputError(`--tail ${String(options.tail)} must be a positive integer (a number of steps)`);
      }
      const params = parseParamStrings(paramStrings(argv, options.param));
      const { runScenario, runReport, runText } = await runner();
      const run = runScenario(name, params, { trace: !options.json, timed: options.timed === true });
      io.out(options.json ? JSON.stringify(runReport(run), null, 2) : runText(run, tail === undefined ? {} : { tail }));
    });
  cli
    .command('explore <scenario>', "Explore a scenario's interleavings (a catalogue name or ./file.ts) for violations")
    .option('-p, --param <key=value>', 'Scenario parameter (repeatable)')
    .option('--strategy <name>', 'exhaustive | pct | random')
    .option(
      '--search <kind>',
      'exhaustive: stateful (default: every reachable state once) | stateless (executions from the start, DPOR)',
    )
    .option('--preemptions <k>', 'Preemptions an exhaustive execution may have (stateless search)')
    .option(
      '--tlb-events <k>',
      'TLB and paging-structure-cache evictions and speculative fills an execution may choose',
    )
    .option(
      '--cache-events <scope>',
      'held (default: entries CPUs hold, fills of pages another CPU holds) | mapped (every translation and entry)',
    )
    .option('--seed <s>', 'PRNG seed for pct and random: the same seed, the same executions')
    .option('--budget <n>', 'Executions to run (the stateful search: states to store)')
    .option(
      '--time-limit <seconds>',
      'Stop after this many seconds (wall clock); a result cut by it is not reproducible',
    )
    .option(
      '--workers <n>',
      'Worker threads (default 1: this process); the stateful search shares its visited states among them',
    )
    .option(
      '--broker <url>',
      'Coordinate the distributed stateful search over a Redis broker (redis://host:port): see docs/distributed.md',
    )
    .option('--ranges <n>', 'With --broker: parts the states are split into by fingerprint (default 16)')
    .option('--min-workers <n>', 'With --broker: workers to wait for before the search starts (default 1)')
    .option(
      '--save-search <file>',
      'The stateful search on one thread: if the budget or time limit stops it, save it to this file (see --resume)',
    )
    .option('--save-every <seconds>', 'With --save-search: also save the search every so many seconds while it runs')
    .option(
      '--resume <file>',
      'Take up the stateful search saved in this file where it stopped (the same scenario, parameters and options)',
    )
    .option(
      '--dead-words <on|off>',
      'The stateful search: leave popped stack words out of states (default on; off: every word from the start)',
    )
    .option(
      '--json',
      'Print one JSON object: executions, steps, complete, violations [{ outcome, schedule, scheduleLength, message }]',
    )
    .example('x86slice explore stale-tlb --strategy pct --budget 1000 --tlb-events 1')
    .example('x86slice explore stack-migration -p protocol=naive --strategy exhaustive --tlb-events 1')
    .example('x86slice explore ./my-scenario.ts -p locked=true --json')
    .action(async (ref: string, options: Record<string, unknown>) => {
      code = await (await checker()).exploreCommand(ref, options, argv, io);
    });
  cli
    .command('worker', 'Serve the distributed stateful search: join the runs a coordinator publishes on the broker')
    .option('--broker <url>', 'The Redis broker (redis://host:port, or a unix socket path)')
    .option('--name <name>', "This worker's name (default: host and process id)")
    .option('--once', 'Leave after one run')
    .example('x86slice worker --broker redis://127.0.0.1:6379')
    .action(async (options: Record<string, unknown>) => {
      const { workerCommand } = await import('./broker-explore.ts');
      code = await workerCommand(options, argv, io);
    });
  cli
    .command('replay <scenario>', 'Replay one schedule: per-CPU timeline, Chrome trace or Mermaid diagram')
    .option('-p, --param <key=value>', 'Scenario parameter (repeatable)')
    .option('--schedule <schedule>', "The schedule to replay, as explore reported it ('' for the default order)")
    .option('--trace <format>', 'text (default) | chrome (trace-event JSON) | mermaid (sequence diagram)')
    .option('--out <file>', 'Write the trace to <file> instead of stdout')
    .option(
      '--json',
      'Print one JSON object (as run --json): scenario, schedule, outcome, steps, per-CPU final state, message',
    )
    .example("x86slice replay pf-in-pf --schedule ''")
    .example("x86slice replay stale-tlb --schedule '1,1,0' --trace chrome --out trace.json")
    .example("x86slice replay pf-in-pf --schedule '' --json")
    .action(async (ref: string, options: Record<string, unknown>) => {
      code = await (await checker()).replayCommand(ref, options, argv, io);
    });
  cli
    .command('mutate <scenario>', 'Mutation-check a migration protocol: does its clean verdict depend on each step?')
    .option(
      '-p, --param <key=value>',
      'protocol=<name or phase list> (default ipi-switcheroo); chunk, store-buffer, psc',
    )
    .option('--budget <states>', 'States each exploration may store (default 5,000,000)')
    .option('--workers <n>', "Explorations at once, each on a worker thread (default: the machine's CPUs, up to 8)")
    .option('--json', 'Print one JSON object: configurations, mutants [{ phases, change, killedBy, equivalent }]')
    .example('x86slice mutate stack-migration -p protocol=ipi-switcheroo')
    .example("x86slice mutate data-migration -p protocol='migration-entry,flush,copy,install,free' --json")
    .action(async (ref: string, options: Record<string, unknown>) => {
      const { mutateCommand } = await import('./mutate-command.ts');
      code = await mutateCommand(ref, options, argv, io);
    });
  cli
    .command('frag', 'The fragmentation experiment: stress-highalloc and thpchallenge under four vmalloc policies')
    .option('--workload <name>', 'stress-highalloc (default) | thpchallenge | both')
    .option('--variant <name>', 'default | no-2m (no vmalloc area of 2 MiB or more) | both (default both)')
    .option('--seeds <n>', 'Seeds 1..n per policy (default 10)')
    .option('--memory <MiB>', 'Machine memory, 64..4096 (default 1024)')
    .option('--operations <n>', 'Workload operations per run (default 4000)')
    .option('--workers <n>', 'Worker threads (default: the CPUs, up to 8)')
    .option('--out <dir>', 'Where frag.json and frag.svg go (default frag-out)')
    .option('--json', 'Print the summaries as one JSON object')
    .action(async (options: Record<string, unknown>) => {
      const { fragCommand } = await import('./frag-command.ts');
      code = await fragCommand(options, argv, io);
    });
  cli
    .command('demo', 'The flagship demo: a stack page migrated naively double-faults; the switcheroo works')
    .action(async () => {
      const { runScenario, runText } = await runner();
      io.out(DEMO_INTRO);
      io.out(runText(runScenario('stack-migration', { protocol: 'naive' }), { tail: 24 }));
      io.out(SWITCHEROO_INTRO);
      io.out(runText(runScenario('stack-migration', { protocol: 'ipi-switcheroo' }), { tail: 10 }));
      // The switcheroo's cost, on the cost model's clocks, with a task long enough to be running when the IPI lands.
      const timed = runScenario(
        'stack-migration',
        { protocol: 'ipi-switcheroo', rounds: 200 },
        { trace: false, timed: true },
      );
      const ns = (timed.report?.timedNs ?? {}) as Record<string, number>;
      io.out(
        `\nWhat it costs (x86slice run stack-migration -p protocol=ipi-switcheroo -p rounds=200 --timed, simulated from ` +
          `published figures, docs/cost-model.md): the migration takes ${ns.migration} ns on CPU0; CPU1's task ` +
          `stalls ${ns.taskStall} ns; an IPI round trip is ${ns.ipiRoundTrip} ns. The 2018 estimate was 666 ns for ` +
          'the copy alone; here the copy is 320 ns (4 KiB at 12.8 GB/s) and the synchronization is the rest.',
      );
      io.out(DEMO_OUTRO);
    });
  cli.help((sections) => [...sections, { title: 'Exit codes', body: EXIT_CODES }]);
  cli.version(VERSION);
  try {
    cli.parse(['node', 'x86slice', ...argv], { run: false });
    if (cli.options.help || cli.options.version) return 0;
    if (!cli.matchedCommand) {
      if (argv.length === 0) {
        cli.outputHelp();
        return 0;
      }
      io.err(`x86slice: unknown command '${argv[0]}'; commands: ${COMMANDS} (see x86slice --help)`);
      return EXIT_USAGE;
    }
    await cli.runMatchedCommand();
  } catch (error) {
    // By name too: a user's scenario module may load its own copy of the library, with its own InputError class.
    if (error instanceof Error && (error instanceof InputError || ['InputError', 'CACError'].includes(error.name))) {
      io.err(`x86slice: ${error.message}`);
      code = EXIT_USAGE;
    } else {
      throw error;
    }
  }
  return code;
}
