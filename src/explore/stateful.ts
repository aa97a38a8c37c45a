import { totalmem } from 'node:os';
import createDebug from 'debug';
import type { Machine } from '../machine/machine.ts';
import { formatSchedule, type ScheduleEntry, sameEntry } from '../machine/schedule.ts';
import { InputError } from '../mmu/input-error.ts';
import { Checkpoint } from './checkpoint.ts';
import { type Choice, isTlbEvent } from './choices.ts';
import { classify, type Execution } from './execution.ts';
import { MachineState } from './machine-state.ts';
import { PendingFills } from './pending-fills.ts';
import { type SearchSnapshot, takeVisitedTable } from './search-snapshot.ts';
import type { SharedStateSet } from './shared-state-set.ts';
import { stateChoices } from './state-choices.ts';
import { entryOf, stateKind, takeChoice } from './state-transition.ts';
import type { Sample, StatefulOptions, StatefulResult } from './stateful-result.ts';
import { offerStutterAlone } from './stutter-step.ts';
import { TlbEventReduction } from './tlb-event-reduction.ts';
import { VisitedSet } from './visited-set.ts';

const log = createDebug('x86slice:explore:stateful');

/**
 * Memory the visited set may grow into: three quarters of the machine's, the rest left to the search's stack, its
 * checkpoints and the system. Past it the set fills its segments fuller, then grows in small steps (compact-set.ts):
 * on this project's 24 GiB machines it holds about 2.9 billion states so (docs/checker.md, the visited set).
 */
const VISITED_BUDGET = Math.floor(totalmem() * 0.75);

// The stateful exhaustive search (DESIGN.md "Checking"; issue 18): depth-first over the machine's states, with a
// visited set of 64-bit fingerprints, so that every path reaching a state seen before is cut there, as in SPIN and
// TLC. With no preemption bound it reaches every state reachable within the TLB-event budget: a clean result is a
// proof within that budget, up to the fingerprints' collision probability (visited-set.ts).
//
// A state is the machine's (machine-state.ts): memory, CPUs, TLBs, APICs, IPIs in flight, the kernel's bookkeeping
// and the programs' histories (programs.ts), plus the TLB events left. Going back to a state on the current path
// (to take its next choice) rolls memory back with an undo log and puts the rest back from a checkpoint: no step is
// executed again, and no generator either (their outcomes are cached by history).
//
// At each state the choices are those every strategy has (choices.ts): CPUs that can move, IPIs in flight, TLB
// events while the budget lasts. A state with none ends a run; it is classified as a run's end is (execution.ts),
// and counts as a final state. A state where a CPU stopped ends the path too.

/** One state on the depth-first stack: its checkpoint, its choices, and the next one to take. */
interface Frame {
  readonly checkpoint: Checkpoint;
  readonly choices: Choice[];
  next: number;
  tlbLeft: number;
  /** Whether the path to this state is the search's `first` path so far, its entry here put at index 0. */
  onFirst: boolean;
  /** Fills offered only if a choice from this state changes their entry (the TLB-event reduction). */
  readonly pending: PendingFills;
}

/** Snapshots a search has taken up (resumeFrom): their visited tables belong to that search now. */
const spent = new WeakSet<SearchSnapshot>();

/** States a worker finishes before it publishes them to the shared set (one lock round trip for them all). */
const FINISH_BATCH = 128;

