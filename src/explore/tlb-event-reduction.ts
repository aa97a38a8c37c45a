import type { Cpu } from '../cpu/cpu.ts';
import { CR4, EFER } from '../cpu/registers.ts';
import type { Machine } from '../machine/machine.ts';
import { frameGeneration } from '../mmu/frame-guard.ts';
import { entryFrame, LARGE_1G_RESERVED_LO, LARGE_2M_RESERVED_LO, PTE_HI, PTE_HI_RESERVED, PTE_LO } from '../mmu/pte.ts';
import { TLB_FLAG } from '../mmu/tlb.ts';
import type { Choice } from './choices.ts';
import type { MachineState } from './machine-state.ts';
import { FAILS, MAKES, type PendingFills, Probe, ProbeMemo, WRITES } from './pending-fills.ts';

// The stateful search's reduction of TLB events (issue 18; docs/checker.md "What complete means"). A TLB event is
// the hardware's freedom to drop an entry or fill one at any step, and with one event to spend, every state of the
// search without events has a subtree of states per event it offers. Most of those events cannot make a difference:
//
// EVICTIONS. An entry is *current* when a walk now would fill exactly it (same frame, same flags, the frame's
// guard generation unchanged) and would write nothing (every A bit on the way set). A stale entry's eviction is
// offered at every state; a current one's only when a step of its own CPU from the state changes what a walk
// would make (that step may use the entry after making it stale, within the step). Why that loses nothing: take
// any run that drops current entry e of CPU c (page p) at some point. Until one of these happens, the run with e
// kept goes through the same states but for c's TLB (and one more event left):
//  (1) another CPU's step makes e stale (a page-table word on p's walk written, p's frame freed): drop e right
//      after it instead; it is stale there, so the reduced search offers it, and the states agree again (where the
//      run ends at that step, leave the eviction out: the states differ only in c's TLB);
//  (1') a step of c changes what a walk for p makes (its own page-table write, CR3 or CR4, a free): drop e right
//      before that step instead; the step, taken from there, changes it, so the reduced search offers it there;
//  (2) c translates p (a walk in the run that dropped e, a hit with e kept): the walk refills e, exactly (current:
//      nothing written, the same generation), so the eviction can simply be left out;
//  (3) c removes e itself (INVLPG, a CR3 write, a #PF on p), or the run fills p into c again: leave it out;
//  (4) c was spinning: the eviction woke it, and its next step reads the same bytes again (no write to them came,
//      or that write would have woken it too), finds the same value and blocks again: a step that leads back to
//      the state with e kept (up to case 2), which the reduced search has already.
// Nothing else reads c's TLB: other CPUs' steps, deliveries and their TLB events do not, and a stop or the end of
// the run is the same state but for c's TLB. The events offered are only more with e kept (p held once more).
//
// FILLS. A speculative fill of page q into CPU c, when it is the last event the budget allows (one left):
//  - whose walk fails and writes nothing changes nothing but the budget: never offered (fewer events left can
//    only reach less);
//  - whose walk writes an A bit, or at a state with more than one event left: always offered;
//  - otherwise it makes entry E, and is offered only when some choice from the state (a step, a delivery) changes
//    what a walk for q from c would make. Take any run that fills E here: until E would differ from a walk's, the
//    run without the fill goes through the same states but for c's TLB. If c translates q first, its walk makes E
//    (case 2 above), or c removes it itself: leave the fill out. If a choice makes E stale first, fill right before
//    that choice instead: E is what a walk makes there too, and that choice, taken from there, changes it, so the
//    reduced search offers the fill there. If neither happens, the run ends with E unused: leave the fill out.
//    With one event left, no later event depends on the fill.
//
// Both arguments move or drop events along a run and compare states but for TLB contents (which entries, and in
// which slot: a set's free ways are taken first) and the events left. Two things could break that, and neither is
// in the argument: a fill that finds its set full and replaces an entry, whose victim depends on which entries and
// pointers the set has; and hardware this argument does not cover (store buffers, paging-structure caches, whose
// drains and evictions are other choices). So the reduction applies only to machines with neither, and to searches
// in which no fill met a set with more than (ways - 1 - budget) entries in use (or, in the large-page array, more
// than its size - 1 - budget): then a run the argument compares, which holds at most `budget` entries more or
// fewer than the reduced search's, never filled a full set either. The search checks that at its end
// (`overflowed`), and searches again without the reduction when a set came too close.
// What the final check and the invariant see is then the same up to TLB contents: a check or invariant that reads
// TLB entries needs `reduction: 'none'`.

