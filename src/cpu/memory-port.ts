import { canonicalHighHalf, fromCanonicalHalves, NON_CANONICAL, offsetAddress, PAGE_SIZE } from '../mmu/address.ts';
import type { Footprint } from '../mmu/footprint.ts';
import { frameGeneration, guardViolation, VECTOR_VIOLATION } from '../mmu/frame-guard.ts';
import type { PagingStructureCache, PscLevel } from '../mmu/paging-structure-cache.ts';
import { type PhysicalMemory, readFrame, writeFrame } from '../mmu/physical-memory.ts';
import { TLB_FLAG, type Tlb } from '../mmu/tlb.ts';
import type { TypedArena } from '../mmu/typed-arena.ts';
import {
  ACCESS,
  fillUpperLevels,
  type PagingControls,
  PF_ERROR,
  VECTOR_PF,
  WalkResult,
  walkPageTables,
} from '../mmu/walker.ts';
import { PAGE_CACHE_ENTRIES, PageCache } from './page-cache.ts';
import { CR0, CR4, EFER, type Registers } from './registers.ts';
import { readSplit, writeSplit } from './split-access.ts';
import type { StoreBuffer } from './store-buffer.ts';

// Module-local copies of imported constants: V8 reads an imported binding through a cell with a TDZ check on
// every use, while a local const is folded into the optimised code. This file is on the per-step path.
const { USER: ACCESS_USER, STACK: ACCESS_STACK, WRITE: ACCESS_WRITE, FETCH: ACCESS_FETCH } = ACCESS;
const { USER: TLB_USER, WRITABLE: TLB_WRITABLE, DIRTY: TLB_DIRTY, NO_EXECUTE: TLB_NO_EXECUTE } = TLB_FLAG;
const NON_CANONICAL_MARK = NON_CANONICAL;
// PageCache.index, written out on the fast path (as a call it measured slower on stores).
const PAGE_INDEX_MASK = PAGE_CACHE_ENTRIES - 1;
const readBytes = readFrame;
const writeBytes = writeFrame;
const PAGE = PAGE_SIZE;

/** No slot generations recorded yet (see MemoryPort.slotGeneration). */
const NO_GENERATIONS = new Float64Array(0);

/** TLB flags the fast path requires, indexed by the WRITE|USER access bits. */
const REQUIRED_FLAGS: readonly number[] = (() => {
  const table: number[] = [];
  for (let a = 0; a <= (ACCESS_WRITE | ACCESS_USER); a++) {
    table[a] = (a & ACCESS_USER ? TLB_USER : 0) | (a & ACCESS_WRITE ? TLB_WRITABLE | TLB_DIRTY : 0);
  }
  return table;
})();

/**
 * A CPU's path to memory: TLB first, the page walk on a miss, then physical memory. Loads return unsigned values,
 * so -1 signals a fault, whose record is in `fault` (vector, errorCode, cr2). No allocation per access.
 */
export class MemoryPort {
  /** Fault record of the last failed access (and scratch for walks). */
  readonly fault = new WalkResult();
  /** TLB outcome and physical address of the last translation, for the trace. */
  lastHit = false;
  lastPa = -1;
  /** Paging entries the last walk read (4 for a 4 KiB page, fewer for a large one): the cost model's walk levels. */
  get lastWalkLevels(): number {
    return this.walk.entryCount;
  }
  /** Where accesses are recorded, when the machine records footprints (every path records: see read()/write()). */
  footprint: Footprint | undefined;
  private readonly walk = new WalkResult();
  /**
   * Per 4 KiB TLB slot, with a frame guard: the frame's generation + 1 when this port filled the slot (0: not known,
   * not checked). An entry whose frame was freed since is stale, even if the frame is in use again.
   */
  private slotGeneration: Float64Array = NO_GENERATIONS;
  /** Physical address of the last memory-safety violation (the fault record holds its kind and address). */
  violationPa = -1;
  /** Pages recently reached through TLB hits (see PageCache). */
  private readonly pages: PageCache;
  /**
   * The CPU's store buffer (x86-TSO; machines made with `storeBuffer` entries): stores wait in it and loads see it
   * first. Undefined: memory is sequentially consistent, every store reaches memory as it executes.
   */
  storeBuffer: StoreBuffer | undefined;
  /** The CPU's paging-structure caches, which walks start from and fill (machines made with them). */
  psc: PagingStructureCache | undefined;
  /** Set while a store is being translated for the store buffer: the frame guard judges it when it drains. */
  private buffering = false;
  /** TLB slot of the last translation (-1: none, or uncached). */
  private lastSlot = -1;
  private readonly controls: PagingControls = { cr3: 0, wp: true, nxe: true };