export class StatefulSearch {
  private visited = new VisitedSet(0, VISITED_BUDGET);
  /**
   * The states on the depth-first stack, for cycles (a step back to one), by their fingerprint's low 16 bits: per
   * bucket the depth + 1 of its topmost frame (0: none), and per depth that of the next frame below it in its bucket.
   * A look-up walks one bucket's chain (a few hundredths of a frame at depth 1,400), where a scan of the whole stack
   * whenever a 16-bit filter hit cost 3.8% of a deep search's time.
   */
  private readonly stackTop = new Int32Array(1 << 16);
  private stackBelow = new Int32Array(1024);
  /** Frames by depth, reused (the stack holds frames[0..depth)). */
  private readonly framePool: Frame[] = [];
  private machine!: Machine;
  private initialMemory: readonly [number, number] = [0, 0];
  /** Restores by replay (the measured alternative), and the steps they took. */
  private replays = 0;
  private replayedSteps = 0;
  private readonly frames: Frame[] = [];
  private transitions = 0;
  /** The transitions count at the last look at the clock (search()). */
  private lastClockCheck = -1;
  /** With saveEvery: when to save the search next (Date.now() time). */
  private nextSave = Number.POSITIVE_INFINITY;
  private depth = 0;
  private finalStates = 0;
  private complete = true;
  private timedOut = false;
  /** A violation was found and the options say to stop there. */
  private stoppedAtViolation = false;
  private readonly best = new Map<string, Execution>();
  private readonly samples: Sample[] = [];
  private nextSample = 64;
  private state!: MachineState;
  private reduction: TlbEventReduction | undefined;
  private reductionOff: string | undefined;
  /** New states by kind of choice (step, delivery, eviction, fill), and those with no TLB event left. */
  private readonly statesBy = new Float64Array(5);
  private statesWithoutEvents = 0;
  private eventsLeftOut = 0;
  /** States cut because the same state with more TLB events left was visited. */
  private subsumedStates = 0;
  /** As a worker of the parallel search: the states it entered (see SharedStateSet), and its finished ones. */
  private readonly shared: SharedStateSet | undefined;
  private entered = 0;
  /** A path reached the step bound (maxSteps): the search is incomplete, whoever finishes the initial state. */
  private depthCut = false;
  /** The path to the step that read a dead word (deadRead). */
  private deadReadPath: ScheduleEntry[] | undefined;
  /** The path to go down first (StatefulOptions.first; a resumed search's own). */
  private readonly first: readonly ScheduleEntry[] | undefined;
  /** This worker finished the initial state. */
  private rootFinished = false;

  constructor(
    private readonly build: () => Machine,
    private readonly o: StatefulOptions,
  ) {
    this.shared = o.shared;
    this.first = o.resume === undefined ? o.first : o.resume.first;
  }

  /**
   * Whether dead words are left out of states (StatefulOptions.deadWords); when not given, a resumed search takes
   * its snapshot's (a search that read a dead word and ran again without them saves snapshots without them).
   */
  private get deadWords(): boolean {
    return this.o.deadWords ?? this.o.resume?.deadWords ?? this.o.reduction !== 'none';
  }

  /**
   * Whether a CPU's stutter step is offered alone at a state with no TLB event left (stutter-step.ts): with either
   * reduction; `none` is the search the reductions are tested against.
   */
  private get stutterSteps(): boolean {
    return this.o.reduction !== 'none';
  }

  /** Whether copied-away frames keep their words in the state (StatefulOptions.copiedLive; a resumed search's). */
  private get copiedLive(): boolean {
    return this.deadWords && (this.o.copiedLive ?? this.o.resume?.copiedLive ?? false);
  }