const { P, RW, US, A, D, PS, G } = PTE_LO;
const NX = PTE_HI.NX;
const PAGE = 4096;
const LEVEL_DIVISOR = [0, 2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39];
const PAGE_SIZE_AT_LEVEL = [0, 4096, 2 ** 21, 2 ** 30];

/** The 4 KiB pages a TLB snapshot holds, ascending: computed once per snapshot (snapshots are shared by contents). */
function pagesOf(snapshot: { tlb: { storage: { tag: Float64Array } }; pages?: Float64Array }): Float64Array {
  let pages = snapshot.pages;
  if (pages === undefined) {
    const list: number[] = [];
    for (const vpn of snapshot.tlb.storage.tag) if (vpn >= 0) list.push(vpn * PAGE);
    pages = Float64Array.from(new Set(list)).sort();
    snapshot.pages = pages;
  }
  return pages;
}

export class TlbEventReduction {
  private readonly probe = new Probe();
  private m!: Machine;
  private state!: MachineState;
  /** Whether a fill met a set too full for the argument, on a machine the search has left (see attach). */
  private overflowedBefore = false;
  /** Choices made once each, per CPU and page (the same few are offered at millions of states). */
  private readonly evictions: Map<number, Choice>[] = [];
  private readonly fills: Map<number, Choice>[] = [];
  /** Scratch: the pages some CPU holds, ascending, and per CPU whether it holds each. */
  private union = new Float64Array(16);
  private holds = new Uint32Array(16);
  /** Scratch: per (CPU group, page of the union), the probe's outcome (see probeAll). */
  private memo: Probe[] = [];
  private readonly pending: Choice[] = [];

  constructor(
    m: Machine,
    state: MachineState,
    /** TLB events a run may take at most (the search's budget). */
    private readonly budget: number,
  ) {
    this.attach(m, state);
  }

  /** The search goes on with machine `m` (a search that restores states by building the machine again). */
  attach(m: Machine, state: MachineState): void {
    if (this.m !== undefined) this.overflowedBefore ||= this.overflowed();
    this.m = m;
    this.state = state;
    for (const cpu of m.cpus) {
      cpu.tlb.fullestSet = 0;
      cpu.tlb.fullestLarge = 0;
    }
  }

  /**
   * Why the reduction cannot apply to this machine and budget, or undefined: hardware the argument does not cover,
   * or TLB sets too small to hold `budget` entries more than the search sees without overflowing.
   */
  static unsupported(m: Machine, budget: number): string | undefined {
    if (m.cpus.length > 32) return 'the machine has more than 32 CPUs';
    for (const cpu of m.cpus) {
      if (cpu.port.storeBuffer !== undefined) return 'the machine has store buffers';
      if (cpu.port.psc !== undefined) return 'the machine has paging-structure caches';
      if (cpu.tlb.ways < budget + 2) return `the TLB's sets (${cpu.tlb.ways} ways) are too small`;
    }
    return undefined;
  }

  /**
   * Whether some fill during the search met a set too full for the argument (see the module comment): the search's
   * result does not stand with the reduction, and the search must run again without it.
   */
  overflowed(): boolean {
    if (this.overflowedBefore) return true;
    for (const cpu of this.m.cpus) {
      const tlb = cpu.tlb;
      if (tlb.fullestSet > tlb.ways - 1 - this.budget) return true;
      if (tlb.largeCapacity > 0 && tlb.fullestLarge > tlb.largeCapacity - 1 - this.budget) return true;
    }
    return false;
  }

  private choice(table: Map<number, Choice>[], cpu: number, tlb: 'evict' | 'fill', va: number): Choice {
    let map = table[cpu];
    if (map === undefined) {
      map = new Map();
      table[cpu] = map;
    }
    let c = map.get(va);
    if (c === undefined) {
      c = Object.freeze({ cpu, tlb, va });
      map.set(va, c);
    }
    return c;
  }