  constructor(
    readonly memory: PhysicalMemory,
    readonly tlb: Tlb,
    private readonly regs: Registers,
    arena?: TypedArena,
  ) {
    this.pages = new PageCache(arena);
    const drop = (): void => this.pages.clear();
    tlb.onChange(drop);
    memory.onFramesChange(drop);
  }

  /**
   * Internal (the stateful checker saves and restores it with the TLB): the frame generation + 1 per 4 KiB slot
   * (see slotGeneration); empty until the first fill under a guard.
   */
  get slotGenerations(): Float64Array {
    return this.slotGeneration;
  }

  /** Internal: the per-slot generations become `from`'s (an empty array: none recorded). */
  setSlotGenerations(from: Float64Array): void {
    if (from.length === 0) {
      if (this.slotGeneration !== NO_GENERATIONS) this.slotGeneration.fill(0);
      return;
    }
    if (this.slotGeneration === NO_GENERATIONS) this.slotGeneration = new Float64Array(this.tlb.capacity);
    this.slotGeneration.set(from);
  }

  /** Forgets the pages cached for TLB hits (footprints start again: every access must reach them). */
  dropPages(): void {
    this.pages.clear();
  }

  /** As made: nothing cached, no last access (a machine reset). */
  reset(): void {
    this.pages.clear();
    if (this.slotGeneration !== NO_GENERATIONS) this.slotGeneration.fill(0);
    this.violationPa = -1;
    this.lastHit = false;
    this.lastPa = -1;
  }

  private syncControls(): PagingControls {
    const c = this.controls;
    c.cr3 = this.regs.cr3;
    c.wp = (this.regs.cr0 & CR0.WP) !== 0;
    c.nxe = (this.regs.efer & EFER.NXE) !== 0;
    return c;
  }

  /** Fills the fault record for a #PF detected on a TLB hit (no walk happened). */
  private protectionFault(va: number, access: number): number {
    const f = this.fault;
    f.ok = false;
    f.vector = VECTOR_PF;
    // I/D reports an instruction fetch when EFER.NXE is set (SDM §4.7).
    const fetch = (access & ACCESS_FETCH) !== 0 && (this.regs.efer & EFER.NXE) !== 0;
    f.errorCode = PF_ERROR.P | (access & (ACCESS_WRITE | ACCESS_USER)) | (fetch ? PF_ERROR.I : 0);
    f.cr2 = va;
    this.invalidateOnFault(va);
    return -1;
  }

  // SDM §4.10.4.1: a #PF invalidates the TLB entries for the faulting linear address.
  private invalidateOnFault(va: number): void {
    if (this.tlb.invalidatePage(va) !== 0 && this.footprint)
      this.footprint.tlbInvalidationList.push(Math.floor(va / PAGE));
    // ...and the paging-structure-cache entries that would be used to translate it.
    if (this.psc !== undefined) this.psc.invalidateAddress(va);
  }

