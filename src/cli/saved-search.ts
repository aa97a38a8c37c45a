import { closeSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import {
  byteViews,
  decodeSnapshotHeader,
  encodeSnapshot,
  readVisited,
  type SearchSnapshot,
} from '../explore/search-snapshot.ts';
import { InputError } from '../mmu/input-error.ts';

// `x86slice explore --save-search FILE` and `--resume FILE`: a stateful search stopped by its budget or time limit,
// on disk (src/explore/search-snapshot.ts has the format). The visited set's tables can be larger than one buffer
// in all, so they are written and read in slices, straight from and into the tables. What the search was run with
// (`about`: version, scenario, parameters, options) is written beside them, and a resume run with anything else is
// refused, naming what differs.

/** Bytes written or read per call (Node reads and writes at most 2 GiB at once). */
const SLICE = 1 << 30;

/** Writes the snapshot to `file` (through a temporary file renamed at the end, so a crash leaves no half file). */
export function writeSavedSearch(file: string, snapshot: SearchSnapshot, about: Readonly<Record<string, unknown>>) {
  const temporary = `${file}.partial`;
  const fd = openSync(temporary, 'w');
  try {
    for (const part of encodeSnapshot(snapshot, about)) {
      for (let at = 0; at < part.length; ) at += writeSync(fd, part, at, Math.min(SLICE, part.length - at));
    }
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}

/** Fills `into` from `fd` at `position`; false when the file ends first. */
function readFully(fd: number, into: Uint8Array, position: number): boolean {
  for (let at = 0; at < into.length; ) {
    const n = readSync(fd, into, at, Math.min(SLICE, into.length - at), position + at);
    if (n === 0) return false;
    at += n;
  }
  return true;
}

/** Reads the search saved in `file`, refusing one saved with other settings than `about`. */
export function readSavedSearch(file: string, about: Readonly<Record<string, unknown>>): SearchSnapshot {
  const what = `--resume '${file}'`;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new InputError(
      `${what}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  try {
    // The first line and the header length, then the header, then the table.
    const start = new Uint8Array(64);
    const got = readSync(fd, start, 0, start.length, 0);
    const line = new TextDecoder().decode(start.subarray(0, got));
    const second = line.indexOf('\n', line.indexOf('\n') + 1);
    const length = second < 0 ? Number.NaN : Number(line.slice(line.indexOf('\n') + 1, second));
    const head = new Uint8Array(Number.isInteger(length) && length > 0 ? second + 1 + length : got);
    if (!readFully(fd, head, 0))
      throw new InputError(`${what} is not a search saved by x86slice: it ends inside its header`);
    const header = decodeSnapshotHeader(head, what);
    for (const key of new Set([...Object.keys(about), ...Object.keys(header.about)])) {
      const saved = JSON.stringify(header.about[key]);
      const now = JSON.stringify(about[key]);
      if (saved !== now) {
        throw new InputError(`${what} was saved with ${key} ${saved ?? '(none)'}; this run has ${now ?? '(none)'}`);
      }
    }
    const cut = () => new InputError(`${what} is not a search saved by x86slice: it ends inside its visited table`);
    let position = header.tableOffset;
    const read = (table: Int32Array | Uint16Array) => {
      for (const view of byteViews(table)) {
        if (!readFully(fd, view, position)) throw cut();
        position += view.length;
      }
    };
    const visited = readVisited(header, what, read);
    return header.complete(visited);
  } finally {
    closeSync(fd);
  }
}
