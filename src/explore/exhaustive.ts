import type { Machine } from '../machine/machine.ts';
import type { ScheduleEntry } from '../machine/schedule.ts';
import { type Access, accessOf } from './access.ts';
import { applyChoice, type Choice, choiceKey, choicesOf, isStep, isTlbEvent } from './choices.ts';
import { classify, type Execution, type FinalCheck, Findings } from './execution.ts';
import { HappensBefore } from './happens-before.ts';
import type { CacheScope } from './hardware-choices.ts';
import { finalStateKey } from './state-key.ts';

// Exhaustive exploration: stateless depth-first search over the choices, with dynamic partial-order reduction
// (Flanagan & Godefroid, POPL 2005), optionally under a preemption bound
// (Musuvathi & Qadeer, PLDI 2007) with the conservative backtrack points of bounded partial-order reduction (Coons,
// Musuvathi & McKinley, OOPSLA 2013).
//
// Every execution re-runs from a fresh machine: the choices of the current path are replayed, then the path is
// extended by the first choice not asleep (the CPU that moved last, if it can). After each choice, races are found
// with vector clocks over the accesses (access.ts): an earlier choice of another actor that is dependent with it
// and does not happen before it. At the point before the earlier one, the racing actor's choice goes into the
// backtrack set, or every choice there when it was not enabled, or when its choice there was explored already and
// did something else (see addBacktrack: a step's footprint can be changed by other actors). The next execution
// backtracks to the deepest point with a backtrack choice not yet explored and not asleep.
//
// A step that stops its CPU (a violation) does not end the execution: the other CPUs run on to the end, so the
// stop is an ordinary choice, independent of the other CPUs' steps, and what they could still do is explored as
// usual. Stops write one location (access.ts), so the order of two stops, which decides the run's violation (its
// first stop), is explored both ways.
//
// TLB events are not persistent: taking one uses up the budget another needed, and a fill becomes possible when
// another CPU caches the page, so races alone would miss some; every TLB event offered at a point is explored. So
// is every store-buffer drain (see everywhere()).
//
// There are no sleep sets (Godefroid 1996), with or without a bound: the DPOR search is the races and (under a
// bound) Coons et al.'s conservative points alone, checked against naive enumeration by
// test/explore/soundness.test.ts and litmus.test.ts. Sleep sets were tried and removed (issue 18):
// - Under a preemption bound, a choice asleep below a point was explored from an earlier point, but maybe with
//   more preemptions than the bound allows on the path that reaches it from there, so the sleep set can hide a
//   schedule within the bound (a no-wait shootdown whose lost write needs one preemption was reported clean at
//   bound 1).
// - With no bound, sleep sets with these backtrack sets miss outcomes too (issue 19's litmus suite, "locked
//   instructions have a total order": CPU0 xchg x; xchg y, CPU1 and CPU2 read x and y in opposite orders; the run
//   that stands for one ending with CPU1 asleep is never taken, because the choice that starts it is asleep where it
//   would be). Sleep sets are sound with source sets and wakeup trees (Abdulla et al., POPL 2014), which this
//   search does not have: until it does, it pays the executions sleep sets saved.
//
// The first point's choices are all explored, each as its own part (a subtree), so that parts can run in
// parallel and still give, merged in order, the same result as one search (see parallel.ts).

export interface ExhaustiveOptions {
  readonly maxSteps: number;
  readonly tlbEvents: number;
  /** Which TLB and paging-structure-cache events are offered (hardware-choices.ts); default `held`. */
  readonly cacheEvents?: CacheScope;
  /** Preemptions an execution may take (a switch away from a CPU that could still move); undefined: no bound. */
  readonly preemptions: number | undefined;
  /** Runs this part may take at most. */
  readonly budget: number;
  readonly check: FinalCheck | undefined;
  /** false: no reduction (every choice at every point), for measuring what DPOR saves. */
  readonly reduce: boolean;
  readonly progress?: (runs: number) => void;
}