  /** Walks and fills the TLB; returns the slot, -1 with the fault record set, or -2 when the page is not cached. */
  private walkAndFill(va: number, access: number): number {
    const w = walkPageTables(this.memory, this.syncControls(), va, access, this.walk, this.footprint, this.psc);
    if (!w.ok) {
      const f = this.fault;
      f.ok = false;
      f.vector = w.vector;
      f.errorCode = w.errorCode;
      f.cr2 = w.cr2;
      if (w.vector === VECTOR_PF) this.invalidateOnFault(va);
      else if (w.vector === VECTOR_VIOLATION) this.violationPa = w.pa; // a walk into a freed page-table frame
      return -1;
    }
    const slot = this.tlb.fill(va, w, w.global && (this.regs.cr4 & CR4.PGE) !== 0);
    if (slot < 0) return -2; // a large page with no large-page entries configured: used uncached
    if (this.footprint) this.footprint.tlbFillList.push(Math.floor(va / PAGE));
    this.noteGeneration(slot, w.pageBase);
    return slot;
  }

  /** Records, for a 4 KiB slot just filled, the generation of the frame it maps (with a frame guard). */
  private noteGeneration(slot: number, pageBase: number): void {
    const g = this.memory.guard;
    if (g === undefined || slot >= this.tlb.capacity) return;
    // Made on the first fill under a guard: machines without a kernel (and instances never stepped) need none.
    if (this.slotGeneration === NO_GENERATIONS) this.slotGeneration = new Float64Array(this.tlb.capacity);
    this.slotGeneration[slot] = frameGeneration(g, pageBase);
  }

  /**
   * The access at `pa` (through TLB `slot`, or -1) against the frame guard: a free frame is a use after free, so is
   * a frame freed since the TLB entry was made; a write to a frame a migration copied away is lost. False with the
   * fault record set to the violation (the CPU stops; nothing is delivered).
   */
  private guarded(pa: number, va: number, access: number, slot: number): boolean {
    // A store into the store buffer is judged when it reaches memory (drainOldest).
    if (this.buffering) return true;
    const known = slot >= 0 && slot < this.slotGeneration.length ? this.slotGeneration[slot]! : 0;
    const kind = guardViolation(this.memory.guard!, pa, (access & ACCESS_WRITE) !== 0, known);
    return kind === 0 || this.violation(pa, va, kind);
  }

  /** Sets the fault record to violation `kind` at `pa` (for `va`); returns false. */
  private violation(pa: number, va: number, kind: number): false {
    // The refused access still depends on the frame's state: the footprint says so (the checker orders it).
    if (this.footprint) this.footprint.readList.push2(pa, 1);
    const f = this.fault;
    f.ok = false;
    f.vector = VECTOR_VIOLATION;
    f.errorCode = kind;
    f.cr2 = va;
    this.violationPa = pa;
    return false;
  }

  private uncached(va: number, access: number): number {
    this.lastPa = this.walk.pa;
    this.lastSlot = -1;
    if (this.memory.guard !== undefined && !this.guarded(this.lastPa, va, access, -1)) return -1;
    return this.lastPa;
  }

  /**
   * A speculative fill, as hardware may do at any time: a read walk that caches the translation if it is present
   * (setting A bits like any walk) and otherwise changes nothing. Returns whether a translation was cached.
   */
  fillSpeculatively(va: number): boolean {
    if (!(va >= 0 && va < NON_CANONICAL_MARK)) return false;
    const w = walkPageTables(this.memory, this.syncControls(), va, 0, this.walk, this.footprint, this.psc);
    if (!w.ok) return false;
    const slot = this.tlb.fill(va, w, w.global && (this.regs.cr4 & CR4.PGE) !== 0);
    if (slot >= 0) this.noteGeneration(slot, w.pageBase);
    return slot >= 0;
  }

  /**
   * A speculative walk of the upper levels for `va` that caches the paging-structure entries down to `level`
   * (fillUpperLevels), as hardware may at any time (the checker's `fill-pde:N:va` events). Returns whether the
   * `level` entry was cached (false: no such cache, cached already, or no present non-leaf entry there).
   */
  fillPagingStructures(va: number, level: PscLevel): boolean {
    if (this.psc === undefined || !(va >= 0 && va < NON_CANONICAL_MARK)) return false;
    return fillUpperLevels(this.memory, this.syncControls(), va, level, this.psc, this.footprint);
  }

