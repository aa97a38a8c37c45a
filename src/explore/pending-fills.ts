// The TLB-event reduction's bookkeeping (tlb-event-reduction.ts): what a probe walk for a speculative fill would do,
// and the fills left out at a state that a later choice may make needed again.

/** What a walk for a speculative fill would do now: fail with nothing written, write A bits, or make an entry. */
export const FAILS = 0;
export const WRITES = 1;
export const MAKES = 2;

/** Table frames a pending event's walk reads that the search keeps apart; past them, every choice probes again. */
export const MAX_TABLES = 16;

/**
 * Scratch: the entry a probe makes (page base, page size, TLB flags, frame-guard generation + 1), and the frames of
 * the tables its walk read.
 */
export class Probe {
  effect = FAILS;
  pageBase = 0;
  pageSize = 0;
  flags = 0;
  generation = 0;
  readonly tables = new Float64Array(4);
  tableCount = 0;
}

/**
 * The TLB events a state offers only if a choice from it changes their entry (see above), one per candidate: the
 * entry a walk makes now, which choices count (fills: any; evictions: a step of the entry's CPU), and whether one
 * changed it yet. They take the end of the state's choice list. One per depth of the search, reused.
 */
export class PendingFills {
  count = 0;
  /** The index in the state's choices of the first pending event; they take the rest of the list. */
  first = 0;
  cpu = new Int32Array(8);
  /** -1: any choice can change the entry (a fill); else only a step of this CPU (an eviction of its entry). */
  by = new Int32Array(8);
  va = new Float64Array(8);
  pageBase = new Float64Array(8);
  pageSize = new Float64Array(8);
  flags = new Int32Array(8);
  generation = new Float64Array(8);
  changed = new Uint8Array(8);
  /**
   * The frames of the tables the pending events' walks read (a choice that writes none of them, frees no frame
   * and changes no control register of the CPU leaves every entry as it was); -1: too many, probe again always.
   */
  readonly tables = new Float64Array(MAX_TABLES);
  tableCount = 0;
  /** Per CPU at the state: CR3, CR4, EFER. */
  controls = new Float64Array(0);
  /**
   * The probes of every page at this state (see ProbeMemo), which a child state takes as they are when nothing
   * they depend on changed: this state's own (made here), or its parent's (taken). Undefined: none.
   */
  memo: ProbeMemo | undefined;
  /** Storage for the probes made at this state (the frame is pooled per depth, and so is this). */
  ownMemo: ProbeMemo | undefined;

  clear(): void {
    this.count = 0;
    this.first = 0;
    this.tableCount = 0;
  }

  /** Whether choice `index` of the state is a pending event that no choice has changed: one to leave out. */
  unneeded(index: number): boolean {
    const k = index - this.first;
    return k >= 0 && k < this.count && this.changed[k] === 0;
  }

  add(cpu: number, by: number, va: number, p: Probe): void {
    if (this.count === this.cpu.length) this.grow();
    const k = this.count++;
    this.cpu[k] = cpu;
    this.by[k] = by;
    this.va[k] = va;
    this.pageBase[k] = p.pageBase;
    this.pageSize[k] = p.pageSize;
    this.flags[k] = p.flags;
    this.generation[k] = p.generation;
    this.changed[k] = 0;
    if (this.tableCount < 0) return;
    for (let t = 0; t < p.tableCount; t++) {
      const pfn = p.tables[t]!;
      let known = false;
      for (let u = 0; u < this.tableCount; u++) if (this.tables[u] === pfn) known = true;
      if (known) continue;
      if (this.tableCount === MAX_TABLES) {
        this.tableCount = -1;
        return;
      }
      this.tables[this.tableCount++] = pfn;
    }
  }

  private grow(): void {
    const n = 2 * this.cpu.length;
    const grown = <T extends Int32Array | Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.cpu = grown(this.cpu, (k) => new Int32Array(k));
    this.by = grown(this.by, (k) => new Int32Array(k));
    this.va = grown(this.va, (k) => new Float64Array(k));
    this.pageBase = grown(this.pageBase, (k) => new Float64Array(k));
    this.pageSize = grown(this.pageSize, (k) => new Float64Array(k));
    this.flags = grown(this.flags, (k) => new Int32Array(k));
    this.generation = grown(this.generation, (k) => new Float64Array(k));
    this.changed = grown(this.changed, (k) => new Uint8Array(k));
  }
}

/**
 * The probes of every page some CPU holds, for each group of CPUs with the same paging controls, as the TLB-event
 * reduction made them at a state, and what they depend on: the CPUs' TLB snapshots (shared by contents, so the
 * same pages) and controls, the table frames the walks read, and the undo log's length then (writes since are
 * logged after it). Probing every page at every state was a tenth of the stateful search.
 */
export class ProbeMemo {
  pages = 0;
  union = new Float64Array(16);
  holds = new Uint32Array(16);
  probes: Probe[] = [];
  mark = 0;
  snapshots: unknown[] = [];
  controls = new Float64Array(0);
  tables = new Float64Array(16);
  tableCount = 0;

  /** Takes `n` pages and `cpus` groups' probes from the reduction's scratch (copies: the scratch is reused). */
  store(n: number, union: Float64Array, holds: Uint32Array, probes: readonly Probe[], cpus: number): void {
    if (this.union.length < n) {
      this.union = new Float64Array(union.length);
      this.holds = new Uint32Array(union.length);
    }
    this.union.set(union.subarray(0, n));
    this.holds.set(holds.subarray(0, n));
    const need = cpus * n;
    while (this.probes.length < need) this.probes.push(new Probe());
    for (let k = 0; k < need; k++) copyProbe(probes[k]!, this.probes[k]!);
    this.pages = n;
    this.tableCount = 0;
  }

  noteTable(pfn: number): void {
    const t = this.tables;
    for (let k = 0; k < this.tableCount; k++) if (t[k] === pfn) return;
    if (this.tableCount === t.length) {
      const more = new Float64Array(2 * t.length);
      more.set(t);
      this.tables = more;
    }
    this.tables[this.tableCount++] = pfn;
  }
}

function copyProbe(from: Probe, to: Probe): void {
  to.effect = from.effect;
  to.pageBase = from.pageBase;
  to.pageSize = from.pageSize;
  to.flags = from.flags;
  to.generation = from.generation;
  to.tableCount = from.tableCount;
  to.tables.set(from.tables);
}