/** What one part (the subtree under one first choice) found. Per-run arrays let a merge cut it at any budget. */
export interface PartResult {
  /** Runs made. */
  readonly runs: number;
  /** Steps of each run. */
  readonly steps: number[];
  /** Final-state key of each run. */
  readonly states: string[];
  readonly improvements: [number, Execution][];
  /** The part's space was searched to the end (not cut by the budget). */
  readonly finished: boolean;
  /** Some choice was left out because it needed more preemptions than the bound. */
  readonly boundHit: boolean;
}

/** One point of the current path. Per-choice state is in arrays indexed like `choices` (few choices per point). */
interface Node {
  readonly choices: readonly Choice[];
  readonly keys: readonly string[];
  /** 1 for choices to explore from here. */
  readonly backtrack: Uint8Array;
  /** What each choice explored from here touched (undefined: not explored yet). */
  readonly done: (Access | undefined)[];
  /** Index of the choice the current path takes. */
  chosen: number;
  /** Preemptions taken before this point, and the CPU that stepped last (-1: none yet). */
  readonly preemptions: number;
  readonly current: number;
  /** Whether the CPU that stepped last can move here (switching away from it is a preemption). */
  readonly currentCanMove: boolean;
  readonly tlbLeft: number;
}

/** The root's choices and what each touched, made once on fresh machines (the parts' shared first point). */
export interface Root {
  readonly choices: readonly Choice[];
  readonly accesses: readonly Access[];
}

export function exploreRoot(build: () => Machine, tlbEvents: number, scope: CacheScope = 'held'): Root {
  const m = build();
  const choices = choicesOf(m, tlbEvents, scope);
  const accesses = choices.map((c, i) => {
    const fresh = i === 0 ? m : build();
    const fp = fresh.recordFootprints();
    fp.clear();
    const guard = fresh.memory.guard;
    if (guard) {
      guard.recordChanges = true;
      guard.changes.length = 0;
    }
    const wasStopped = fresh.cpus[c.cpu]!.isStopped;
    applyChoice(fresh, c);
    return accessOf(c, fp, fresh.memory.guard, !wasStopped && fresh.cpus[c.cpu]!.isStopped);
  });
  return { choices, accesses };
}

/** Whether taking `c` at `node` is a preemption: a switch to another CPU while the last one could still move. */
function preempts(node: Node, c: Choice): boolean {
  return node.currentCanMove && isStep(c) && c.cpu !== node.current;
}

/**
 * Choices explored at every point that offers them, not only where races point: TLB and paging-structure-cache
 * events (they are not persistent: see the top of this file) and store-buffer drains. A drain need not run to be
 * disabled: its own CPU's next locked or serializing instruction drains the buffer inside that step, so a drain
 * that would have raced (with that CPU's own walk of a PTE it buffered a store to, or with another CPU's access)
 * may never run on the current path, and races between choices that ran cannot point to it. Found by the
 * differential harness: CPU0 buffers a PTE clear, stores to that page, then runs a cmpxchg; the run where the clear
 * drains before the store (a #PF) was never tried.
 */
function everywhere(c: Choice): boolean {
  return isTlbEvent(c) || 'drain' in c;
}

/** Actors per CPU: its steps, the deliveries to it, its TLB and paging-structure-cache events, its drains. */
const ACTORS = 4;

/**
 * The actor a choice belongs to, for happens-before: a CPU's steps, the deliveries to a CPU, the TLB and
 * paging-structure-cache events on a CPU (one actor: they are all dependent through the budget, so ordering them
 * adds nothing), or the drains of a CPU's store buffer.
 */
function actorIndex(c: Choice): number {
  return ACTORS * c.cpu + (isStep(c) ? 0 : 'deliver' in c ? 1 : 'drain' in c ? 3 : 2);
}

function makeNode(choices: readonly Choice[], preemptions: number, current: number, tlbLeft: number): Node {
  const keys = choices.map(choiceKey);
  return {
    choices,
    keys,
    backtrack: new Uint8Array(choices.length),
    done: new Array<Access | undefined>(choices.length).fill(undefined),
    chosen: -1,
    preemptions,
    current,
    currentCanMove: current >= 0 && choices.some((c) => isStep(c) && c.cpu === current),
    tlbLeft,
  };
}

export class PartSearch {
  private readonly stack: Node[] = [];
  private hb: HappensBefore | undefined;
  private boundHit = false;
  private readonly bound: number;

