import { formatPhysical, formatVirtual } from '../mmu/address.ts';
import { describeValue, InputError } from '../mmu/input-error.ts';
import type { PhysicalMemory } from '../mmu/physical-memory.ts';

// A CPU's store buffer, the one relaxation of x86's memory model (SDM Vol. 3 §8.2.2 and §8.2.3.4; x86-TSO, Owens,
// Sarkar and Sewell, TPHOLs 2009): a store is translated and checked when it executes, then waits in a FIFO until it
// reaches memory, so a later load of another address can be satisfied before it ("loads may be reordered with older
// stores to different locations"). The CPU's own loads see its newest buffered bytes (store forwarding, §8.2.3.5).
// Entries leave in order: one by one as the hardware pleases (a checker event), or all at once when the CPU executes
// MFENCE, a locked instruction or a serializing one (§8.2.5, §8.3), or delivers an interrupt or exception.
// The buffer holds physical addresses: the translation was made, and any #PF raised, when the store executed. Whether
// the frame may still be written (the kernel's frame guard) is judged when a store reaches memory.

/** The most entries a buffer may be given (Skylake's store buffer has 56): the checker's state grows with it. */
export const MAX_STORE_BUFFER_ENTRIES = 64;

/** One buffered store, oldest first, for snapshots and tests. */
export interface BufferedStore {
  readonly va: number;
  readonly pa: number;
  readonly size: number;
  /** The stored bytes as an unsigned little-endian number (exact below 2^53, as loads are). */
  readonly value: number;
}

const TWO_32 = 2 ** 32;

export class StoreBuffer {
  readonly capacity: number;
  // A ring of entries: physical address, size, the value's low and high 32 bits, virtual address, and the frame
  // guard's generation of the frame + 1 when the store was translated (0: not known; see MemoryPort).
  private readonly pa: Float64Array;
  private readonly size: Uint8Array;
  private readonly lo: Uint32Array;
  private readonly hi: Uint32Array;
  private readonly va: Float64Array;
  private readonly generation: Float64Array;
  private head = 0;
  /** Entries buffered. */
  length = 0;
  /** Counts changes (pushes, drains, copies): an unchanged version means unchanged contents (the checker's test). */
  version = 0;
  /** Bytes of a forwarded load, scratch (no allocation per access). */
  private readonly bytes = new Uint8Array(8);
  private readonly covered = new Uint8Array(8);

  constructor(entries: number) {
    if (!Number.isInteger(entries) || entries < 1 || entries > MAX_STORE_BUFFER_ENTRIES) {
      throw new InputError(
        `store buffer entries ${describeValue(entries)} must be an integer in 1..${MAX_STORE_BUFFER_ENTRIES} ` +
          '(0 means no store buffer: sequentially consistent memory)',
      );
    }
    this.capacity = entries;
    this.pa = new Float64Array(entries);
    this.size = new Uint8Array(entries);
    this.lo = new Uint32Array(entries);
    this.hi = new Uint32Array(entries);
    this.va = new Float64Array(entries);
    this.generation = new Float64Array(entries);
  }

  private slot(k: number): number {
    const i = this.head + k;
    return i < this.capacity ? i : i - this.capacity;
  }

  /** Appends a store; the caller drains the oldest first when the buffer is full (the CPU stalls until it can). */
  push(va: number, pa: number, size: number, value: number, generation: number): void {
    this.pushHalves(va, pa, size, value >>> 0, size === 8 ? Math.floor(value / TWO_32) >>> 0 : 0, generation);
  }

  /** As push(), with the stored bytes as two 32-bit halves (an 8-byte image a number cannot hold exactly). */
  pushHalves(va: number, pa: number, size: number, lo: number, hi: number, generation: number): void {
    if (this.length === this.capacity) {
      throw new InputError(`store buffer full (${this.capacity} entries): drain the oldest store first`);
    }
    const i = this.slot(this.length++);
    this.version++;
    this.pa[i] = pa;
    this.size[i] = size;
    this.lo[i] = lo;
    this.hi[i] = hi;
    this.va[i] = va;
    this.generation[i] = generation;
  }

  /** Whether a buffered store writes any byte of [pa, pa + size). */
  overlaps(pa: number, size: number): boolean {
    for (let k = 0; k < this.length; k++) {
      const i = this.slot(k);
      if (this.pa[i]! < pa + size && pa < this.pa[i]! + this.size[i]!) return true;
    }
    return false;
  }