  run(): StatefulResult {
    this.machine = this.build();
    this.state = new MachineState(this.machine, {
      drive: true,
      deadWords: this.deadWords,
      copiedLive: this.copiedLive,
    });
    if (this.o.reduction !== 'none' && this.o.tlbEvents > 0) {
      this.reductionOff =
        this.o.cacheEvents === 'mapped'
          ? "cacheEvents 'mapped': the reduction's argument covers the 4 KiB events of pages in use only"
          : TlbEventReduction.unsupported(this.machine, this.o.tlbEvents);
      if (this.reductionOff === undefined) {
        this.reduction = new TlbEventReduction(this.machine, this.state, this.o.tlbEvents);
      }
    }
    const initialMemory: readonly [number, number] = [this.state.memory.sumA, this.state.memory.sumB];
    this.initialMemory = initialMemory;
    try {
      this.state.fingerprint(this.o.tlbEvents);
      if (this.shared === undefined) this.visited.add(this.state.fpA, this.state.fpB);
      else {
        if (!this.shared.agreeOnRoot(this.state.fpA, this.state.fpB)) {
          this.shared.stop();
          throw new InputError(
            `worker ${this.o.worker ?? 0} of the stateful search built an initial state other than the first ` +
              "worker's: every thread must load the build the same way (a program's fingerprint hashes its source " +
              'text; under a test runner, use worker threads only)',
          );
        }
        this.entered++;
      }
      this.reached(this.o.tlbEvents, undefined);
      if (this.o.resume !== undefined) this.resumeFrom(this.o.resume);
      if (this.o.saveEvery !== undefined) this.nextSave = Date.now() + this.o.saveEvery.ms;
      this.search();
      if (this.shared !== undefined) this.publish();
    } finally {
      this.state.detach();
    }
    const deadRead = this.state.memory.deadRead;
    if (deadRead >= 0 && this.shared === undefined && this.state.memory.deadReadCopied && !this.copiedLive) {
      // A word of a frame copied away was read (a CPU still translating to it): run again with those frames' words
      // in the state and the other dead words left out, down the path that read it first.
      const { resume: _saved, ...fresh } = this.o;
      const path = this.deadReadPath;
      const again = new StatefulSearch(this.build, {
        ...fresh,
        deadWords: true,
        copiedLive: true,
        ...(path === undefined ? {} : { first: path }),
      }).run();
      const schedule = path === undefined ? undefined : formatSchedule(path);
      return { ...again, deadWordsOff: copiedWordRead(deadRead, schedule, again.deadWordsOff) };
    }
    if (deadRead >= 0 && this.shared === undefined) {
      // Two states merged for their dead words could go different ways: the result does not stand. Search again
      // with every word's value in the state.
      const { resume: _saved, ...fresh } = this.o;
      const path = this.deadReadPath;
      const first = path === undefined ? {} : { first: path };
      const again = new StatefulSearch(this.build, { ...fresh, deadWords: false, ...first }).run();
      return { ...again, deadWordsOff: deadWordsRead(deadRead, path === undefined ? undefined : formatSchedule(path)) };
    }
    if (this.reduction?.overflowed() && this.shared === undefined) {
      // A fill met a TLB set too full for the reduction's argument: its result does not stand. Search again
      // without it (on the machine built again).
      const { resume: _saved, ...fresh } = this.o;
      const again = new StatefulSearch(this.build, { ...fresh, reduction: 'none' }).run();
      return {
        ...again,
        reductionOff: 'a TLB set came too close to full for the reduction (a fill could replace an entry)',
      };
    }
    const p = this.state.programs.outcomes;
    const by = this.statesBy;
    return {
      states: this.shared === undefined ? this.visited.size : this.entered,
      transitions: this.transitions,
      depth: this.depth,
      finalStates: this.finalStates,
      violations: [...this.best.values()],
      complete: this.complete,
      timedOut: this.timedOut,
      stoppedAtViolation: this.stoppedAtViolation,
      visitedBytes: this.visited.bytes,
      samples: this.samples,
      programOutcomes: p.misses,
      generatorsRemade: p.remade,
      generatorResumes: p.resumed,
      initialMemory,
      replays: this.replays,
      replayedSteps: this.replayedSteps,
      reduction: this.reduction === undefined ? 'none' : 'tlb-events',
      ...(this.reductionOff === undefined ? {} : { reductionOff: this.reductionOff }),
      statesBy: { step: by[0]!, delivery: by[1]!, eviction: by[2]!, fill: by[3]!, drain: by[4]! },
      statesWithoutEvents: this.statesWithoutEvents,
      eventsLeftOut: this.eventsLeftOut,
      subsumed: this.subsumedStates,
      rootFinished: this.rootFinished,
      depthCut: this.depthCut,
      reductionOverflowed: this.reduction?.overflowed() ?? false,
      deadWords: this.deadWords,
      copiedLive: this.copiedLive,
      deadRead,
      deadReadCopied: this.state.memory.deadReadCopied,
      ...(this.deadReadPath === undefined ? {} : { deadReadSchedule: formatSchedule(this.deadReadPath) }),
      ...(this.o.keepSnapshot && this.frames.length > 0 ? { snapshot: this.snapshot() } : {}),
    };
  }

