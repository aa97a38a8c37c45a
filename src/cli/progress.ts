// A one-line progress bar for long explorations, drawn on a terminal's stderr. It is redrawn only when what it
// shows changes (a percent, or for an open-ended run a round count), so a run of millions of executions pays for a
// hundred or so writes, not one per execution. On a stderr that is not a terminal (a long search under nohup, its
// log a file), plain lines instead, one a minute.

const WIDTH = 30;

export interface ProgressBar {
  /** `total` may be Infinity (an exploration with no execution budget): the bar then shows the count alone. */
  update(done: number, total: number): void;
  /** Erases the bar, leaving the line for what follows. */
  done(): void;
}

/** A round step for an open-ended count: 1..9 by 1, 10..99 by 10, 100..999 by 100, and so on. */
function roundStep(n: number): number {
  return n < 10 ? 1 : 10 ** Math.floor(Math.log10(n));
}

export function progressBar(write: (text: string) => void, label: string): ProgressBar {
  let shown = '';
  let drawn = false;
  return {
    update(done, total) {
      let key: string;
      let line: string;
      if (Number.isFinite(total) && total > 0) {
        const fraction = Math.min(1, Math.max(0, done / total));
        const filled = Math.floor(fraction * WIDTH);
        key = `${Math.floor(fraction * 100)}`;
        line = `${label} [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${key.padStart(3)}% ${done}/${total}`;
      } else {
        if (done % roundStep(done) !== 0) return;
        key = `${done}`;
        line = `${label} ${done} executions`;
      }
      if (key === shown) return;
      shown = key;
      drawn = true;
      // \r returns to the start of the line and \x1b[K clears what a longer earlier line left behind.
      write(`\r${line}\x1b[K`);
    },
    done() {
      if (drawn) write('\r\x1b[K');
      drawn = false;
    },
  };
}

/**
 * Progress as plain lines, for a stderr that is not a terminal: at most one line every `everyMs` (by `now`, in
 * milliseconds), with the count so far and its rate since the start, so a log shows how a long search goes. `from`:
 * the count when this run started (a resumed search's states), which the rate leaves out. `resident`: the process's
 * memory in bytes, shown against `machine` bytes (a search of a billion states runs into the machine's memory).
 */
export function progressLines(
  write: (line: string) => void,
  label: string,
  unit: string,
  now: () => number,
  {
    everyMs = 60_000,
    from = 0,
    resident,
    machine,
  }: {
    readonly everyMs?: number;
    readonly from?: number;
    readonly resident?: () => number;
    readonly machine?: number;
  } = {},
): ProgressBar {
  const start = now();
  let next = start + everyMs;
  return {
    update(done) {
      const t = now();
      if (t < next) return;
      next = t + everyMs;
      const seconds = Math.max((t - start) / 1000, 1e-3);
      const count = (n: number) => n.toLocaleString('en-US');
      const gb = (bytes: number) => (bytes / 1e9).toFixed(1);
      const memory =
        resident === undefined ? '' : `, ${gb(resident())}${machine ? ` of ${gb(machine)}` : ''} GB resident`;
      write(
        `${label}: ${count(done)} ${unit} after ${Math.round(seconds)} s (${count(Math.round((done - from) / seconds))}/s)` +
          memory,
      );
    },
    done() {},
  };
}