  /** Physical address for `va` (ACCESS bits), or -1 with `fault` set. */
  translate(va: number, access: number): number {
    // Instruction addresses are integers (the Assembler checks); RSP is only ever written with integers.
    if (!(va >= 0 && va < NON_CANONICAL_MARK)) {
      walkPageTables(this.memory, this.syncControls(), va, access, this.fault);
      return -1;
    }
    let slot = this.tlb.lookup(va);
    this.lastHit = slot >= 0;
    if (slot < 0) {
      slot = this.walkAndFill(va, access);
      if (slot === -2) return this.uncached(va, access);
      if (slot < 0) return -1;
    } else {
      const flags = this.tlb.flagsOf(slot);
      const user = (access & ACCESS_USER) !== 0;
      const write = (access & ACCESS_WRITE) !== 0;
      // Permissions are checked against the cached entry; a stale, stricter entry gives a spurious #PF (§4.10.4.3).
      if (user && (flags & TLB_USER) === 0) return this.protectionFault(va, access);
      if (write && (flags & TLB_WRITABLE) === 0 && (user || (this.regs.cr0 & CR0.WP) !== 0)) {
        return this.protectionFault(va, access);
      }
      // A fetch (ACCESS.FETCH: the conformance suite's, not an instruction's) through an entry cached with XD.
      if ((access & ACCESS_FETCH) !== 0 && (flags & TLB_NO_EXECUTE) !== 0) return this.protectionFault(va, access);
      // A write through an entry cached with D=0 walks again to set D in memory (§4.8).
      if (write && (flags & TLB_DIRTY) === 0) {
        slot = this.walkAndFill(va, access);
        if (slot === -2) return this.uncached(va, access);
        if (slot < 0) return -1;
      }
    }
    const pa = this.tlb.physical(slot, va);
    this.lastPa = pa;
    this.lastSlot = slot;
    if (this.memory.guard !== undefined && !this.guarded(pa, va, access, slot)) return -1;
    return pa;
  }

  /**
   * The TLB-hit fast path, small enough to inline: an access within one page through a 4 KiB entry whose cached
   * rights allow it outright (a write also needs D=1). Returns the physical address, or -1 to take translate(),
   * which handles everything else and counts its own hit or miss.
   */
  private hit(va: number, size: number, access: number): number {
    if ((va & 0xfff) + size > PAGE || !(va >= 0 && va < NON_CANONICAL_MARK)) return -1;
    const tlb = this.tlb;
    const slot = tlb.probe(va);
    if (slot < 0) return -1;
    const required = REQUIRED_FLAGS[access & (ACCESS_WRITE | ACCESS_USER)]!;
    if ((tlb.smallFlags(slot) & required) !== required) return -1;
    const base = tlb.smallFrame(slot);
    // With a frame guard, an access it refuses takes translate(), which reports it.
    if (this.memory.guard !== undefined && !this.guarded(base, va, access, slot)) return -1;
    tlb.hits++;
    this.lastHit = true;
    this.lastSlot = slot;
    // The next access to this page can skip the TLB probe and the frame lookup (see PageCache); read() and write()
    // record footprints for those accesses too. Not with a store buffer: every access must see it. Not a frame with
    // dead words (the stateful checker's): every read of it must be checked.
    const dead = this.memory.dead;
    if (
      base + PAGE <= this.memory.size &&
      this.storeBuffer === undefined &&
      (dead === undefined || dead.perFrame[base / PAGE] === 0)
    ) {
      const write = (access & ACCESS_WRITE) !== 0;
      const frame = this.memory.frame(base / PAGE, write);
      // While a write watch is armed (a CPU spins), writes go the long way, which tells the watcher.
      const writable = write && !this.memory.watching;
      this.pages.fill(va, base, (tlb.smallFlags(slot) & TLB_USER) !== 0, writable, frame);
    }
    const pa = base + (va & 0xfff);
    this.lastPa = pa;
    return pa;
  }