  /** The search as it stands, to be resumed (search-snapshot.ts). */
  private snapshot(): SearchSnapshot {
    const frames = this.frames;
    const fingerprints = new Int32Array(2 * frames.length);
    const next = new Int32Array(frames.length);
    frames.forEach((f, d) => {
      fingerprints[2 * d] = f.checkpoint.fpA;
      fingerprints[2 * d + 1] = f.checkpoint.fpB;
      next[d] = f.next;
    });
    const visited = this.visited.export();
    return {
      fingerprints,
      next,
      changed: frames.map((f) => Array.from(f.pending.changed.subarray(0, f.pending.count))),
      counters: {
        transitions: this.transitions,
        depth: this.depth,
        finalStates: this.finalStates,
        statesBy: Array.from(this.statesBy),
        statesWithoutEvents: this.statesWithoutEvents,
        eventsLeftOut: this.eventsLeftOut,
        subsumed: this.subsumedStates,
        depthCut: this.depthCut,
        nextSample: this.nextSample,
      },
      violations: [...this.best.values()],
      visited: visited.segments,
      visitedSize: visited.size,
      deadWords: this.deadWords,
      ...(this.copiedLive ? { copiedLive: true } : {}),
      tlbEvents: this.o.tlbEvents,
      reduction: this.reduction === undefined ? 'none' : 'tlb-events',
      ...(this.stutterSteps ? { stutterSteps: true } : {}),
      ...(this.first === undefined ? {} : { first: this.first }),
    };
  }

  /**
   * Takes up a saved search (run(), with the initial state's frame pushed): its visited set and counts, then its
   * stack, by taking the saved choice at each depth from the initial state, each state checked against the saved
   * fingerprint.
   */
  private resumeFrom(s: SearchSnapshot): void {
    const mismatch = (what: string) =>
      new InputError(
        `the saved search does not match this one: ${what} (it was saved from another scenario, parameters, ` +
          'options or version of x86slice)',
      );
    if (this.shared !== undefined) throw new InputError('a saved search resumes on one thread only');
    const reduction = this.reduction === undefined ? 'none' : 'tlb-events';
    const copiedLive = s.copiedLive === true;
    const stutter = s.stutterSteps === true;
    if (
      s.deadWords !== this.deadWords ||
      copiedLive !== this.copiedLive ||
      s.tlbEvents !== this.o.tlbEvents ||
      s.reduction !== reduction ||
      stutter !== this.stutterSteps
    ) {
      throw mismatch(
        `it has deadWords ${s.deadWords}, copiedLive ${copiedLive}, tlbEvents ${s.tlbEvents}, reduction ` +
          `${s.reduction}, stutterSteps ${stutter}; this search ${this.deadWords}, ${this.copiedLive}, ` +
          `${this.o.tlbEvents}, ${reduction}, ${this.stutterSteps}`,
      );
    }
    const depth = s.next.length;
    const frames = this.frames;
    if (depth === 0 || frames.length === 0) throw mismatch('it has no state left to explore');
    const root = frames[0]!.checkpoint;
    if (root.fpA !== s.fingerprints[0] || root.fpB !== s.fingerprints[1]) throw mismatch('the initial states differ');
    // The search takes the snapshot's table over (a copy would double the largest allocation a long search makes):
    // the snapshot is spent.
    if (spent.has(s)) {
      throw new InputError(
        'explore resume: this snapshot was taken up already (a resumed search takes its visited table over); ' +
          'resume from the snapshot that search returns, or save the search again',
      );
    }
    spent.add(s);
    this.visited = VisitedSet.from(takeVisitedTable(s), s.visitedSize, VISITED_BUDGET);
    const c = s.counters;
    this.transitions = c.transitions;
    this.depth = c.depth;
    this.finalStates = c.finalStates;
    this.statesBy.set(c.statesBy);
    this.statesWithoutEvents = c.statesWithoutEvents;
    this.eventsLeftOut = c.eventsLeftOut;
    this.subsumedStates = c.subsumed;
    this.depthCut = c.depthCut;
    this.nextSample = c.nextSample;
    for (const v of s.violations) if (v.kind !== undefined) this.best.set(v.kind, v);
    for (let d = 0; d < depth; d++) {
      const f = frames[d]!;
      const next = s.next[d]!;
      if (next < (d < depth - 1 ? 1 : 0) || next > f.choices.length) {
        throw mismatch(`depth ${d} has ${f.choices.length} choices, and ${next} taken is not a way down`);
      }
      f.next = next;
      const changed = s.changed[d] ?? [];
      if (changed.length !== f.pending.count) throw mismatch(`depth ${d}'s pending TLB events differ`);
      f.pending.changed.set(changed);
      if (d === depth - 1) break;
      const choice = f.choices[next - 1]!;
      takeChoice(this.machine, this.state, choice, true);
      const event = isTlbEvent(choice);
      if (!event && f.pending.count !== 0) {
        const memory = this.o.restore === 'replay' ? -1 : f.checkpoint.memory;
        this.reduction!.afterChoice(f.pending, 'deliver' in choice ? -1 : choice.cpu, memory);
      }
      const tlbLeft = f.tlbLeft - (event ? 1 : 0);
      this.state.fingerprint(tlbLeft);
      if (this.state.fpA !== s.fingerprints[2 * d + 2] || this.state.fpB !== s.fingerprints[2 * d + 3]) {
        throw mismatch(`the state at depth ${d + 1} differs`);
      }
      if (!this.reached(tlbLeft, choice)) throw mismatch(`the state at depth ${d + 1} has no choice`);
      f.pending.changed.set(changed);
    }
  }

