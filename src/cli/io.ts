// Where the commands write, and what their exit codes mean. Kept apart from main.ts so the commands loaded on
// demand (explore-command.ts) share them without importing the command table.

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Draws progress on a terminal: text with no newline, `\r` returning to the line start. Absent when not a TTY. */
  readonly progress?: (text: string) => void;
}

export const processIo: CliIo = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  // On stderr, so a progress bar never mixes into output that is piped or redirected from stdout.
  ...(process.stderr.isTTY ? { progress: (text: string) => process.stderr.write(text) } : {}),
};

/** Exit codes: 0 the command ran (and found no violation), 1 a violation was found, 2 bad input. */
export const EXIT_OK = 0;
export const EXIT_VIOLATION = 1;
export const EXIT_USAGE = 2;
