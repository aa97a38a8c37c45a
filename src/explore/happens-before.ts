import type { Access } from './access.ts';

// The happens-before relation of the stateless search's current path (exhaustive.ts), as vector clocks over its
// choices, and the races each new choice makes with earlier ones (Flanagan & Godefroid, POPL 2005, section 4).

/**
 * Vector clocks over the current path's choices, kept from one execution to the next: the next execution shares
 * the path up to its backtrack point, so `truncate` undoes the choices after it (an undo log per choice) instead
 * of the prefix being analysed again. `add` records the next choice by `actor` with `access` and returns the
 * earlier points it races with (dependent, another actor's, not happening before it), latest first.
 */
export class HappensBefore {
  private clocks: Int32Array;
  private actorOf: Int32Array;
  private lastBefore: Int32Array;
  private logStart: Int32Array;
  private capacity = 256;
  private count = 0;
  /** The last choice of each actor on the path, or -1. */
  private readonly last: Int32Array;
  private readonly scratch: Int32Array;
  /** Per location: the last write, and the reads since it. */
  private readonly lastWrite = new Map<number, number>();
  private readonly readsSince = new Map<number, number[]>();
  // The undo log: what each change to the location tables replaced (entries past logCount are stale).
  private readonly logLoc: number[] = [];
  private readonly logKind: number[] = [];
  private readonly logPrev: (number | number[] | undefined)[] = [];
  private logCount = 0;
  private readonly candidates: number[] = [];

  constructor(private readonly width: number) {
    this.clocks = new Int32Array(this.capacity * width);
    this.actorOf = new Int32Array(this.capacity);
    this.lastBefore = new Int32Array(this.capacity);
    this.logStart = new Int32Array(this.capacity);
    this.last = new Int32Array(width).fill(-1);
    this.scratch = new Int32Array(width);
  }

  get length(): number {
    return this.count;
  }

  private grow(): void {
    this.capacity *= 2;
    const widen = (old: Int32Array, size: number) => {
      const next = new Int32Array(size);
      next.set(old);
      return next;
    };
    this.clocks = widen(this.clocks, this.capacity * this.width);
    this.actorOf = widen(this.actorOf, this.capacity);
    this.lastBefore = widen(this.lastBefore, this.capacity);
    this.logStart = widen(this.logStart, this.capacity);
  }

  /** Forgets the choices from point `n` on, undoing what they did to the location tables. */
  truncate(n: number): void {
    if (n >= this.count) return;
    const from = this.logStart[n]!;
    for (let i = this.logCount - 1; i >= from; i--) {
      const loc = this.logLoc[i]!;
      const prev = this.logPrev[i];
      switch (this.logKind[i]) {
        case 0:
          if (prev === undefined) this.lastWrite.delete(loc);
          else this.lastWrite.set(loc, prev as number);
          break;
        case 1:
          if (prev === undefined) this.readsSince.delete(loc);
          else this.readsSince.set(loc, prev as number[]);
          break;
        default:
          this.readsSince.get(loc)!.pop();
      }
    }
    this.logCount = from;
    for (let e = this.count - 1; e >= n; e--) this.last[this.actorOf[e]!] = this.lastBefore[e]!;
    this.count = n;
  }

  private log(kind: number, loc: number, prev: number | number[] | undefined): void {
    const i = this.logCount++;
    this.logKind[i] = kind;
    this.logLoc[i] = loc;
    this.logPrev[i] = prev;
  }

  /**
   * Records the next choice and appends the points it races with to `races` (from index `raced`); returns the new
   * race count. Scratch arrays are filled by index, not emptied by `length = 0`, which frees their storage in V8.
   */
  add(actor: number, access: Access, races: number[], raced: number): number {
    if (this.count === this.capacity) this.grow();
    const n = this.count;
    const w = this.width;
    const found = this.candidates;
    let nFound = 0;
    for (const loc of access.writes) {
      const lw = this.lastWrite.get(loc);
      if (lw !== undefined) found[nFound++] = lw;
      const rs = this.readsSince.get(loc);
      if (rs) for (const r of rs) found[nFound++] = r;
    }
    for (const loc of access.reads) {
      const lw = this.lastWrite.get(loc);
      if (lw !== undefined) found[nFound++] = lw;
    }
    // Latest first (insertion sort: a handful of candidates).
    for (let i = 1; i < nFound; i++) {
      const v = found[i]!;
      let j = i - 1;
      while (j >= 0 && found[j]! < v) {
        found[j + 1] = found[j]!;
        j--;
      }
      found[j + 1] = v;
    }
    const clock = this.scratch;
    const mine = this.last[actor]!;
    if (mine >= 0) clock.set(this.clocks.subarray(mine * w, mine * w + w));
    else clock.fill(0);
    let previous = -1;
    let nRaces = raced;
    for (let f = 0; f < nFound; f++) {
      const i = found[f]!;
      if (i === previous) continue;
      previous = i;
      const a = this.actorOf[i]!;
      const base = i * w;
      if (a !== actor && this.clocks[base + a]! > clock[a]!) races[nRaces++] = i;
      for (let k = 0; k < w; k++) if (clock[k]! < this.clocks[base + k]!) clock[k] = this.clocks[base + k]!;
    }
    clock[actor]!++;
    this.clocks.set(clock, n * w);
    this.actorOf[n] = actor;
    this.lastBefore[n] = mine;
    this.last[actor] = n;
    this.logStart[n] = this.logCount;
    this.count = n + 1;
    for (const loc of access.writes) {
      this.log(0, loc, this.lastWrite.get(loc));
      this.lastWrite.set(loc, n);
      const rs = this.readsSince.get(loc);
      if (rs) {
        this.log(1, loc, rs);
        this.readsSince.delete(loc);
      }
    }
    for (const loc of access.reads) {
      const rs = this.readsSince.get(loc);
      if (rs) {
        rs.push(n);
        this.log(2, loc, undefined);
      } else {
        this.log(1, loc, undefined);
        this.readsSince.set(loc, [n]);
      }
    }
    return nRaces;
  }
}