  /**
   * Appends to `choices` (a state's steps and deliveries, as stateChoices lists them with no TLB event left) the
   * TLB events this state offers with `tlbLeft` left, in stateChoices' order, less those that cannot make a
   * difference: each CPU's evictions of the 4 KiB pages it holds, then its fills of pages another CPU holds.
   * With one event left, fills that matter only if a choice from here changes their entry, and evictions of current
   * entries, go to the end of the list, recorded in `pending`. Returns the events left out.
   */
  appendEvents(choices: Choice[], tlbLeft: number, pending: PendingFills, parent?: PendingFills): number {
    pending.clear();
    pending.first = choices.length;
    pending.memo = undefined;
    if (tlbLeft === 0 || choices.length === 0) return 0;
    const m = this.m;
    const cpus = m.cpus;
    // The parent's probes when they still hold (the state is one choice away from it), else probes made here.
    const inherited = parent?.memo;
    let memo: ProbeMemo;
    if (inherited !== undefined && this.memoHolds(inherited)) memo = inherited;
    else {
      const n = this.collectPages();
      this.probeAll(n);
      memo = this.noteMemo(pending, n);
    }
    pending.memo = memo;
    const n = memo.pages;
    const union = memo.union;
    const holdsOf = memo.holds;
    const probes = memo.probes;
    if (pending.controls.length !== 3 * cpus.length) pending.controls = new Float64Array(3 * cpus.length);
    const later = this.pending;
    if (later.length !== 0) later.length = 0;
    let leftOut = 0;
    for (let id = 0; id < cpus.length; id++) {
      const cpu = cpus[id]!;
      const r = cpu.regs;
      pending.controls[3 * id] = r.cr3;
      pending.controls[3 * id + 1] = r.cr4;
      pending.controls[3 * id + 2] = r.efer;
      if (!cpu.started) continue;
      const group = this.groupOf(id);
      // Evictions of the pages it holds, then fills of the pages others hold.
      for (let pass = 0; pass < 2; pass++) {
        for (let u = 0; u < n; u++) {
          const held = (holdsOf[u]! & (1 << id)) !== 0;
          if (held !== (pass === 0)) continue;
          const va = union[u]!;
          const p = probes[group * n + u]!;
          if (pass === 0) {
            const c = this.choice(this.evictions, id, 'evict', va);
            if (p.effect !== MAKES || !this.current(cpu, va, p)) choices.push(c);
            else {
              later.push(c);
              pending.add(id, id, va, p);
            }
            continue;
          }
          const c = this.choice(this.fills, id, 'fill', va);
          if (p.effect === FAILS) leftOut++;
          else if (p.effect === WRITES || tlbLeft > 1) choices.push(c);
          else {
            later.push(c);
            pending.add(id, -1, va, p);
          }
        }
      }
    }
    pending.first = choices.length;
    for (const c of later) choices.push(c);
    return leftOut;
  }

  /** Stores the probes just made at this state, and what they depend on, into `pending`'s own memo. */
  private noteMemo(pending: PendingFills, n: number): ProbeMemo {
    const cpus = this.m.cpus;
    pending.ownMemo ??= new ProbeMemo();
    const memo = pending.ownMemo;
    memo.store(n, this.union, this.holds, this.memo, cpus.length);
    if (memo.controls.length !== 3 * cpus.length) memo.controls = new Float64Array(3 * cpus.length);
    for (let id = 0; id < cpus.length; id++) {
      const r = cpus[id]!.regs;
      memo.snapshots[id] = this.state.tlbSnapshot(id);
      memo.controls[3 * id] = r.cr3;
      memo.controls[3 * id + 1] = r.cr4;
      memo.controls[3 * id + 2] = r.efer;
      if (this.groupOf(id) !== id) continue;
      for (let u = 0; u < n; u++) {
        const p = this.memo[id * n + u]!;
        for (let k = 0; k < p.tableCount; k++) memo.noteTable(p.tables[k]!);
      }
    }
    memo.mark = this.state.memory.length;
    return memo;
  }

  /**
   * Whether `memo` (an ancestor's on the current path: the undo log holds every write since it) holds at this
   * state: the same TLB snapshots (so the same pages) and paging controls, no write to a table frame its walks read,
   * and every entry's frame of the same generation.
   */
  private memoHolds(memo: ProbeMemo): boolean {
    const cpus = this.m.cpus;
    const memory = this.state.memory;
    // A long way since the memo was made: scanning the log would cost what probing does.
    if (memory.length - memo.mark > 256) return false;
    const c = memo.controls;
    for (let id = 0; id < cpus.length; id++) {
      const r = cpus[id]!.regs;
      if (memo.snapshots[id] !== this.state.tlbSnapshot(id)) return false;
      if (c[3 * id] !== r.cr3 || c[3 * id + 1] !== r.cr4 || c[3 * id + 2] !== r.efer) return false;
    }
    if (memory.wroteIn(memo.mark, memo.tables, memo.tableCount)) return false;
    const g = this.m.memory.guard;
    if (g === undefined) return true;
    const n = memo.pages;
    for (let id = 0; id < cpus.length; id++) {
      if (this.groupOf(id) !== id) continue;
      for (let u = 0; u < n; u++) {
        const p = memo.probes[id * n + u]!;
        if (p.effect !== MAKES || p.pageSize !== PAGE) continue;
        if (frameGeneration(g, p.pageBase) !== p.generation) return false;
      }
    }
    return true;
  }

