// The LRU lists of file and anonymous pages (struct lruvec's lists, mm/vmscan.c), as Linux keeps them: lists
// threaded through the pages themselves, newest at the tail... here typed arrays indexed by frame, plus a table
// from each page's id (a file offset, an anonymous address) to its frame. Adding, removing and taking the oldest
// are O(1). Copy-on-write like the zone's arrays: a clone shares them until either side writes.

import { sameItems } from './same-items.ts';

const NONE = -1;
/** Which list a frame is on. */
export const LRU = { NONE: 0, FILE: 1, ANON: 2 } as const;
/** Added to a frame's kind while compaction has it isolated (off its list, still known by its id). */
const ISOLATED = 4;
/** Added while isolated when its owner dropped it (putback frees it). */
const DROPPED = 8;

export class LruLists {
  private next: Int32Array;
  private prev: Int32Array;
  /** Per frame: the page id, and the list (LRU.FILE, LRU.ANON) or LRU.NONE. */
  private id: Int32Array;
  private kind: Uint8Array;
  /** Per list: the oldest and newest frame, and the count. */
  private head = [NONE, NONE, NONE];
  private tail = [NONE, NONE, NONE];
  private count = [0, 0, 0];
  /** id -> frame index, per list (grown as ids grow); NONE when the page is not on the list. */
  private byId: [Int32Array, Int32Array, Int32Array];
  private shared = false;

  constructor(
    readonly firstPfn: number,
    readonly frames: number,
  ) {
    this.next = new Int32Array(frames).fill(NONE);
    this.prev = new Int32Array(frames).fill(NONE);
    this.id = new Int32Array(frames).fill(NONE);
    this.kind = new Uint8Array(frames);
    this.byId = [new Int32Array(0), new Int32Array(1024).fill(NONE), new Int32Array(1024).fill(NONE)];
  }

  clone(): LruLists {
    const c = Object.create(LruLists.prototype) as LruLists;
    Object.assign(c, this);
    c.head = [...this.head];
    c.tail = [...this.tail];
    c.count = [...this.count];
    c.byId = [...this.byId] as [Int32Array, Int32Array, Int32Array];
    this.shared = true;
    c.shared = true;
    return c;
  }

  restore(from: LruLists): void {
    Object.assign(this, from.clone());
  }

  /**
   * Internal (the stateful checker, which goes back to saved states many times): as restore(), but nothing is copied
   * when this object still shares `from`'s arrays and its lists' ends are the same (no write since they were shared:
   * a write copies the arrays first), as in a search whose programs never touch the LRU lists.
   */
  copyFrom(from: LruLists): void {
    if (
      this.shared &&
      this.next === from.next &&
      this.prev === from.prev &&
      this.id === from.id &&
      this.kind === from.kind &&
      this.byId.every((table, list) => table === from.byId[list]) &&
      sameItems(this.head, from.head) &&
      sameItems(this.tail, from.tail) &&
      sameItems(this.count, from.count)
    ) {
      return;
    }
    this.restore(from);
  }

  private writable(): void {
    if (!this.shared) return;
    this.next = this.next.slice();
    this.prev = this.prev.slice();
    this.id = this.id.slice();
    this.kind = this.kind.slice();
    this.byId = this.byId.map((a) => a.slice()) as [Int32Array, Int32Array, Int32Array];
    this.shared = false;
  }

  /** Pages on a list. */
  size(kind: 1 | 2): number {
    return this.count[kind]!;
  }

  /** The list the frame `pfn` is on (LRU.NONE when none), and its id. */
  kindOf(pfn: number): number {
    return this.kind[pfn - this.firstPfn]!;
  }

  idOf(pfn: number): number {
    return this.id[pfn - this.firstPfn]!;
  }

  /** The frame of page `id` on list `kind`, or -1. */
  pfnOf(id: number, kind: 1 | 2): number {
    const table = this.byId[kind]!;
    const i = id < table.length ? table[id]! : NONE;
    return i === NONE ? -1 : i + this.firstPfn;
  }

  /** The oldest page's frame on list `kind`, or -1. */
  oldest(kind: 1 | 2): number {
    const i = this.head[kind]!;
    return i === NONE ? -1 : i + this.firstPfn;
  }