  /** Goes back to frame `f`'s state by building the machine again and taking the path's choices up to it. */
  private replayTo(f: Frame): void {
    const { deadRead, deadReadCopied } = this.state.memory;
    this.state.detach();
    this.machine = this.build();
    this.state = new MachineState(this.machine, {
      drive: true,
      initialMemory: this.initialMemory,
      deadWords: this.deadWords,
      copiedLive: this.copiedLive,
    });
    this.state.memory.deadRead = deadRead;
    this.state.memory.deadReadCopied = deadReadCopied;
    this.reduction?.attach(this.machine, this.state);
    for (const g of this.frames) {
      if (g === f) break;
      takeChoice(this.machine, this.state, g.choices[g.next - 1]!, true);
      this.replayedSteps++;
    }
    this.replays++;
  }

  /**
   * Whether the state just reached, with `tlbLeft` TLB events left, was visited with more left. Then it is cut
   * there: with more events left, the search took every choice it has now (the same steps and deliveries, and TLB
   * events that are offered with fewer left are offered with more), so everything reachable from it was or will be
   * reached from there, with at least as many events left. Where the one with more events left is on the stack,
   * this is no cycle: the path back to it spent an event, and cannot be taken again without one.
   */
  private subsumed(tlbLeft: number): boolean {
    const state = this.state;
    for (let more = tlbLeft + 1; more <= this.o.tlbEvents; more++) {
      state.combine(more);
      const seen =
        this.shared === undefined
          ? this.visited.has(state.combinedA, state.combinedB)
          : this.shared.has(state.combinedA, state.combinedB) || this.stackDepth(state.combinedA, state.combinedB) >= 0;
      if (seen) {
        this.subsumedStates++;
        return true;
      }
    }
    return false;
  }

  /** Leaves the top frame: as a worker, its state is finished (every choice from it taken). */
  private pop(): void {
    const f = this.frames.pop()!;
    this.stackTop[f.checkpoint.fpA & 0xffff] = this.stackBelow[this.frames.length]!;
    if (this.shared !== undefined) this.finish(f.checkpoint.fpA, f.checkpoint.fpB);
  }

  /**
   * As a worker: the state with fingerprint a:b is finished (every choice from it taken), `final` when the path ended
   * at it; it goes into the batch publish() adds. With the initial state finished, every reachable state is, so all
   * workers stop.
   */
  private finish(a: number, b: number, final = false): void {
    const n = this.batchN++;
    this.batchA[n] = a;
    this.batchB[n] = b;
    this.batchFinal[n] = final ? 1 : 0;
    // Cut here from now on (this thread's cache); the other workers see it when the batch is published. Until
    // then they may explore it again, which costs work, never a state.
    this.shared!.remember(a, b);
    if (this.frames.length === 0) {
      this.publish();
      this.rootFinished = true;
      this.shared!.stop();
    } else if (this.batchN === FINISH_BATCH) this.publish();
  }

  /** Publishes the finished states of the batch; a final state is counted where it was new to the shared set. */
  private publish(): void {
    if (this.batchN === 0) return;
    this.shared!.addAll(this.batchA, this.batchB, this.batchN, this.batchFresh);
    for (let k = 0; k < this.batchN; k++) if (this.batchFinal[k] === 1 && this.batchFresh[k] === 1) this.finalStates++;
    this.batchN = 0;
  }

  private readonly batchA = new Int32Array(FINISH_BATCH);
  private readonly batchB = new Int32Array(FINISH_BATCH);
  private readonly batchFinal = new Uint8Array(FINISH_BATCH);
  private readonly batchFresh = new Uint8Array(FINISH_BATCH);
  private batchN = 0;

