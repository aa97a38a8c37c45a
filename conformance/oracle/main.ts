import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { Case } from '../case.ts';
import { departureListing, LISTING_PATH, replay } from '../departure-listing.ts';
import { generateCases } from '../generate.ts';
import { RECORDING_PATH, readRecording, serializeRecording } from '../recording.ts';
import { OracleArgumentError, type OracleArguments, parseOracleArguments, selectCases } from './arguments.ts';
import { QEMU_ARGS, qemuVersion, recordWithQemu, TOOLS } from './qemu.ts';

// `npm run oracle`: records every generated case under QEMU TCG into conformance/recordings/qemu.jsonl. It needs
// qemu-system-x86_64 and binutils and installs nothing; it says what is missing. `--only REGEX` records just the
// matching cases and prints them instead of writing the file (for developing a case).

const WHERE: Record<(typeof TOOLS)[number], string> = {
  'qemu-system-x86_64': 'Debian package qemu-system-x86',
  as: 'Debian package binutils',
  ld: 'Debian package binutils',
  objcopy: 'Debian package binutils',
};

function missingTools(): string[] {
  return TOOLS.filter((tool) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).error !== undefined).map(
    (tool) => `${tool} (${WHERE[tool]})`,
  );
}

function main(argv: readonly string[]): number {
  let args: OracleArguments;
  let cases: readonly Case[];
  try {
    args = parseOracleArguments(argv);
    cases = selectCases(generateCases(), args);
  } catch (error) {
    if (!(error instanceof OracleArgumentError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  const missing = missingTools();
  if (missing.length > 0) {
    process.stderr.write(`npm run oracle needs tools that are not installed: ${missing.join(', ')}\n`);
    return 2;
  }
  const started = performance.now();
  const observations = recordWithQemu(cases, {
    onProgress: (done) => {
      if (process.stderr.isTTY) process.stderr.write(`\roracle: ${done}/${cases.length} cases`);
    },
  });
  process.stderr.write(`\roracle: ${cases.length} cases in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  if (args.only) {
    for (const [i, c] of cases.entries()) process.stdout.write(`${c.id} ${JSON.stringify(observations[i])}\n`);
    return 0;
  }
  const header = { oracle: qemuVersion(), command: ['qemu-system-x86_64', ...QEMU_ARGS].join(' ') };
  writeFileSync(RECORDING_PATH, serializeRecording(header, cases, observations));
  // The recording replayed on the model: the generated list of the cases each departure explains.
  const replays = replay(readRecording().cases);
  writeFileSync(LISTING_PATH, departureListing(replays));
  const unexplained = replays.filter((r) => r.comparison.differences.length > 0).length;
  process.stderr.write(`replayed on the model: ${unexplained} cases with unexplained differences\n`);
  const counts = new Map<string, number>();
  for (const c of cases) counts.set(c.family, (counts.get(c.family) ?? 0) + 1);
  process.stderr.write(`wrote ${RECORDING_PATH}: ${[...counts].map(([f, n]) => `${f} ${n}`).join(', ')}\n`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