  /** Appends both lists' contents in order, as [id, pfn] pairs (the stateful checker's fingerprint). */
  stateWords(out: number[]): void {
    for (const kind of [1, 2] as const) {
      out.push(this.count[kind]!);
      for (let i = this.head[kind]!; i !== NONE; i = this.next[i]!) out.push(this.id[i]!, i);
    }
  }

  /** Every page of list `kind`, oldest first, as [id, pfn] (for tests and reports). */
  *entries(kind: 1 | 2): Generator<[number, number]> {
    for (let i = this.head[kind]!; i !== NONE; i = this.next[i]!) yield [this.id[i]!, i + this.firstPfn];
  }

  /** Puts frame `pfn` on list `kind` as page `id`, newest. */
  add(pfn: number, id: number, kind: 1 | 2): void {
    this.writable();
    const i = pfn - this.firstPfn;
    let table = this.byId[kind]!;
    if (id >= table.length) {
      const grown = new Int32Array(Math.max(id + 1, table.length * 2)).fill(NONE);
      grown.set(table);
      this.byId[kind] = table = grown;
    }
    table[id] = i;
    this.id[i] = id;
    this.kind[i] = kind;
    const t = this.tail[kind]!;
    this.prev[i] = t;
    this.next[i] = NONE;
    if (t !== NONE) this.next[t] = i;
    else this.head[kind] = i;
    this.tail[kind] = i;
    this.count[kind]!++;
  }

  /** Takes frame `pfn` off its list; returns the list it was on (LRU.NONE: it was on none, or is isolated). */
  remove(pfn: number): number {
    const i = pfn - this.firstPfn;
    const kind = this.kind[i]!;
    if (kind === LRU.NONE || kind >= ISOLATED) return LRU.NONE;
    this.writable();
    this.unlink(i, kind);
    this.byId[kind]![this.id[i]!] = NONE;
    this.kind[i] = LRU.NONE;
    return kind;
  }

  /** isolate_lru_page(): frame `pfn` leaves its list but keeps its id. Returns the list it was on, or LRU.NONE. */
  isolate(pfn: number): number {
    const i = pfn - this.firstPfn;
    const kind = this.kind[i]!;
    if (kind === LRU.NONE || kind >= ISOLATED) return LRU.NONE;
    this.writable();
    this.unlink(i, kind);
    this.kind[i] = kind + ISOLATED;
    return kind;
  }

  /**
   * The owner drops page `id`: off its list (returns its frame, for the caller to free), or, when isolated, marked
   * so that putback() frees it (returns -2). Returns -1 when the page is gone already (reclaimed).
   */
  drop(id: number, kind: 1 | 2): number {
    const table = this.byId[kind]!;
    const i = id < table.length ? table[id]! : NONE;
    if (i === NONE) return -1;
    if (this.kind[i]! >= ISOLATED) {
      this.writable();
      this.kind[i] = this.kind[i]! | DROPPED;
      return -2;
    }
    this.remove(i + this.firstPfn);
    return i + this.firstPfn;
  }

  /**
   * putback_lru_page(): the page isolated at `oldPfn` is at `newPfn` now (or still at `oldPfn`) and goes back as
   * the newest of its list. Returns false when its owner dropped it meanwhile: the caller frees `newPfn`.
   */
  putback(oldPfn: number, newPfn: number): boolean {
    const o = oldPfn - this.firstPfn;
    const kind = this.kind[o]!;
    const id = this.id[o]!;
    this.writable();
    this.kind[o] = LRU.NONE;
    const list = (kind & 3) as 1 | 2;
    if ((kind & DROPPED) !== 0) {
      this.byId[list]![id] = NONE;
      return false;
    }
    this.add(newPfn, id, list);
    return true;
  }

  /** Whether frame `pfn` is isolated. */
  isolated(pfn: number): boolean {
    return this.kind[pfn - this.firstPfn]! >= ISOLATED;
  }

  private unlink(i: number, kind: number): void {
    const n = this.next[i]!;
    const p = this.prev[i]!;
    if (p !== NONE) this.next[p] = n;
    else this.head[kind] = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail[kind] = p;
    this.count[kind]!--;
  }
}
