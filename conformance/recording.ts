import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Case, Observation } from './case.ts';

// The recordings file: JSON Lines, a header (the oracle's version and command line) and then one line per case with
// the case as it was run and what the oracle observed. Written by `npm run oracle`, read by the replay test.

export const RECORDING_PATH = fileURLToPath(new URL('./recordings/qemu.jsonl', import.meta.url));

export interface RecordingHeader {
  readonly oracle: string;
  readonly command: string;
}

export interface RecordedCase {
  readonly case: Case;
  readonly observed: Observation;
}

export function serializeRecording(
  header: RecordingHeader,
  cases: readonly Case[],
  observations: readonly Observation[],
): string {
  const lines = [JSON.stringify({ ...header, cases: cases.length })];
  for (const [i, c] of cases.entries()) lines.push(JSON.stringify({ case: c, observed: observations[i] }));
  return `${lines.join('\n')}\n`;
}

export function readRecording(path = RECORDING_PATH): { header: RecordingHeader; cases: RecordedCase[] } {
  const [first, ...rest] = readFileSync(path, 'utf8').trimEnd().split('\n');
  return { header: JSON.parse(first!) as RecordingHeader, cases: rest.map((line) => JSON.parse(line) as RecordedCase) };
}