  /**
   * The path ends at the state just reached (no frame pushed for it): as a worker, that state is finished. A final
   * state is counted where no other worker counted it first.
   */
  private endOfPath(final: boolean): false {
    if (this.shared !== undefined) this.finish(this.state.fpA, this.state.fpB, final);
    else if (final) this.finalStates++;
    return false;
  }

  /** A final state (a CPU stopped, or no choice is left): the run ends here; classified, it ends the path. */
  private finalState(m: Machine): false {
    this.o.onFinal?.(m, this.state.programs);
    this.note(classify(m, false, this.o.check));
    return this.endOfPath(true);
  }

  /** The depth of the state with fingerprint a:b on the stack, or -1. */
  private stackDepth(a: number, b: number): number {
    for (let i = this.stackTop[a & 0xffff]!; i !== 0; i = this.stackBelow[i - 1]!) {
      const c = this.frames[i - 1]!.checkpoint;
      if (c.fpA === a && c.fpB === b) return i - 1;
    }
    return -1;
  }

  /**
   * A step back to a state on the stack, at `depth`: a cycle, so some run can go on forever. It is a `step-bound`
   * violation (the stateless search would hit the step bound on it), with a schedule that goes round the cycle
   * until the bound.
   */
  private cycle(depth: number): void {
    const path = this.path();
    const loop = path.slice(depth);
    const entries = path.slice(0, depth);
    while (entries.length < this.o.maxSteps + 1) entries.push(...loop);
    const best = this.best.get('step-bound');
    if (best && best.schedule.length <= entries.length) return;
    this.best.set('step-bound', {
      schedule: entries,
      kind: 'step-bound',
      message: `a cycle: the state after entry ${path.length} is the one after entry ${depth}, so a run can go on forever`,
    });
  }

  private search(): void {
    const frames = this.frames;
    const replay = this.o.restore === 'replay';
    /** The frame whose state the machine is in, if any (after a step to a state seen before: none). */
    let at: Frame | undefined = frames[frames.length - 1];
    while (frames.length > 0) {
      if (this.stoppedAtViolation) {
        this.complete = false;
        this.shared?.stop();
        return;
      }
      if ((this.transitions & 0x3ff) === 0 && this.transitions !== this.lastClockCheck) {
        // Checked before a choice is taken, so that a search stopped here has taken each choice it counts (a saved
        // search resumes at the next one).
        this.lastClockCheck = this.transitions;
        const every = this.o.saveEvery;
        if (every !== undefined && Date.now() >= this.nextSave) {
          every.save(this.snapshot());
          this.nextSave = Date.now() + every.ms;
        }
        if (this.o.deadline !== undefined && Date.now() >= this.o.deadline) {
          this.complete = false;
          this.timedOut = true;
          this.shared?.stop();
          return;
        }
        // Another worker finished the initial state, or stopped the search (stateful-parallel.ts's merge tells which).
        if (this.shared?.stopped) {
          this.complete = false;
          return;
        }
      }
      const f = frames[frames.length - 1]!;
      if (f.next >= f.choices.length) {
        this.pop();
        continue;
      }
      const index = f.next++;
      const c = f.choices[index]!;
      if (f.pending.count !== 0 && f.pending.unneeded(index)) {
        this.eventsLeftOut++;
        continue;
      }
      if (at !== f) {
        if (replay) this.replayTo(f);
        else this.state.restore(f.checkpoint);
      }
      const state = this.state;
      takeChoice(this.machine, state, c, true);
      this.transitions++;
      // A dead word read by the step (or below, by a check or invariant at the state it reached).
      if (state.memory.deadRead >= 0) return this.stopAtDeadRead(this.path());
      const event = isTlbEvent(c);
      if (!event && f.pending.count !== 0) {
        this.reduction!.afterChoice(f.pending, 'deliver' in c ? -1 : c.cpu, replay ? -1 : f.checkpoint.memory);
      }
      const tlbLeft = f.tlbLeft - (event ? 1 : 0);
      state.fingerprint(tlbLeft);
      at = undefined;
      if (tlbLeft < this.o.tlbEvents && this.o.reduction !== 'none' && this.subsumed(tlbLeft)) continue;
      if (this.shared === undefined) {
        if (!this.visited.add(state.fpA, state.fpB)) {
          const depth = this.stackDepth(state.fpA, state.fpB);
          if (depth >= 0) this.cycle(depth);
          continue;
        }
      } else {
        // A worker cuts a path only at a state on its own stack (a cycle) or one finished: a state another worker
        // has entered and not finished is explored again here, so that a cycle across workers is not missed (a
        // finished state's every successor was taken, so every cycle through it was found: see stateful-parallel.ts).
        const depth = this.stackDepth(state.fpA, state.fpB);
        if (depth >= 0) {
          this.cycle(depth);
          continue;
        }
        if (this.shared.has(state.fpA, state.fpB)) continue;
        this.entered++;
      }
      this.statesBy[stateKind(c)]!++;
      if (tlbLeft === 0) this.statesWithoutEvents++;
      const pushed = this.reached(tlbLeft, c);
      if (pushed) at = frames[frames.length - 1];
      if (state.memory.deadRead >= 0) return this.stopAtDeadRead(pushed ? this.path(1) : this.path());
      if ((this.shared === undefined ? this.visited.size : this.shared.size) >= this.o.maxStates) {
        this.complete = false;
        this.shared?.stop();
        return;
      }
    }
  }

