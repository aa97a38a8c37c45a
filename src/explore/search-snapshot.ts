import { formatSchedule, parseSchedule, type ScheduleEntry } from '../machine/schedule.ts';
import { InputError } from '../mmu/input-error.ts';
import { compactPairs, emptySegments, SLOT_WORDS } from './compact-set.ts';
import type { Execution, ViolationKind } from './execution.ts';
import { COMPACT_AT, type VisitedTables } from './visited-set.ts';

// A stateful search stopped with work left (budget or time limit), saved so that a later run takes it up where it
// stopped (explore's `resume`; the CLI's --save-search and --resume): the visited set, the depth-first stack as the
// choice taken at each depth, and what the search counted and found. A search resumed from it, then run to its end,
// reaches the states, transitions, final states and violations one search run to its end reaches
// (test/explore/search-snapshot.test.ts). As TLC's checkpoints (-checkpoint, -recover) do for a long search.
//
// The stack is saved as choice indices, not machine states: a resume builds the machine again and takes the
// choices down the stack, checking each state's fingerprint against the saved one (another build, scenario or
// version of x86slice fails there, naming the depth).

/** What the search had counted when it stopped. */
export interface SearchCounters {
  readonly transitions: number;
  readonly depth: number;
  readonly finalStates: number;
  readonly statesBy: readonly number[];
  readonly statesWithoutEvents: number;
  readonly eventsLeftOut: number;
  readonly subsumed: number;
  readonly depthCut: boolean;
  readonly nextSample: number;
}

export interface SearchSnapshot {
  /** The stack: per depth, the state's fingerprint (two lanes) and the choices taken from it so far. */
  readonly fingerprints: Int32Array;
  readonly next: Int32Array;
  /** Per depth: which of the state's pending TLB events a choice has changed (tlb-event-reduction.ts). */
  readonly changed: readonly (readonly number[])[];
  readonly counters: SearchCounters;
  /** Per kind, the shortest violation found so far. */
  readonly violations: readonly Execution[];
  /**
   * The visited set's tables, one a segment (visited-set.ts: 8-byte slots in a small set, 6-byte in a large one), and
   * the states in them; none once a search has taken them up. One table of 8-byte slots, from a file of layout 1.
   */
  readonly visited: VisitedTables;
  readonly visitedSize: number;
  /** What the states stood on: dead words left out, TLB events, the reduction. */
  readonly deadWords: boolean;
  /** With dead words: whether copied-away frames' words stayed in the states (absent: false). */
  readonly copiedLive?: boolean;
  readonly tlbEvents: number;
  readonly reduction: 'tlb-events' | 'none';
  /** Whether stutter steps were offered alone (stutter-step.ts; absent: false, as in searches saved before them). */
  readonly stutterSteps?: boolean;
  /** The path the search goes down first (StatefulOptions.first), which decides its order. */
  readonly first?: readonly ScheduleEntry[];
}

/**
 * The snapshot's visited table, handed to the search that takes the snapshot up (StatefulSearch.resumeFrom): the
 * snapshot is left an empty one, so that the table can be freed once that search grows past it. (A search resumed
 * from a 3.1 GB file kept its table to the end, beside the 7 GB one it had grown into.)
 */
export function takeVisitedTable(s: SearchSnapshot): VisitedTables {
  const tables = s.visited;
  // A frozen snapshot (kept in immer state, say) keeps it: the search is the same, only its memory is not.
  if (!Object.isFrozen(s)) (s as { visited: VisitedTables }).visited = [];
  return tables;
}

/**
 * The file's first line, by layout: the visited set's segments one after another (visitedSegments: their slots), in
 * 6-byte slots (3: a compact set; 0 slots for a segment holding nothing), or 8-byte ones (2: 64 segments, a small
 * set's, and until 2026-12-07's third session every set's). Read still: 1, one table of 8-byte slots (visitedSlots).
 */
const MAGIC = 'x86slice-search 3\n';
const MAGIC_PAIRS = 'x86slice-search 2\n';
const MAGIC_ONE_TABLE = 'x86slice-search 1\n';

