import type { Machine } from '../../machine/machine.ts';
import { appendToSchedule, parseSchedule, type ScheduleEntry, sameEntry } from '../../machine/schedule.ts';
import { Checkpoint } from '../checkpoint.ts';
import { type Choice, isTlbEvent } from '../choices.ts';
import { classify, type FinalCheck, type ViolationKind } from '../execution.ts';
import type { CacheScope } from '../hardware-choices.ts';
import { MachineState } from '../machine-state.ts';
import { stateChoices } from '../state-choices.ts';
import { entryOf, takeChoice } from '../state-transition.ts';
import { offerStutterAlone } from '../stutter-step.ts';
import { VisitedSet } from '../visited-set.ts';

// The distributed stateful search's work on one machine (issue 22; the transport is broker-coordinator.ts and broker-worker.ts): the states are
// split into `ranges` by fingerprint, and each range has one owner, which keeps that range's visited set. The
// search goes level by level (breadth first: level d holds the states whose shortest path has d entries). An owner
// takes the states sent to its ranges for level d, keeps those it has not visited, restores each by taking its path
// on a machine of its own, and sends every successor, as its path and fingerprint, to the successor's range for
// level d + 1.
//
// Breadth first, so that the result does not depend on how the ranges are shared out or on timing: a state's path
// is the least (as text) of its shortest paths' extensions from the level before, so every counterexample is a
// shortest one, and the same whatever the number of workers. Each violation is found where the single-process
// search finds it (the same states are reached; a state's outcome does not depend on its path).
//
// Restoring a state by its path costs its length in steps; the states of one level are taken in the order of their
// paths, and the machine goes back along the path it is on (checkpoints and the undo log, as the depth-first search
// does) only as far as the next path shares its prefix, so a level costs about the size of its paths' prefix tree.

/** A state sent to its owner: its fingerprint and its path, as schedule text. */
export interface Arrival {
  readonly fpA: number;
  readonly fpB: number;
  readonly path: string;
}

export interface LevelSearchOptions {
  readonly maxSteps: number;
  readonly tlbEvents: number;
  readonly cacheEvents: CacheScope;
  readonly check: FinalCheck | undefined;
  /** Whether dead words are left out of states (memory-tracker.ts); a dead word read voids the search. */
  readonly deadWords: boolean;
  /** With dead words: copied-away frames keep their words in the states (StatefulOptions.copiedLive). */
  readonly copiedLive?: boolean;
  /** How many ranges the fingerprints are split into. */
  readonly ranges: number;
}

/** A violation an owner found: the state's path and what it showed. */
export interface FoundViolation {
  readonly kind: ViolationKind;
  readonly schedule: string;
  readonly length: number;
  readonly message: string | undefined;
}

/** What an owner did with its ranges' states of one level. */
export interface LevelReport {
  /** New states (not visited before): the owner's share of the level. */
  states: number;
  transitions: number;
  finalStates: number;
  /** A path reached the step bound: the search is incomplete. */
  depthCut: boolean;
  /** A dead word was read (the physical address), or -1: the search must run again with every word. */
  deadRead: number;
  /** Whether that word's frame was one a migration copied away (then again with copiedLive, not every word). */
  deadReadCopied?: boolean;
  violations: FoundViolation[];
}

/** Where a successor goes: its range, fingerprint and path. */
export type Emit = (range: number, fpA: number, fpB: number, path: string) => void;

export function emptyReport(): LevelReport {
  return { states: 0, transitions: 0, finalStates: 0, depthCut: false, deadRead: -1, violations: [] };
}