  /**
   * A new state, reached by choice `c` from the top frame (undefined: the initial state): classify it, and push a
   * frame for it when it has choices. Returns whether it pushed one.
   */
  private reached(tlbLeft: number, c: Choice | undefined): boolean {
    const m = this.machine;
    const depth = this.frames.length;
    const states = this.shared === undefined ? this.visited.size : this.entered;
    if (states >= this.nextSample) {
      this.nextSample *= 2;
      if (this.samples.length < this.o.samples) this.sample(c);
    }
    if (this.o.progress && (states & 0x3fff) === 0) this.o.progress(states);
    if (this.o.invariant && !this.o.invariant(m)) {
      this.note({ kind: 'invariant', message: 'the state invariant is false' });
      return this.endOfPath(false);
    }
    if (m.firstStop !== undefined) return this.finalState(m);
    let frame = this.framePool[depth];
    const pending = frame?.pending ?? new PendingFills();
    // With the reduction, the TLB events come from it (tlb-event-reduction.ts), after the steps and deliveries.
    const choices = stateChoices(
      m,
      this.reduction === undefined ? tlbLeft : 0,
      frame?.choices ?? [],
      this.o.cacheEvents,
    );
    // With no TLB event left, a CPU's stutter step is offered alone (an ample set: stutter-step.ts).
    if (tlbLeft === 0 && this.stutterSteps) offerStutterAlone(m, this.state.programs, choices);
    // A worker of the parallel search takes the steps and deliveries turned by its number (before the TLB events:
    // the reduction's pending fills count on the choices before them).
    const turn = this.o.worker === undefined || choices.length < 2 ? 0 : this.o.worker % choices.length;
    if (turn !== 0) choices.push(...choices.splice(0, turn));
    const onFirst = this.first !== undefined && this.takeFirst(depth, choices);
    if (this.reduction !== undefined) {
      // The parent's probes are exact at its state only when restores go back by the undo log (not by replay).
      const parent = this.o.restore === 'replay' ? undefined : this.frames[depth - 1]?.pending;
      this.eventsLeftOut += this.reduction.appendEvents(choices, tlbLeft, pending, parent);
    }
    if (choices.length === 0) return this.finalState(m);
    if (depth >= this.o.maxSteps) {
      this.complete = false;
      this.depthCut = true;
      this.note({ kind: 'step-bound', message: undefined });
      return this.endOfPath(false);
    }
    if (frame === undefined) {
      frame = { checkpoint: new Checkpoint(m.cpus.length), choices, next: 0, tlbLeft, pending, onFirst };
      this.framePool[depth] = frame;
    }
    frame.next = 0;
    frame.tlbLeft = tlbLeft;
    frame.onFirst = onFirst;
    this.state.save(frame.checkpoint);
    const bucket = frame.checkpoint.fpA & 0xffff;
    const d = this.frames.length;
    if (d === this.stackBelow.length) {
      const longer = new Int32Array(2 * d);
      longer.set(this.stackBelow);
      this.stackBelow = longer;
    }
    this.stackBelow[d] = this.stackTop[bucket]!;
    this.stackTop[bucket] = d + 1;
    this.frames.push(frame);
    if (this.frames.length > this.depth) this.depth = this.frames.length;
    return true;
  }