  /**
   * The value a read of `size` bytes at `va` would return through a 4 KiB TLB hit that needs nothing else (the
   * cached rights allow it, the frame guard objects to nothing, no store is buffered), found without changing
   * anything: no hit counted, no footprint, no dead-word check. -1 when the read would do more than that (walk, fault,
   * forward from the store buffer). For the checker, which asks before a step what it would read (stutter-step.ts).
   */
  quietRead(va: number, size: number, access: number): number {
    if ((va & 0xfff) + size > PAGE || !(va >= 0 && va < NON_CANONICAL_MARK)) return -1;
    const sb = this.storeBuffer;
    if (sb !== undefined && sb.length !== 0) return -1;
    const tlb = this.tlb;
    const slot = tlb.probe(va);
    if (slot < 0) return -1;
    const required = REQUIRED_FLAGS[access & (ACCESS_WRITE | ACCESS_USER)]!;
    if ((tlb.smallFlags(slot) & required) !== required) return -1;
    const pa = tlb.smallFrame(slot) + (va & 0xfff);
    const guard = this.memory.guard;
    if (guard !== undefined) {
      const known = slot < this.slotGeneration.length ? this.slotGeneration[slot]! : 0;
      if (guardViolation(guard, pa, (access & ACCESS_WRITE) !== 0, known) !== 0) return -1;
    }
    return this.memory.peek(pa, size);
  }

  /** Reads `size` bytes at `va`: the value, or -1 on a fault. */
  read(va: number, size: number, access: number): number {
    // The fast path: a page of the PageCache, the access inside it, and U/S allowing it.
    const pages = this.pages;
    const offset = va & 0xfff;
    const i = (va >>> 12) & PAGE_INDEX_MASK;
    if (pages.readTag[i] === va - offset && offset + size <= PAGE && ((access & ACCESS_USER) === 0 || pages.user[i])) {
      this.tlb.hits++;
      this.lastHit = true;
      const pa = pages.base[i]! + offset;
      this.lastPa = pa;
      if (this.footprint !== undefined) this.footprint.readList.push2(pa, size);
      return readBytes(pages.frames[i]!, offset, size);
    }
    return this.readThroughTlb(va, size, access);
  }

  private readThroughTlb(va: number, size: number, access: number): number {
    let pa = this.hit(va, size, access);
    if (pa < 0) {
      if ((va & 0xfff) + size > PAGE) return this.readSplit(va, size, access);
      pa = this.translate(va, access);
      if (pa < 0) return -1;
    }
    if (this.footprint) this.footprint.readList.push2(pa, size);
    const sb = this.storeBuffer;
    if (sb !== undefined && sb.length !== 0) return sb.forward(this.memory, pa, size);
    return this.memory.read(pa, size);
  }

  /**
   * A locked read-modify-write (xchg, cmpxchg) of `size` bytes at `va` within a writable page of the PageCache: reads
   * the old value and writes `value` when `expected` is -1 (xchg) or equals it, as write() would. Returns the old
   * value, or -1 when the page is not cached for writes (lockedExchange then takes translateForWrite()).
   */
  exchangeCached(va: number, size: number, value: number, expected: number, access: number): number {
    const pages = this.pages;
    const offset = va & 0xfff;
    const i = (va >>> 12) & PAGE_INDEX_MASK;
    if (pages.writeTag[i] !== va - offset || offset + size > PAGE || ((access & ACCESS_USER) !== 0 && !pages.user[i])) {
      return -1;
    }
    this.tlb.hits++;
    this.lastHit = true;
    const pa = pages.base[i]! + offset;
    this.lastPa = pa;
    const frame = pages.frames[i]!;
    const old = readBytes(frame, offset, size);
    const footprint = this.footprint;
    if (footprint !== undefined) footprint.readList.push2(pa, size);
    if (expected === -1 || old === expected) {
      if (footprint !== undefined) footprint.writeList.push2(pa, size);
      writeBytes(frame, offset, size, value);
    }
    return old;
  }