  constructor(
    private readonly build: () => Machine,
    private readonly o: ExhaustiveOptions,
    root: Root,
    part: number,
  ) {
    this.bound = o.preemptions ?? Number.POSITIVE_INFINITY;
    const node = makeNode(root.choices, 0, -1, o.tlbEvents);
    for (let j = 0; j < part; j++) node.done[j] = root.accesses[j];
    node.backtrack[part] = 1;
    node.chosen = part;
    this.stack.push(node);
  }

  run(): PartResult {
    const steps: number[] = [];
    const states: string[] = [];
    const findings = new Findings();
    let finished = false;
    while (steps.length < this.o.budget) {
      const r = this.execute();
      const index = steps.length;
      steps.push(r.schedule.length);
      states.push(r.state);
      findings.note(index, r);
      this.o.progress?.(steps.length);
      if (!this.backtrack()) {
        finished = true;
        break;
      }
    }
    return {
      runs: steps.length,
      steps,
      states,
      improvements: findings.improvements,
      finished,
      boundHit: this.boundHit,
    };
  }

  /** Moves to the next path: the deepest point with a backtrack choice left. False when none is left (done). */
  private backtrack(): boolean {
    while (this.stack.length > 1) {
      const node = this.stack[this.stack.length - 1]!;
      const next = this.nextChoice(node);
      if (next >= 0) {
        node.chosen = next;
        return true;
      }
      this.stack.pop();
    }
    return false;
  }

  /** Whether choice `i` at `node` fits the preemption bound (noting that the bound left one out). */
  private withinBound(node: Node, i: number): boolean {
    if (node.preemptions + (preempts(node, node.choices[i]!) ? 1 : 0) <= this.bound) return true;
    this.boundHit = true;
    return false;
  }

  /** The first choice in `node`'s backtrack set not yet explored and within the bound; -1 if none. */
  private nextChoice(node: Node): number {
    for (let i = 0; i < node.choices.length; i++) {
      if (node.backtrack[i] === 0 || node.done[i] !== undefined) continue;
      if (this.withinBound(node, i)) return i;
    }
    return -1;
  }

  /** The point after `parent`'s chosen choice, given the choices there. */
  private childOf(m: Machine, parent: Node): Node {
    const made = parent.choices[parent.chosen]!;
    const tlbLeft = parent.tlbLeft - (isTlbEvent(made) ? 1 : 0);
    const preemptions = parent.preemptions + (preempts(parent, made) ? 1 : 0);
    const current = isStep(made) ? made.cpu : parent.current;
    return makeNode(choicesOf(m, tlbLeft, this.o.cacheEvents), preemptions, current, tlbLeft);
  }

  /**
   * The choice a new point starts with. With the reduction, the last CPU if it can move (no preemption), else the
   * first; without, the first within the bound. One always is: the last CPU, or any when it cannot move.
   */
  private firstChoice(node: Node): number {
    const again = this.o.reduce && node.currentCanMove ? node.keys.indexOf(`${node.current}`) : -1;
    if (again >= 0) return again;
    for (let i = 0; i < node.choices.length; i++) if (this.withinBound(node, i)) return i;
    throw new Error('no choice within the preemption bound: the last CPU can always go on');
  }