/** Sorts states by path (in place): explored in this order, consecutive ones share long prefixes. */
export function inPathOrder<T extends Arrival>(states: T[]): T[] {
  return states.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

/** The range a fingerprint belongs to (its low half: the visited set places states by the high one). */
export function rangeOf(fpB: number, ranges: number): number {
  return (fpB >>> 0) % ranges;
}

/** The better of two violations of one kind: the shorter, then the lesser schedule text (deterministic). */
export function better(a: FoundViolation, b: FoundViolation | undefined): boolean {
  return b === undefined || a.length < b.length || (a.length === b.length && a.schedule < b.schedule);
}

const STEPS: readonly Choice[] = Array.from({ length: 64 }, (_, cpu) => Object.freeze({ cpu }));

function choiceOf(e: ScheduleEntry): Choice {
  return typeof e === 'number' ? STEPS[e]! : (e as Choice);
}

/**
 * One machine that goes to states by their paths: it keeps the path it is on with a checkpoint per entry, goes back
 * to the longest prefix it shares with the next path (undo log), and takes the rest.
 */
class PathCursor {
  readonly machine: Machine;
  readonly state: MachineState;
  private readonly entries: ScheduleEntry[] = [];
  private readonly checkpoints: Checkpoint[] = [];
  private readonly tlbLeftAt: number[] = [];
  /** Steps taken to reach states (the cost of restoring by path). */
  replayed = 0;

  constructor(build: () => Machine, o: LevelSearchOptions) {
    this.machine = build();
    this.state = new MachineState(this.machine, {
      drive: true,
      deadWords: o.deadWords,
      copiedLive: o.copiedLive === true,
    });
    this.state.fingerprint(o.tlbEvents);
    this.checkpoints.push(new Checkpoint(this.machine.cpus.length));
    this.state.save(this.checkpoints[0]!);
    this.tlbLeftAt.push(o.tlbEvents);
  }

  get depth(): number {
    return this.entries.length;
  }

  get tlbLeft(): number {
    return this.tlbLeftAt[this.entries.length]!;
  }

  get initial(): Checkpoint {
    return this.checkpoints[0]!;
  }

  /** The checkpoint of the state the cursor is at (after goTo). */
  get top(): Checkpoint {
    return this.checkpoints[this.entries.length]!;
  }

  goTo(path: readonly ScheduleEntry[]): void {
    let p = 0;
    const here = this.entries;
    while (p < here.length && p < path.length && sameEntry(here[p], path[p]!)) p++;
    this.state.restore(this.checkpoints[p]!);
    here.length = p;
    for (let k = p; k < path.length; k++) {
      const c = choiceOf(path[k]!);
      takeChoice(this.machine, this.state, c, true);
      this.replayed++;
      const left = this.tlbLeftAt[k]! - (isTlbEvent(c) ? 1 : 0);
      this.state.fingerprint(left);
      here.push(path[k]!);
      this.tlbLeftAt[k + 1] = left;
      let cp = this.checkpoints[k + 1];
      if (cp === undefined) {
        cp = new Checkpoint(this.machine.cpus.length);
        this.checkpoints[k + 1] = cp;
      }
      this.state.save(cp);
    }
  }
}

/** The states one worker owns, and the machine it restores them on. */
export class LevelSearch {
  private readonly cursor: PathCursor;
  private readonly visited = new Map<number, VisitedSet>();
  private readonly choices: Choice[] = [];

  constructor(
    build: () => Machine,
    private readonly o: LevelSearchOptions,
  ) {
    this.cursor = new PathCursor(build, o);
  }

  /**
   * The initial state, to send to its owner (workers check that they built the coordinator's machine by its
   * fingerprint). Read from this search's machine: a build function may hand out one machine, reset at each call.
   */
  get root(): Arrival {
    const c = this.cursor.initial;
    return { fpA: c.fpA, fpB: c.fpB, path: '' };
  }

  /** Steps taken to restore states so far. */
  get replayed(): number {
    return this.cursor.replayed;
  }

  /** States this worker holds, over its ranges. */
  get states(): number {
    let n = 0;
    for (const v of this.visited.values()) n += v.size;
    return n;
  }

  get visitedBytes(): number {
    let n = 0;
    for (const v of this.visited.values()) n += v.bytes;
    return n;
  }

  owns(range: number): boolean {
    return this.visited.has(range);
  }

  /** Takes range `range` on (empty, or with the fingerprints of its states at earlier levels: a takeover). */
  own(range: number, known?: Iterable<readonly [number, number]>): void {
    const set = this.visited.get(range) ?? new VisitedSet();
    if (known) for (const [a, b] of known) set.add(a, b);
    this.visited.set(range, set);
  }

  /**
   * The states of `arrivals` not visited yet, now marked visited, in the order to explore them (by path, so that
   * the machine goes back only as far as two paths differ). A state reached by several paths keeps the least: the
   * result is the same whatever order they arrive in.
   */
  fresh(range: number, arrivals: readonly Arrival[]): Arrival[] {
    const visited = this.visited.get(range);
    if (visited === undefined) throw new Error(`range ${range} is not this worker's`);
    const fresh = new Map<string, Arrival>();
    for (const a of arrivals) {
      if (visited.has(a.fpA, a.fpB)) continue;
      const key = `${a.fpA}:${a.fpB}`;
      const known = fresh.get(key);
      if (known === undefined || a.path < known.path) fresh.set(key, a);
    }
    const list = inPathOrder([...fresh.values()]);
    for (const a of list) visited.add(a.fpA, a.fpB);
    return list;
  }

  /** Explores state `a` (one of fresh()'s): classifies it, or sends its successors; counted in `report`. */
  explore(a: Arrival, report: LevelReport, emit: Emit): void {
    report.states++;
    this.expandState(a, report, emit);
  }

  private expandState(a: Arrival, report: LevelReport, emit: Emit): void {
    const cursor = this.cursor;
    const entries = parseSchedule(a.path);
    cursor.goTo(entries);
    const m = cursor.machine;
    const state = cursor.state;
    if (state.memory.deadRead >= 0) {
      report.deadRead = state.memory.deadRead;
      report.deadReadCopied = state.memory.deadReadCopied;
      return;
    }
    const final = () => {
      report.finalStates++;
      const r = classify(m, false, this.o.check);
      if (r.kind !== undefined) {
        report.violations.push({ kind: r.kind, schedule: a.path, length: entries.length, message: r.message });
      }
    };
    if (m.firstStop !== undefined) return final();
    const tlbLeft = cursor.tlbLeft;
    const choices = stateChoices(m, tlbLeft, this.choices, this.o.cacheEvents);
    // As the single-process search: a stutter step alone, with no TLB event left (stutter-step.ts).
    if (tlbLeft === 0) offerStutterAlone(m, state.programs, choices);
    if (choices.length === 0) return final();
    if (entries.length >= this.o.maxSteps) {
      report.depthCut = true;
      report.violations.push({ kind: 'step-bound', schedule: a.path, length: entries.length, message: undefined });
      return;
    }
    const top = cursor.top;
    const last = entries[entries.length - 1];
    // choices is reused by the next state: its length now is this state's.
    const n = choices.length;
    for (let i = 0; i < n; i++) {
      const c = choices[i]!;
      takeChoice(m, state, c, true);
      report.transitions++;
      state.fingerprint(tlbLeft - (isTlbEvent(c) ? 1 : 0));
      if (state.memory.deadRead >= 0) {
        report.deadRead = state.memory.deadRead;
        report.deadReadCopied = state.memory.deadReadCopied;
        return;
      }
      emit(rangeOf(state.fpB, this.o.ranges), state.fpA, state.fpB, appendToSchedule(a.path, last, entryOf(c)));
      state.restore(top);
    }
  }

  detach(): void {
    this.cursor.state.detach();
  }
}
