import type { Footprint } from '../mmu/footprint.ts';
import type { FrameGuard } from '../mmu/frame-guard.ts';
import { type Choice, isTlbEvent } from './choices.ts';

// What a choice touched, as locations read and written: the exhaustive search's dependency relation (DESIGN.md
// "Checking"). Two choices are dependent when one writes a location the other reads or writes. Locations are:
//  - physical memory, in 8-byte words (pa / 8): data accesses, and paging entries read or updated by walks;
//  - a CPU's channel: every step of that CPU, every IPI sent to it, every delivery to it, every TLB or
//    paging-structure-cache event on it and every drain of its store buffer writes it, so a hardware event or an IPI
//    is dependent with the steps of the CPU it affects (a drain writes its store's words as well: that is how it
//    races with the other CPUs' accesses);
//  - a kernel resource kept outside emulated memory (an `atomic` step's lock: allocator, vmap areas);
//  - the TLB-event budget, shared by all TLB and paging-structure-cache events (taking one may leave none for
//    another);
//  - the first stop: every step that stops its CPU writes it, as the first stop of a run is its violation.

export interface Access {
  readonly reads: readonly number[];
  readonly writes: readonly number[];
}

const WORD = 8;
/** Location of CPU c's channel: negative, below every memory word. */
const channel = (cpu: number) => -1 - cpu;
const BUDGET = -1_000;
const STOP = -997;
/**
 * The kernel's frame states (free, copied away, generation), one location per frame: the CPUs check every access
 * to a guarded frame against its state (src/mmu/frame-guard.ts), so such an access reads the frame's location, and
 * an allocation, a free or a copy marked writes the locations of the frames it changed.
 */
const FRAME_STATE_BASE = -(2 ** 40);
const frameState = (pfn: number) => FRAME_STATE_BASE - pfn;
/** Every frame's generation at once: what a TLB fill event reads (see accessOf). */
const GENERATIONS = -998;
/** Resources are numbered in order of first use, below the budget. */
const resourceIds = new Map<string, number>();
function resource(name: string): number {
  let id = resourceIds.get(name);
  if (id === undefined) {
    id = -1_001 - resourceIds.size;
    resourceIds.set(name, id);
  }
  return id;
}

function addRange(out: number[], pa: number, size: number): void {
  const last = Math.floor((pa + Math.max(size, 1) - 1) / WORD);
  for (let w = Math.floor(pa / WORD); w <= last; w++) out.push(w);
}

/** `xs` without repeats, in place (a step touches a handful of locations: a quadratic pass beats a Set). */
function unique(xs: number[]): number[] {
  // Long lists come from copies, whose words are distinct already; repeats would only cost the analysis a little.
  if (xs.length < 2 || xs.length > 32) return xs;
  let n = 0;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    let seen = false;
    for (let j = 0; j < n; j++) {
      if (xs[j] === x) {
        seen = true;
        break;
      }
    }
    if (!seen) xs[n++] = x;
  }
  xs.length = n;
  return xs;
}

/** The state locations of the guarded frames [pa, pa + size) touches. */
function addFrames(out: number[], guard: FrameGuard, pa: number, size: number): void {
  const first = Math.floor(pa / 4096);
  const last = Math.floor((pa + Math.max(size, 1) - 1) / 4096);
  for (let pfn = first; pfn <= last; pfn++) {
    if (pfn >= guard.firstPfn && pfn < guard.firstPfn + guard.frames) out.push(frameState(pfn));
  }
}

/**
 * The locations `choice` touched, from the machine's footprint of it (cleared before it was made); `guard` is the
 * machine's frame guard, when a kernel checks frames; `stops` says the choice stopped its CPU.
 */
export function accessOf(choice: Choice, fp: Footprint, guard: FrameGuard | undefined, stops: boolean): Access {
  const reads: number[] = [];
  const writes: number[] = [channel(choice.cpu)];
  if (isTlbEvent(choice)) writes.push(BUDGET);
  if (stops) writes.push(STOP);
  const r = fp.readList;
  for (let i = 0; i < r.length; i += 2) addRange(reads, r.get(i), r.get(i + 1));
  const w = fp.writeList;
  for (let i = 0; i < w.length; i += 2) addRange(writes, w.get(i), w.get(i + 1));
  for (let i = 0; i < fp.pteReadList.length; i++) reads.push(Math.floor(fp.pteReadList.get(i) / WORD));
  for (let i = 0; i < fp.pteWriteList.length; i++) writes.push(Math.floor(fp.pteWriteList.get(i) / WORD));
  for (let i = 0; i < fp.ipiList.length; i += 2) writes.push(channel(fp.ipiList.get(i)));
  for (const name of fp.resources) writes.push(resource(name));
  if (guard !== undefined) {
    for (let i = 0; i < r.length; i += 2) addFrames(reads, guard, r.get(i), r.get(i + 1));
    for (let i = 0; i < w.length; i += 2) addFrames(reads, guard, w.get(i), w.get(i + 1));
    const changes = guard.changes;
    for (let i = 0; i < changes.length; i += 2) {
      for (let p = 0; p < changes[i + 1]!; p++) writes.push(frameState(changes[i]! + p));
    }
    // A TLB fill event notes the generation of the frame it maps, and a paging-structure-cache fill those of the
    // tables it caches, which their footprints do not name: they are dependent with every change of frame state
    // (such events are few, so this costs little).
    if (changes.length > 0) writes.push(GENERATIONS);
    if (('tlb' in choice && choice.tlb === 'fill') || 'pscFill' in choice) reads.push(GENERATIONS);
  }
  return { reads: unique(reads), writes: unique(writes) };
}

function meets(a: readonly number[], b: readonly number[]): boolean {
  for (const x of a) for (const y of b) if (x === y) return true;
  return false;
}

/** Whether the two choices' order can matter: one writes a location the other touches. */
export function dependent(a: Access, b: Access): boolean {
  return meets(a.writes, b.writes) || meets(a.writes, b.reads) || meets(a.reads, b.writes);
}
