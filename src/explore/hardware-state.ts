import { StoreBuffer } from '../cpu/store-buffer.ts';
import type { Machine } from '../machine/machine.ts';
import { PagingStructureCache } from '../mmu/paging-structure-cache.ts';
import { Hasher } from './hash.ts';

// The part of a machine state that store buffers and paging-structure caches hold (issue 19), for the stateful
// search's fingerprint and checkpoints (machine-state.ts). A buffered store decides what the CPU's loads see and
// what memory will hold; a cached paging-structure entry decides where a walk goes. Both are per CPU and change
// only by that CPU's steps and by the events on it (drains, evictions, fills), so each is hashed again only when
// its version moved, and a checkpoint copies it only when it differs from the copy it holds.

/** Per CPU, in a checkpoint: copies of its store buffer and caches, the stamp of the contents they hold, the hash. */
export class HardwareCheckpoint {
  readonly buffers: (StoreBuffer | undefined)[];
  readonly caches: (PagingStructureCache | undefined)[];
  readonly stamps: Float64Array;
  readonly lanes: Int32Array;

  constructor(m: Machine) {
    this.buffers = m.cpus.map((c) => (c.port.storeBuffer ? new StoreBuffer(c.port.storeBuffer.capacity) : undefined));
    this.caches = m.cpus.map((c) => (c.port.psc ? new PagingStructureCache(c.port.psc.capacity) : undefined));
    this.stamps = new Float64Array(m.cpus.length).fill(-1);
    this.lanes = new Int32Array(2 * m.cpus.length);
  }
}

export class HardwareState {
  /** Whether any CPU has a store buffer or paging-structure caches (else every method is a no-op). */
  readonly present: boolean;
  /** Per CPU: the hash lanes of its buffer and caches (0, 0 with none). */
  readonly lanes: Int32Array;
  /** Per CPU: the buffer's and the caches' versions the lanes were computed at. */
  private readonly bufferVersions: Float64Array;
  private readonly cacheVersions: Float64Array;
  /** Per CPU: a number naming the contents now (new whenever they change), so a checkpoint can tell its copy is current. */
  private readonly stamps: Float64Array;
  private nextStamp = 0;
  private readonly hasher = new Hasher();

  constructor(private readonly m: Machine) {
    const n = m.cpus.length;
    this.present = m.cpus.some((c) => c.port.storeBuffer !== undefined || c.port.psc !== undefined);
    this.lanes = new Int32Array(2 * n);
    this.bufferVersions = new Float64Array(n).fill(-1);
    this.cacheVersions = new Float64Array(n).fill(-1);
    this.stamps = new Float64Array(n);
    this.update();
  }

  /** Brings the hashes up to date with the machine (after any choice). */
  update(): void {
    if (!this.present) return;
    for (const cpu of this.m.cpus) {
      const sb = cpu.port.storeBuffer;
      const psc = cpu.port.psc;
      const id = cpu.id;
      const bv = sb?.version ?? 0;
      const cv = psc?.version ?? 0;
      if (bv === this.bufferVersions[id] && cv === this.cacheVersions[id]) continue;
      this.bufferVersions[id] = bv;
      this.cacheVersions[id] = cv;
      this.stamps[id] = this.nextStamp++;
      const h = this.hasher.reset(0x7a3c55e1, id);
      if (sb !== undefined) {
        h.add(sb.length);
        sb.forEachEntry((pa, size, lo, hi, va, generation) => {
          h.add(pa).add(size).add(lo).add(hi).add(va).add(generation);
        });
      }
      if (psc !== undefined) {
        h.add(psc.size);
        psc.forEachSlot((slot, region, table, flags, generation) => {
          h.add(slot).add(region).add(table).add(flags).add(generation);
        });
      }
      this.lanes[2 * id] = h.finalA;
      this.lanes[2 * id + 1] = h.finalB;
    }
  }

  /** Saves the buffers and caches into `c` (copying only those whose contents `c` does not hold already). */
  save(c: HardwareCheckpoint): void {
    if (!this.present) return;
    for (const cpu of this.m.cpus) {
      const id = cpu.id;
      if (c.stamps[id] === this.stamps[id]) continue;
      c.stamps[id] = this.stamps[id]!;
      if (cpu.port.storeBuffer) c.buffers[id]!.copyFrom(cpu.port.storeBuffer);
      if (cpu.port.psc) c.caches[id]!.copyFrom(cpu.port.psc);
      c.lanes[2 * id] = this.lanes[2 * id]!;
      c.lanes[2 * id + 1] = this.lanes[2 * id + 1]!;
    }
  }

  /** Puts the buffers and caches `c` saved back on the machine. */
  restore(c: HardwareCheckpoint): void {
    if (!this.present) return;
    for (const cpu of this.m.cpus) {
      const id = cpu.id;
      const sb = cpu.port.storeBuffer;
      const psc = cpu.port.psc;
      // Unchanged since `c` was saved (the same stamp, and no change since: the versions are as hashed).
      if (
        c.stamps[id] === this.stamps[id] &&
        (sb?.version ?? 0) === this.bufferVersions[id] &&
        (psc?.version ?? 0) === this.cacheVersions[id]
      ) {
        continue;
      }
      if (sb) sb.copyFrom(c.buffers[id]!);
      if (psc) psc.copyFrom(c.caches[id]!);
      this.stamps[id] = c.stamps[id]!;
      this.bufferVersions[id] = sb?.version ?? 0;
      this.cacheVersions[id] = psc?.version ?? 0;
      this.lanes[2 * id] = c.lanes[2 * id]!;
      this.lanes[2 * id + 1] = c.lanes[2 * id + 1]!;
    }
  }
}