  /** The pages the CPUs hold into `union` (ascending) and `holds` (a bit per CPU); returns how many. */
  private collectPages(): number {
    const cpus = this.m.cpus;
    let n = 0;
    for (let id = 0; id < cpus.length; id++) {
      const pages = pagesOf(this.state.tlbSnapshot(id));
      for (let i = 0; i < pages.length; i++) {
        const va = pages[i]!;
        let u = 0;
        while (u < n && this.union[u]! < va) u++;
        if (u < n && this.union[u] === va) {
          this.holds[u] = (this.holds[u]! | (1 << id)) >>> 0;
          continue;
        }
        if (n === this.union.length) {
          const union = new Float64Array(2 * n);
          union.set(this.union);
          this.union = union;
          const holds = new Uint32Array(2 * n);
          holds.set(this.holds);
          this.holds = holds;
        }
        this.union.copyWithin(u + 1, u, n);
        this.holds.copyWithin(u + 1, u, n);
        this.union[u] = va;
        this.holds[u] = (1 << id) >>> 0;
        n++;
      }
    }
    return n;
  }

  /** The first CPU whose paging controls (CR3, CR4, EFER) are CPU `id`'s: CPUs that share them share probes. */
  private groupOf(id: number): number {
    const cpus = this.m.cpus;
    const r = cpus[id]!.regs;
    for (let g = 0; g < id; g++) {
      const o = cpus[g]!.regs;
      if (o.cr3 === r.cr3 && o.cr4 === r.cr4 && o.efer === r.efer) return g;
    }
    return id;
  }

  /** Probes each page of the union for each group of CPUs (see groupOf) into `memo`. */
  private probeAll(n: number): void {
    const cpus = this.m.cpus;
    const need = cpus.length * n;
    while (this.memo.length < need) this.memo.push(new Probe());
    for (let id = 0; id < cpus.length; id++) {
      if (this.groupOf(id) !== id) continue;
      for (let u = 0; u < n; u++) this.probeFill(cpus[id]!, this.union[u]!, this.memo[id * n + u]!);
    }
  }

  /**
   * After a choice other than a TLB event from the state `pending` belongs to (`stepped`: the CPU that stepped, or
   * -1; `mark`: the undo log's length at that state, or -1 when unknown): the pending events whose entry it
   * changed. A choice that wrote no word in the tables the pending walks read, changed no paging control of the
   * CPU it concerns and no frame's generation, changed none: only then is nothing probed again.
   */
  afterChoice(pending: PendingFills, stepped: number, mark: number): void {
    const m = this.m;
    const p = this.probe;
    const wrote =
      mark < 0 || pending.tableCount < 0 || this.state.memory.wroteIn(mark, pending.tables, pending.tableCount);
    let controlsChanged = false;
    if (stepped >= 0) {
      const r = m.cpus[stepped]!.regs;
      const c = pending.controls;
      controlsChanged = c[3 * stepped] !== r.cr3 || c[3 * stepped + 1] !== r.cr4 || c[3 * stepped + 2] !== r.efer;
    }
    const g = m.memory.guard;
    for (let k = 0; k < pending.count; k++) {
      if (pending.changed[k] !== 0) continue;
      const by = pending.by[k]!;
      if (by >= 0 && by !== stepped) continue;
      const id = pending.cpu[k]!;
      if (wrote || (controlsChanged && stepped === id)) {
        this.probeFill(m.cpus[id]!, pending.va[k]!, p);
        if (
          p.effect !== MAKES ||
          p.pageBase !== pending.pageBase[k] ||
          p.pageSize !== pending.pageSize[k] ||
          p.flags !== pending.flags[k] ||
          p.generation !== pending.generation[k]
        ) {
          pending.changed[k] = 1;
        }
      } else if (g !== undefined && pending.pageSize[k] === PAGE) {
        if (frameGeneration(g, pending.pageBase[k]!) !== pending.generation[k]) pending.changed[k] = 1;
      }
    }
  }