  /**
   * A load of `size` bytes at `pa` as this CPU sees it: memory, overlaid with its buffered stores oldest to newest
   * (store forwarding, SDM §8.2.3.5: the newest buffered store to a byte wins).
   */
  forward(memory: PhysicalMemory, pa: number, size: number): number {
    if (!this.overlaps(pa, size)) return memory.read(pa, size);
    const bytes = this.bytes;
    const covered = this.covered;
    covered.fill(0);
    for (let k = 0; k < this.length; k++) {
      const i = this.slot(k);
      const start = this.pa[i]!;
      const n = this.size[i]!;
      for (let b = 0; b < n; b++) {
        const at = start + b - pa;
        if (at >= 0 && at < size) {
          bytes[at] = this.byteOf(i, b);
          covered[at] = 1;
        }
      }
    }
    // Only the bytes no buffered store covers come from memory (a load reads nothing else: the stateful checker's
    // dead words are judged by what is read).
    for (let b = 0; b < size; b++) if (covered[b] === 0) bytes[b] = memory.read8(pa + b);
    let value = 0;
    for (let b = size - 1; b >= 0; b--) value = value * 256 + bytes[b]!;
    return value;
  }

  private byteOf(i: number, b: number): number {
    return b < 4 ? (this.lo[i]! >>> (8 * b)) & 0xff : (this.hi[i]! >>> (8 * (b - 4))) & 0xff;
  }

  /** The oldest entry's fields (valid while length > 0). */
  get oldestPa(): number {
    return this.pa[this.head]!;
  }
  get oldestSize(): number {
    return this.size[this.head]!;
  }
  get oldestVa(): number {
    return this.va[this.head]!;
  }
  get oldestGeneration(): number {
    return this.generation[this.head]!;
  }

  /** Writes the oldest store to memory and removes it (a write watch on those bytes wakes its CPU). */
  writeOldest(memory: PhysicalMemory): void {
    const i = this.head;
    const size = this.size[i]!;
    if (size === 8) {
      memory.write32(this.pa[i]!, this.lo[i]!);
      memory.write32(this.pa[i]! + 4, this.hi[i]!);
    } else memory.write(this.pa[i]!, size, this.lo[i]!);
    this.dropOldest();
  }

  /** Removes the oldest store without writing it (its CPU stopped on it). */
  dropOldest(): void {
    this.head = this.slot(1);
    this.length--;
    this.version++;
  }

  /** Forgets every entry (a machine reset). */
  clear(): void {
    this.head = 0;
    this.length = 0;
    this.version++;
  }

  /** Becomes a copy of `other` (same capacity): machine images copy a CPU's buffer. */
  copyFrom(other: StoreBuffer): void {
    if (other.capacity !== this.capacity) {
      throw new InputError(`store buffer copy: capacity ${other.capacity} into ${this.capacity}`);
    }
    this.pa.set(other.pa);
    this.size.set(other.size);
    this.lo.set(other.lo);
    this.hi.set(other.hi);
    this.va.set(other.va);
    this.generation.set(other.generation);
    this.head = other.head;
    this.length = other.length;
    this.version++;
  }

  /**
   * Internal (the stateful checker hashes a buffer's contents): calls `visit` for each entry, oldest first, with
   * its physical address, size, value halves, virtual address and frame generation.
   */
  forEachEntry(
    visit: (pa: number, size: number, lo: number, hi: number, va: number, generation: number) => void,
  ): void {
    for (let k = 0; k < this.length; k++) {
      const i = this.slot(k);
      visit(this.pa[i]!, this.size[i]!, this.lo[i]!, this.hi[i]!, this.va[i]!, this.generation[i]!);
    }
  }

  /** The buffered stores, oldest first. */
  entries(): BufferedStore[] {
    const out: BufferedStore[] = [];
    for (let k = 0; k < this.length; k++) {
      const i = this.slot(k);
      out.push({ va: this.va[i]!, pa: this.pa[i]!, size: this.size[i]!, value: this.hi[i]! * TWO_32 + this.lo[i]! });
    }
    return out;
  }

  /** "8 bytes at 0xffffc90000001000 (physical 0x1234000)": an entry as reports name it. */
  static describe(entry: BufferedStore): string {
    return `${entry.size} bytes at ${formatVirtual(entry.va)} (physical ${formatPhysical(entry.pa)})`;
  }
}