  /**
   * The physical address for a write of `size` bytes at `va` (a locked read-modify-write's), or -1 on a fault: a TLB
   * hit that allows it outright goes through hit(), which caches the page for the next; anything else translate().
   */
  translateForWrite(va: number, size: number, access: number): number {
    const pa = this.hit(va, size, access | ACCESS_WRITE);
    return pa >= 0 ? pa : this.translate(va, access | ACCESS_WRITE);
  }

  /** Writes `size` bytes at `va`; false on a fault (nothing written). */
  write(va: number, size: number, value: number, access: number): boolean {
    // As read(). No entry allows writes while a write watch is armed (see hit()), so a spinning CPU hears of them.
    const pages = this.pages;
    const offset = va & 0xfff;
    const i = (va >>> 12) & PAGE_INDEX_MASK;
    if (pages.writeTag[i] === va - offset && offset + size <= PAGE && ((access & ACCESS_USER) === 0 || pages.user[i])) {
      this.tlb.hits++;
      this.lastHit = true;
      const pa = pages.base[i]! + offset;
      this.lastPa = pa;
      if (this.footprint !== undefined) this.footprint.writeList.push2(pa, size);
      writeBytes(pages.frames[i]!, offset, size, value);
      return true;
    }
    return this.writeThroughTlb(va, size, value, access);
  }

  private writeThroughTlb(va: number, size: number, value: number, access: number): boolean {
    if (this.storeBuffer !== undefined) return this.bufferStore(va, size, value, access);
    let pa = this.hit(va, size, access | ACCESS_WRITE);
    if (pa < 0) {
      if ((va & 0xfff) + size > PAGE) return this.writeSplit(va, size, value, access);
      pa = this.translate(va, access | ACCESS_WRITE);
      if (pa < 0) return false;
    }
    if (this.footprint) this.footprint.writeList.push2(pa, size);
    this.memory.write(pa, size, value);
    return true;
  }

  /**
   * A store under x86-TSO: translated and checked for faults now (a #PF is precise), then put in the store buffer
   * (the oldest drains first when it is full, as the CPU stalls until an entry leaves). A store that crosses a page
   * is buffered byte by byte. Nothing reaches memory here, so the step's footprint writes nothing.
   */
  private bufferStore(va: number, size: number, value: number, access: number): boolean {
    const split = (va & 0xfff) + size > PAGE;
    const count = split ? size : 1;
    const pas = this.splitScratch;
    this.buffering = true;
    try {
      for (let i = 0; i < count; i++) {
        const at = split ? this.byteAddress(va, i) : va;
        let pa = split ? -1 : this.hit(at, size, access | ACCESS_WRITE);
        if (pa < 0) pa = this.translate(at, access | ACCESS_WRITE);
        if (pa < 0) return false;
        pas[i] = pa;
        this.slots[i] = this.lastSlot;
      }
    } finally {
      this.buffering = false;
    }
    let v = value;
    for (let i = 0; i < count; i++) {
      if (!this.makeRoom()) return false;
      const bytes = split ? 1 : size;
      this.storeBuffer!.push(
        split ? this.byteAddress(va, i) : va,
        pas[i]!,
        bytes,
        split ? v % 256 : value,
        this.generationOf(pas[i]!, this.slots[i]!),
      );
      v = Math.floor(v / 256);
    }
    return true;
  }

  private readonly splitScratch = new Float64Array(8);
  private readonly slots = new Int32Array(8);

  /** A full store buffer drains its oldest entry first; false when that store was refused (the CPU stops). */
  private makeRoom(): boolean {
    const sb = this.storeBuffer!;
    return sb.length < sb.capacity || this.drainOldest();
  }