  /** Whether CPU `cpu`'s 4 KiB entry for `va` is exactly what probe `p` makes (page, flags, generation). */
  private current(cpu: Cpu, va: number, p: Probe): boolean {
    if (p.pageSize !== PAGE) return false;
    const tlb = cpu.tlb;
    const slot = tlb.probe(va);
    if (slot < 0) return false;
    // An eviction drops every entry for the page (Tlb.invalidatePage), a large one covering it too: with one, the
    // eviction does more than the argument covers, so it stays.
    if (tlb.largeEntryCount !== 0) {
      const s = tlb.storage;
      for (let j = 0; j < s.largeBase.length; j++) {
        const base = s.largeBase[j]!;
        if (base >= 0 && va >= base && va < base + s.largeSize[j]!) return false;
      }
    }
    if (tlb.smallFrame(slot) !== p.pageBase || tlb.smallFlags(slot) !== p.flags) return false;
    const generations = cpu.port.slotGenerations;
    const known = slot < generations.length ? generations[slot]! : 0;
    return known === p.generation;
  }

  /**
   * What a speculative fill of `va` by `cpu` would do now, without doing it, into `p`: the read walk of
   * walkPageTables (walker.ts), the same checks in the same order, reading memory only. MAKES leaves the entry in
   * `p` as Tlb.fill and MemoryPort.noteGeneration would record it.
   */
  private probeFill(cpu: Cpu, va: number, p: Probe): void {
    const memory = this.m.memory;
    const regs = cpu.regs;
    const nxe = (regs.efer & EFER.NXE) !== 0;
    const reservedHi = PTE_HI_RESERVED | (nxe ? 0 : NX);
    let table = Math.floor(regs.cr3 / PAGE) * PAGE;
    let writable = true;
    let user = true;
    let noExecute = false;
    let writes = false;
    let lo = 0;
    let hi = 0;
    let level = 4;
    p.tableCount = 0;
    p.effect = FAILS;
    for (; level >= 1; level--) {
      p.tables[p.tableCount++] = table / PAGE;
      const entry = table + ((va / LEVEL_DIVISOR[level]!) & 511) * 8;
      lo = memory.read32(entry);
      hi = memory.read32(entry + 4);
      if ((lo & P) === 0) {
        p.effect = writes ? WRITES : FAILS;
        return;
      }
      const leaf = level === 1 || ((lo & PS) !== 0 && level <= 3);
      let reserved = (hi & reservedHi) !== 0;
      if (level === 4 && (lo & PS) !== 0) reserved = true;
      if (leaf && level === 2 && (lo & LARGE_2M_RESERVED_LO) !== 0) reserved = true;
      if (leaf && level === 3 && (lo & LARGE_1G_RESERVED_LO) !== 0) reserved = true;
      if (reserved) {
        p.effect = writes ? WRITES : FAILS;
        return;
      }
      writable &&= (lo & RW) !== 0;
      user &&= (lo & US) !== 0;
      noExecute ||= (hi & NX) !== 0 && nxe;
      if (leaf) break;
      if ((lo & A) === 0) writes = true;
      table = entryFrame(lo, hi);
    }
    if ((lo & A) === 0 || writes) {
      p.effect = WRITES;
      return;
    }
    const pageSize = PAGE_SIZE_AT_LEVEL[level]!;
    p.effect = MAKES;
    p.pageSize = pageSize;
    p.pageBase = Math.floor(entryFrame(lo, hi) / pageSize) * pageSize;
    const global = (lo & G) !== 0 && (regs.cr4 & CR4.PGE) !== 0;
    p.flags =
      (writable ? TLB_FLAG.WRITABLE : 0) |
      (user ? TLB_FLAG.USER : 0) |
      (noExecute ? TLB_FLAG.NO_EXECUTE : 0) |
      ((lo & D) !== 0 ? TLB_FLAG.DIRTY : 0) |
      (global ? TLB_FLAG.GLOBAL : 0);
    const g = memory.guard;
    let generation = 0;
    if (g !== undefined && pageSize === PAGE) {
      generation = frameGeneration(g, p.pageBase);
    }
    p.generation = generation;
  }
}
