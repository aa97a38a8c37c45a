import type { Cpu } from '../cpu/cpu.ts';
import { IpiBus } from '../cpu/ipi-bus.ts';
import type { Kernel } from '../mm/kernel.ts';
import { Tlb, type TlbConfig } from '../mmu/tlb.ts';
import { Hasher } from './hash.ts';
import type { ValueHasher } from './value-hash.ts';

// Snapshots of the parts of a machine state that checkpoints share until they change (machine-state.ts): a TLB,
// the IPIs in flight, the kernel's bookkeeping. Each comes with its hash lanes. TLB snapshots are kept by
// contents (a TLB goes through few contents, and a copy costs an allocation); a kernel snapshot remembers what each
// atomic instruction made of it (the same instruction object: program outcomes are cached).

/** A TLB as it was at a checkpoint, with the frame generations of its slots. */
export interface TlbSnapshot {
  readonly tlb: Tlb;
  readonly generations: Float64Array;
  readonly hashA: number;
  readonly hashB: number;
  /** The 4 KiB pages it holds, ascending (computed once, by the TLB-event reduction: tlb-event-reduction.ts). */
  pages?: Float64Array;
}

export interface KernelSnapshot {
  /**
   * A copy of the kernel. Its zone shares its arrays with the live one until the live one changes (which replaces
   * them: see BuddyAllocator.unshare), so the live zone's `owner` being this one's means an unchanged zone.
   */
  readonly kernel: Kernel;
  readonly zoneA: number;
  readonly zoneB: number;
  readonly hashA: number;
  readonly hashB: number;
  /** What an atomic instruction (the same object: outcomes are cached) made of this state, once seen. */
  after: Map<object, KernelSnapshot> | undefined;
}

export interface IpiSnapshot {
  readonly bus: IpiBus;
  readonly sent: number;
  readonly length: number;
  readonly hashA: number;
  readonly hashB: number;
}

/** Snapshots remembered at most (TLBs by contents, kernels after atomic steps): beyond, new ones are made. */
const MEMO_LIMIT = 1 << 16;

function hashString(h: Hasher, s: string): void {
  h.add(s.length);
  for (let i = 0; i < s.length; i++) h.add(s.charCodeAt(i));
}

export class Snapshots {
  private readonly hasher = new Hasher();
  private readonly tlbs = new Map<number, TlbSnapshot>();
  private kernels = 0;
  private readonly kernelWords: number[] = [];

  constructor(
    private readonly tlbConfig: TlbConfig,
    private readonly values: ValueHasher,
  ) {}

  /** A snapshot of CPU `cpu`'s TLB: one taken before of the same contents, else a new one. */
  tlb(cpu: Cpu): TlbSnapshot {
    const generations = cpu.port.slotGenerations;
    const s = cpu.tlb.storage;
    const h = this.hasher.reset(0x3956c25b, cpu.id);
    for (let i = 0; i < s.tag.length; i++) {
      const tag = s.tag[i]!;
      if (tag < 0) continue;
      h.add(i).add(tag).add(s.frame[i]!).add(s.flags[i]!);
      h.add(i < generations.length ? generations[i]! : 0);
    }
    for (let set = 0; set < s.nextVictim.length; set++) h.add(s.nextVictim[set]!);
    if (cpu.tlb.largeEntryCount !== 0) {
      for (let j = 0; j < s.largeBase.length; j++) {
        if (s.largeBase[j]! < 0) continue;
        h.add(j).add(s.largeBase[j]!).add(s.largeSize[j]!).add(s.largeFrame[j]!).add(s.largeFlags[j]!);
      }
    }
    h.add(cpu.tlb.largeReplacement);
    const key = (h.a >>> 0) * 2 ** 21 + (h.b >>> 11);
    const known = this.tlbs.get(key);
    if (known !== undefined && known.hashB === h.b) return known;
    const tlb = new Tlb(this.tlbConfig);
    tlb.copyFrom(cpu.tlb);
    const snapshot = { tlb, generations: generations.slice(), hashA: h.a, hashB: h.b };
    if (this.tlbs.size < MEMO_LIMIT) this.tlbs.set(key, snapshot);
    return snapshot;
  }

  /** A snapshot of the IPIs in flight on `live`. */
  ipi(live: IpiBus): IpiSnapshot {
    const bus = new IpiBus([], live.mode);
    bus.copyFrom(live);
    const h = this.hasher.reset(0x59f111f1, live.inFlight.length);
    for (const ipi of live.inFlight) {
      h.add(ipi.from)
        .add(ipi.to)
        .add(ipi.vector)
        .add(ipi.nmi ? 1 : 0);
    }
    return { bus, sent: live.sentCount, length: live.inFlight.length, hashA: h.a, hashB: h.b };
  }

  /** The kernel after atomic instruction `ins` ran on the bookkeeping `before` held: remembered, or taken now. */
  kernelAfter(kernel: Kernel, before: KernelSnapshot, ins: object): KernelSnapshot {
    let after = before.after?.get(ins);
    if (after === undefined) {
      after = this.kernel(kernel, before);
      if (this.kernels < MEMO_LIMIT) {
        before.after ??= new Map();
        before.after.set(ins, after);
        this.kernels++;
      }
    }
    return after;
  }

  /** A snapshot of the kernel as it is; `previous` when nothing in it changed since that was taken. */
  kernel(kernel: Kernel, previous: KernelSnapshot | undefined): KernelSnapshot {
    const zoneChanged = previous === undefined || kernel.zone.owner !== previous.kernel.zone.owner;
    let zoneA = previous?.zoneA ?? 0;
    let zoneB = previous?.zoneB ?? 0;
    if (zoneChanged) {
      const h = this.hasher.reset(0x923f82a4, kernel.zone.freePages);
      for (const array of kernel.zone.stateArrays()) {
        h.add(array.length);
        const words =
          array.byteLength % 4 === 0
            ? new Int32Array(array.buffer, array.byteOffset, array.byteLength / 4)
            : new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
        for (let i = 0; i < words.length; i++) h.add(words[i]!);
      }
      zoneA = h.a;
      zoneB = h.b;
    }
    const h = this.hasher.reset(zoneA, zoneB);
    for (const area of kernel.vmap.list) {
      h.add(area.start)
        .add(area.size)
        .add(area.huge ? 1 : 0)
        .add(area.blocks.length);
      for (const b of area.blocks) h.add(b.va).add(b.pfn).add(b.order);
      // The frame of each page, and the lazy-purge marks: bookkeeping that decides what vfree, the purge and a
      // migration do. Left out, a step that set only these kept the snapshot before it (equal hashes), and going
      // back to that state lost them (the contract check caught it on data-migration).
      h.add(area.pages.length).add((area.lazy ? 1 : 0) | (area.purging ? 2 : 0));
      for (const pfn of area.pages) h.add(pfn);
    }
    h.add(kernel.current.length);
    for (const name of kernel.current) hashString(h, name ?? '');
    h.add(kernel.log.length);
    for (const line of kernel.log) hashString(h, line);
    h.add(kernel.callFunctions.length);
    for (const fn of kernel.callFunctions) h.add(this.values.functionHash(fn));
    const words = this.kernelWords;
    words.length = 0;
    kernel.stateWords(words);
    h.add(words.length);
    for (const w of words) h.add(w);
    h.add(kernel.timing ? 1 : 0);
    if (!zoneChanged && previous && previous.hashA === h.a && previous.hashB === h.b) return previous;
    return { kernel: kernel.clone(), zoneA, zoneB, hashA: h.a, hashB: h.b, after: undefined };
  }
}