  /** The frame guard's generation + 1 of the frame at `pa`, as TLB `slot` recorded it or as it is now (0: none). */
  private generationOf(pa: number, slot: number): number {
    const g = this.memory.guard;
    if (g === undefined) return 0;
    const known = slot >= 0 && slot < this.slotGeneration.length ? this.slotGeneration[slot]! : 0;
    return known !== 0 ? known : frameGeneration(g, pa);
  }

  /**
   * The oldest buffered store reaches memory (a watcher on its bytes wakes). The frame guard judges it now, as it
   * becomes visible (SDM Vol. 3 §8.2.2), not when it was translated: into a frame freed or copied away since, it is a
   * violation; then this returns false with the fault record set, and drops the store.
   */
  drainOldest(): boolean {
    const sb = this.storeBuffer!;
    const pa = sb.oldestPa;
    const g = this.memory.guard;
    const kind = g === undefined ? 0 : guardViolation(g, pa, true, sb.oldestGeneration);
    if (kind !== 0) {
      const va = sb.oldestVa;
      sb.dropOldest();
      return this.violation(pa, va, kind);
    }
    if (this.footprint) this.footprint.writeList.push2(pa, sb.oldestSize);
    sb.writeOldest(this.memory);
    return true;
  }

  /** Every buffered store reaches memory, oldest first (MFENCE, a locked or serializing instruction, an event). */
  drainAll(): boolean {
    const sb = this.storeBuffer;
    if (sb === undefined) return true;
    while (sb.length !== 0) if (!this.drainOldest()) return false;
    return true;
  }

  /** Reads a 64-bit canonical address (a pushed return address or frame RSP) into model form; -1 on a fault. */
  readAddress(va: number, access: number): number {
    const lo = this.read(va, 4, access);
    if (lo < 0) return -1;
    const hi = this.read(va + 4, 4, access);
    if (hi < 0) return -1;
    return fromCanonicalHalves(lo, hi);
  }

  /**
   * Physical addresses of the 8-byte slots [va, va+8*count) for a frame push (a supervisor write, or a user one for
   * a handler whose code segment has DPL 3), or false on a fault.
   */
  translateStackWrite(va: number, count: number, out: Float64Array, user = false): boolean {
    const access = ACCESS_WRITE | ACCESS_STACK | (user ? ACCESS_USER : 0);
    // Frame pushes go from the highest slot down, so the fault (and CR2) is the first slot that cannot be written.
    for (let k = count - 1; k >= 0; k--) {
      const pa = this.translate(offsetAddress(va, 8 * k), access);
      if (pa < 0) return false;
      out[k] = pa;
    }
    return true;
  }

  /**
   * A `call`'s return address under x86-TSO: a store like any other, buffered (`pa` translated from `va` already).
   * False when making room refused the oldest store (the CPU stops).
   */
  bufferAddressAt(va: number, pa: number, address: number): boolean {
    if (!this.makeRoom()) return false;
    this.storeBuffer!.pushHalves(
      va,
      pa,
      8,
      address >>> 0,
      canonicalHighHalf(address),
      this.generationOf(pa, this.lastSlot),
    );
    return true;
  }

  /** Writes a canonical 64-bit address image at a translated physical address. */
  writeAddressAt(pa: number, va: number): void {
    if (this.footprint) this.footprint.writeList.push2(pa, 8);
    this.memory.write32(pa, va >>> 0);
    this.memory.write32(pa + 4, canonicalHighHalf(va));
  }

  writeAt(pa: number, value: number): void {
    if (this.footprint) this.footprint.writeList.push2(pa, 8);
    this.memory.write64(pa, value);
  }

  /** Address of byte `i` of an access at `va`: crossing from the lower half into bit 47 is non-canonical. */
  private byteAddress(va: number, i: number): number {
    return offsetAddress(va, i);
  }

  // A page-crossing access, byte by byte (split-access.ts): cold.
  private readSplit(va: number, size: number, access: number): number {
    return readSplit(this, va, size, access);
  }

  private writeSplit(va: number, size: number, value: number, access: number): boolean {
    return writeSplit(this, va, size, value, access);
  }
}