  private execute(): Execution & { readonly state: string } {
    const m = this.build();
    const fp = m.recordFootprints();
    const schedule: ScheduleEntry[] = [];
    this.hb ??= new HappensBefore(ACTORS * m.cpus.length);
    const hb = this.hb;
    // The path up to the backtrack point is the last execution's: replay it without analysing it again.
    const resume = this.stack.length - 1;
    hb.truncate(resume);
    m.pauseFootprints(true);
    for (let depth = 0; depth < resume; depth++) {
      const node = this.stack[depth]!;
      schedule.push(applyChoice(m, node.choices[node.chosen]!));
    }
    m.pauseFootprints(false);
    const guard = m.memory.guard;
    if (guard) guard.recordChanges = true;
    let limitReached = false;
    const races: number[] = [];
    for (let depth = resume; ; depth++) {
      let node = this.stack[depth];
      if (node === undefined) {
        node = this.childOf(m, this.stack[depth - 1]!);
        if (node.choices.length === 0) break;
        if (schedule.length >= this.o.maxSteps) {
          limitReached = true;
          break;
        }
        const first = this.firstChoice(node);
        node.chosen = first;
        if (this.o.reduce) {
          node.backtrack[first] = 1;
          for (let i = 0; i < node.choices.length; i++) if (everywhere(node.choices[i]!)) node.backtrack[i] = 1;
        } else node.backtrack.fill(1);
        this.stack.push(node);
      }
      const chosen = node.chosen;
      const choice = node.choices[chosen]!;
      fp.clear();
      if (guard && guard.changes.length !== 0) guard.changes.length = 0;
      const wasStopped = m.cpus[choice.cpu]!.isStopped;
      schedule.push(applyChoice(m, choice));
      // A drain can stop its CPU too (a store refused by the frame guard as it reaches memory).
      const access = accessOf(choice, fp, guard, !wasStopped && m.cpus[choice.cpu]!.isStopped);
      node.done[chosen] = access;
      if (this.o.reduce) {
        const raced = hb.add(actorIndex(choice), access, races, 0);
        for (let r = 0; r < raced; r++) this.addBacktrack(races[r]!, node.keys[chosen]!);
      }
    }
    return { schedule, ...classify(m, limitReached, this.o.check), state: finalStateKey(m) };
  }

  /**
   * Whether choice `here` (with `key`) at point `i` was explored touching something other
   * than the next choice with that key after point i on the current path: what that actor does next was changed.
   */
  private replaced(i: number, here: number, key: string): boolean {
    const known = this.stack[i]!.done[here];
    if (known === undefined) return false;
    for (let j = i + 1; j < this.stack.length; j++) {
      const later = this.stack[j]!;
      if (later.keys[later.chosen] === key) return !sameAccess(known, later.done[later.chosen]!);
    }
    return false;
  }

  /**
   * The race between the choice at point `i` and a later choice with `key`: try that actor's choice before point
   * i. When that actor cannot move at point i, every choice there is tried.
   *
   * An actor's choice at point i may differ from the one that raced: a step's footprint depends on state that other
   * actors change without stepping that CPU (an IPI accepted, a TLB event, a PTE a walk reads), so the choice made at
   * i can change what that CPU does next. When the actor's choice at i was explored already and touched something else than the actor's next choice after i,
   * its subtree does not hold the reversal: the races of the choice that was replaced were attributed to points
   * where the actor that would win them may not have been able to move, and the replaced choice never runs again
   * below i to find them anew. Every choice at i is tried then, as when the actor cannot move there.
   */
  private addBacktrack(i: number, key: string): void {
    if (i === 0) return; // the first point's choices are all explored anyway
    const node = this.stack[i]!;
    const here = node.keys.indexOf(key);
    if (here < 0 || this.replaced(i, here, key)) node.backtrack.fill(1);
    else node.backtrack[here] = 1;
    // Under a preemption bound, also where the block of steps holding point i began (the last switch to the CPU
    // that stepped at or last before i): reordering there may need no preemption where reordering at i does
    // (Coons, Musuvathi and McKinley's conservative branch points).
    if (this.bound === Number.POSITIVE_INFINITY) return;
    const made = node.choices[node.chosen]!;
    const cpu = isStep(made) ? made.cpu : node.current;
    let j = i;
    while (j > 1 && this.stack[j]!.current === cpu) j--;
    if (j === i) return;
    const start = this.stack[j]!;
    const at = start.keys.indexOf(key);
    if (at < 0 || this.replaced(j, at, key)) start.backtrack.fill(1);
    else start.backtrack[at] = 1;
  }
}

function sameAccess(a: Access, b: Access): boolean {
  if (a === b) return true;
  if (a.reads.length !== b.reads.length || a.writes.length !== b.writes.length) return false;
  for (let i = 0; i < a.reads.length; i++) if (a.reads[i] !== b.reads[i]) return false;
  for (let i = 0; i < a.writes.length; i++) if (a.writes[i] !== b.writes[i]) return false;
  return true;
}