/**
 * What a state's fingerprint covers, by number: raised whenever that changes, so that a search saved to disk is not
 * taken up by one whose fingerprints it cannot be compared with (the stack's are checked on resume, the visited
 * table's cannot be). 2: a pending instruction is no part of a state (2026-12-07). The CLI writes it beside the
 * version, and a resume with another is refused, naming it.
 */
export const STATE_FORMAT = 2;

/**
 * The snapshot as bytes: a text line, a JSON header (the caller's `about`, which a resume compares with its own,
 * and the snapshot's small parts), then the visited table (little-endian, as typed arrays are on x86 and ARM).
 * Returned as parts, so that a table larger than one buffer is never copied into one.
 */
export function encodeSnapshot(s: SearchSnapshot, about: Readonly<Record<string, unknown>>): Uint8Array[] {
  const header = JSON.stringify({
    about,
    fingerprints: Array.from(s.fingerprints),
    next: Array.from(s.next),
    changed: s.changed,
    counters: s.counters,
    violations: s.violations.map((v) => ({ schedule: formatSchedule(v.schedule), kind: v.kind, message: v.message })),
    visitedSegments: (s.visited as readonly (Int32Array | Uint16Array)[]).map((t) =>
      t instanceof Uint16Array ? t.length / SLOT_WORDS : t.length / 2,
    ),
    visitedSize: s.visitedSize,
    deadWords: s.deadWords,
    ...(s.copiedLive ? { copiedLive: true } : {}),
    tlbEvents: s.tlbEvents,
    reduction: s.reduction,
    ...(s.stutterSteps ? { stutterSteps: true } : {}),
    ...(s.first === undefined ? {} : { first: formatSchedule(s.first) }),
  });
  const headerBytes = new TextEncoder().encode(header);
  const compact = s.visited.length > 0 && s.visited[0] instanceof Uint16Array;
  const start = new TextEncoder().encode(`${compact ? MAGIC : MAGIC_PAIRS}${headerBytes.length}\n`);
  return [start, headerBytes, ...(s.visited as readonly (Int32Array | Uint16Array)[]).flatMap((t) => byteViews(t))];
}

/** Bytes per view of a table (byteViews). */
const VIEW_BYTES = 1 << 30;

/**
 * `table`'s bytes as views of at most `most` bytes each, in order, sharing its buffer. One view of a table past 4 GiB
 * is refused (a byte array's length is limited: "Invalid typed array length" on Node 20, where a 4.7 GB table, a
 * search of 290 million states, stopped a --save-search run).
 */
export function byteViews(table: Int32Array | Uint16Array, most = VIEW_BYTES): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (let at = 0; at < table.byteLength; at += most) {
    views.push(new Uint8Array(table.buffer, table.byteOffset + at, Math.min(most, table.byteLength - at)));
  }
  return views;
}

/** Where a saved search's header ends and its tables start, and what the header says. */
export interface SnapshotHeader {
  readonly about: Readonly<Record<string, unknown>>;
  readonly tableOffset: number;
  /** The visited set's tables' slots, in the order they follow the header. */
  readonly visitedSegments: readonly number[];
  /**
   * Bytes a slot of those tables takes: 6 (layout 3, SLOT_WORDS 16-bit words), or 8 (layouts 1 and 2: two 32-bit
   * halves, which the reader turns into 6-byte segments with compactPairs).
   */
  readonly slotBytes: 6 | 8;
  /** The states in those tables. */
  readonly visitedSize: number;
  /** The rest of the snapshot, given the tables (read by the caller: they may be larger than one buffer). */
  readonly complete: (visited: VisitedTables) => SearchSnapshot;
}