  /**
   * While the path to a new state at `depth` is the `first` path so far (each frame above took its index 0, put
   * there by this), moves the path's next entry to the front of `choices`, among the steps and deliveries (before
   * the TLB events: the reduction's pending fills count on the choices before them). Whether it did.
   */
  private takeFirst(depth: number, choices: Choice[]): boolean {
    const first = this.first!;
    if (depth >= first.length) return false;
    const parent = this.frames[depth - 1];
    if (parent !== undefined && !(parent.onFirst && parent.next === 1)) return false;
    const want = first[depth]!;
    const k = choices.findIndex((c) => !isTlbEvent(c) && sameEntry(entryOf(c), want));
    if (k < 0) return false;
    if (k > 0) choices.unshift(...choices.splice(k, 1));
    return true;
  }

  /** The entries of the path to the state just reached (the top frame's choice last; `skip` top frames left out). */
  private path(skip = 0): ScheduleEntry[] {
    const entries: ScheduleEntry[] = [];
    const n = this.frames.length - skip;
    for (let d = 0; d < n; d++) {
      const f = this.frames[d]!;
      entries.push(entryOf(f.choices[f.next - 1]!));
    }
    return entries;
  }

  /**
   * A dead word was read, by the last step of `path` or by a check or invariant at the state it reaches: no state
   * merged for its dead words can be trusted, so the search stops here and runs again without them, down this path
   * first (run()).
   */
  private stopAtDeadRead(path: ScheduleEntry[]): void {
    this.deadReadPath = path;
    log(
      'dead word read at physical 0x%s after %d states, by %s',
      this.state.memory.deadRead.toString(16),
      this.visited.size,
      formatSchedule(path),
    );
    this.complete = false;
    this.shared?.stop();
  }

  /** A violation (or none) at the state just reached: kept when it is the shortest of its kind so far. */
  private note(r: Omit<Execution, 'schedule'>): void {
    if (r.kind === undefined) return;
    if (this.o.stopAtViolation) this.stoppedAtViolation = true;
    const best = this.best.get(r.kind);
    if (best && best.schedule.length <= this.frames.length) return;
    this.best.set(r.kind, { schedule: this.path(), kind: r.kind, message: r.message });
  }

  /** Keeps the path to the state just reached, with the fingerprints along it, for the contract check. */
  private sample(c: Choice | undefined): void {
    const entries = this.path();
    const n = entries.length + 1;
    const fingerprints = new Int32Array(2 * n);
    const tlbLeft = new Int32Array(n);
    const parts: Int32Array[] = [];
    this.frames.forEach((f, k) => {
      fingerprints[2 * k] = f.checkpoint.fpA;
      fingerprints[2 * k + 1] = f.checkpoint.fpB;
      tlbLeft[k] = f.tlbLeft;
      parts.push(f.checkpoint.parts.slice());
    });
    parts.push(this.state.parts.slice());
    fingerprints[2 * (n - 1)] = this.state.fpA;
    fingerprints[2 * (n - 1) + 1] = this.state.fpB;
    const last = this.frames[this.frames.length - 1];
    tlbLeft[n - 1] = c === undefined ? this.o.tlbEvents : (last?.tlbLeft ?? this.o.tlbEvents) - (isTlbEvent(c) ? 1 : 0);
    this.samples.push({ entries, fingerprints, tlbLeft, parts });
  }
}

/**
 * Why a search's dead words stood only with copied-away frames' words in the state; `then`, why that search in turn
 * did not keep its dead words (it read another), if it did not.
 */
export function copiedWordRead(pa: number, schedule?: string, then?: string): string {
  return (
    `a word of a frame a migration copied away was read (physical 0x${pa.toString(16)}` +
    (schedule === undefined ? '' : `, by the last step of schedule '${schedule}'`) +
    `), by a CPU still translating to it: the search ran again with copied-away frames' words in the state` +
    (then === undefined ? '' : `; then ${then}`)
  );
}

/** Why a search's dead words did not stand. */
export function deadWordsRead(pa: number, schedule?: string): string {
  return (
    `a dead word (popped from a stack, or in a frame freed or copied away) was read before it was written ` +
    `(physical 0x${pa.toString(16)}` +
    (schedule === undefined ? '' : `, by the last step of schedule '${schedule}'`) +
    `): the search ran again with every word in the state`
  );
}
