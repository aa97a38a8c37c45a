import { cac } from 'cac';
import { InputError } from '../mmu/input-error.ts';
import { SCENARIO_LIST as SCENARIOS } from '../scenarios/listing.ts';
import { paramRange, parseParamStrings } from '../scenarios/scenario.ts';

// The x86slice command line: list the scenarios, run one, or show the flagship demo. `list` needs only the
// scenarios' descriptions; the machine and the reports load when a command runs one, so `list` starts fast.

/** The modules that run a scenario and print it, loaded on first use. */
async function runner() {
  const [{ runScenario }, { runReport, runText }] = await Promise.all([
    import('../scenarios/catalogue.ts'),
    import('./report.ts'),
  ]);
  return { runScenario, runReport, runText };
}

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

/** Exit codes: 0 the command ran, 2 bad usage (unknown scenario, parameter, option or command). */
export const EXIT_USAGE = 2;

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

const DEMO_INTRO = `x86slice demo: the page under a running task's stack loses its mapping (what a naive migration of a
VMAP stack page does). The next push faults (#PF); Linux delivers #PF on the current stack, so pushing the
#PF frame faults again; SDM Table 6-5 turns a #PF during #PF delivery into #DF, which runs on its own IST1
stack and panics. Run it yourself: x86slice run pf-in-pf [--json]; x86slice list shows the other scenarios.
`;

const SWITCH_INTRO = `
The same double fault from a context switch (pre-5.8 lazy vmalloc sync): a kernel thread whose VMAP stack sits in a
top-level slot the next process's mm does not have switches to it. switch_mm loads the process's CR3 while the CPU
is still on the thread's stack, and switch_to's first push faults where the #PF cannot be delivered. With
-p sync-stack=true, switch_mm first copies that top-level entry into the next mm, as Linux did, and all is well.
(x86slice run vmap-stack-switch [-p sync-stack=true] shows the whole timeline.)
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
    .action(async (name: string, options: { param?: string | string[]; json?: boolean; tail?: unknown }) => {
      const tail = options.tail === undefined ? undefined : Number(options.tail);
      if (tail !== undefined && !(Number.isInteger(tail) && tail >= 1)) {
        throw new InputError(`--tail ${String(options.tail)} must be a positive integer (a number of steps)`);
      }
      const pairs = options.param === undefined ? [] : [options.param].flat().map(String);
      const params = parseParamStrings(pairs);
      const { runScenario, runReport, runText } = await runner();
      const run = runScenario(name, params, { trace: !options.json });
      io.out(options.json ? JSON.stringify(runReport(run), null, 2) : runText(run, tail === undefined ? {} : { tail }));
    });
  cli.command('demo', 'The flagship demo: pf-in-pf, then vmap-stack-switch both ways').action(async () => {
    const { runScenario, runText } = await runner();
    io.out(DEMO_INTRO);
    io.out(runText(runScenario('pf-in-pf')));
    io.out(SWITCH_INTRO);
    io.out(runText(runScenario('vmap-stack-switch'), { tail: 6 }));
    io.out('');
    io.out(runText(runScenario('vmap-stack-switch', { 'sync-stack': true }), { tail: 6 }));
  });
  cli.help();
  cli.version('0.1.0');
  try {
    cli.parse(['node', 'x86slice', ...argv], { run: false });
    if (cli.options.help || cli.options.version) return 0;
    if (!cli.matchedCommand) {
      if (argv.length === 0) {
        cli.outputHelp();
        return 0;
      }
      io.err(`x86slice: unknown command '${argv[0]}'; commands: list, run <scenario>, demo (see x86slice --help)`);
      return EXIT_USAGE;
    }
    await cli.runMatchedCommand();
  } catch (error) {
    if (error instanceof InputError || (error instanceof Error && error.name === 'CACError')) {
      io.err(`x86slice: ${error.message}`);
      code = EXIT_USAGE;
    } else {
      throw error;
    }
  }
  return code;
}