/** Reads the header at the start of a saved search (`head`: its first bytes, at least the header). */
export function decodeSnapshotHeader(head: Uint8Array, what: string): SnapshotHeader {
  const bad = (rule: string) => new InputError(`${what} is not a search saved by x86slice: ${rule}`);
  const text = new TextDecoder().decode(head.subarray(0, Math.min(head.length, MAGIC.length + 24)));
  const oneTable = text.startsWith(MAGIC_ONE_TABLE);
  const pairs = oneTable || text.startsWith(MAGIC_PAIRS);
  if (!text.startsWith(MAGIC) && !pairs) {
    throw bad(`it does not start with '${MAGIC_PAIRS.trim()}' or '${MAGIC.trim()}'`);
  }
  const lengthEnd = text.indexOf('\n', MAGIC.length);
  const length = Number(text.slice(MAGIC.length, lengthEnd));
  if (lengthEnd < 0 || !Number.isInteger(length) || length <= 0) throw bad('its header length is missing');
  const start = MAGIC.length + (lengthEnd - MAGIC.length) + 1;
  if (head.length < start + length) throw bad('it ends inside its header');
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(new TextDecoder().decode(head.subarray(start, start + length))) as Record<string, unknown>;
  } catch (e) {
    throw bad(`its header is not JSON (${(e as Error).message})`);
  }
  const slots = oneTable ? [h.visitedSlots] : h.visitedSegments;
  // A segment of layout 3 may hold nothing (0 slots); a table of 8-byte slots had at least one.
  const isSize = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n >= (pairs ? 1 : 0);
  if (!Array.isArray(slots) || slots.length === 0 || !slots.every(isSize)) throw bad('its visited table has no size');
  for (const [key, ok] of [
    ['fingerprints', Array.isArray(h.fingerprints)],
    ['next', Array.isArray(h.next)],
    ['changed', Array.isArray(h.changed)],
    ['counters', typeof h.counters === 'object' && h.counters !== null],
    ['violations', Array.isArray(h.violations)],
    ['visitedSize', typeof h.visitedSize === 'number'],
  ] as const) {
    if (!ok) throw bad(`its header has no ${key}`);
  }
  return {
    about: (h.about ?? {}) as Record<string, unknown>,
    tableOffset: start + length,
    visitedSegments: slots as number[],
    slotBytes: pairs ? 8 : 6,
    visitedSize: h.visitedSize as number,
    complete: (visited) => ({
      fingerprints: Int32Array.from(h.fingerprints as number[]),
      next: Int32Array.from(h.next as number[]),
      changed: h.changed as number[][],
      counters: h.counters as SearchCounters,
      violations: (h.violations as { schedule: string; kind: ViolationKind; message: string | undefined }[]).map(
        (v) => ({ schedule: parseSchedule(v.schedule), kind: v.kind, message: v.message ?? undefined }),
      ),
      visited,
      visitedSize: h.visitedSize as number,
      deadWords: h.deadWords as boolean,
      ...(h.copiedLive === true ? { copiedLive: true } : {}),
      tlbEvents: h.tlbEvents as number,
      reduction: h.reduction as 'tlb-events' | 'none',
      ...(h.stutterSteps === true ? { stutterSteps: true } : {}),
      ...(typeof h.first === 'string' ? { first: parseSchedule(h.first) } : {}),
    }),
  };
}

/**
 * The visited set's tables of a saved search whose header is `header`, read in order by `read` (which fills the
 * table it is given). Tables of 8-byte slots holding `compactAt` states or more are each turned into 6-byte segments
 * (compactPairs) before the next is read, so that the old tables are never all in memory beside the new ones (a
 * search of 1.3 billion states saved 16 GB of them); a small set's are kept as they are.
 */
export function readVisited(
  header: SnapshotHeader,
  what: string,
  read: (into: Int32Array | Uint16Array) => void,
  compactAt = COMPACT_AT,
): VisitedTables {
  if (header.slotBytes === 6) {
    const visited = header.visitedSegments.map((slots) => new Uint16Array(SLOT_WORDS * slots));
    for (const table of visited) read(table);
    return visited;
  }
  if (header.visitedSize < compactAt) {
    const visited = header.visitedSegments.map((slots) => new Int32Array(2 * slots));
    for (const table of visited) read(table);
    return visited;
  }
  const visited = emptySegments();
  for (const slots of header.visitedSegments) {
    const table = new Int32Array(2 * slots);
    read(table);
    try {
      compactPairs(table, visited);
    } catch (e) {
      throw new InputError(`${what} is not a search saved by x86slice: ${(e as Error).message}`);
    }
  }
  return visited;
}
