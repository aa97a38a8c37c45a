// Local APIC interrupt acceptance (SDM Vol. 3 §11.8): a fixed IPI sets its vector's bit in IRR (two pending IPIs
// of one vector coalesce into one bit); at an instruction boundary with IF=1 the highest IRR vector whose priority
// class (vector >> 4) is above that of the highest in-service vector moves to ISR and is delivered; EOI clears the
// highest ISR bit. NMIs bypass IRR/ISR: one pending latch, accepted regardless of IF.

function highestBit(bits: Uint32Array): number {
  for (let word = 7; word >= 0; word--) {
    const w = bits[word]!;
    if (w !== 0) return word * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

function listBits(bits: Uint32Array): number[] {
  const out: number[] = [];
  for (let v = 0; v < 256; v++) if ((bits[v >>> 5]! & (1 << (v & 31))) !== 0) out.push(v);
  return out;
}

/** IRR and ISR are public for reading; they change only through the methods, which keep their counts. */
export class LocalApic {
  readonly irr = new Uint32Array(8);

  /** Vectors requested and not yet accepted (IRR), lowest first. Off the step path. */
  requested(): number[] {
    const out: number[] = [];
    for (let v = 0; v < 256; v++) if ((this.irr[v >>> 5]! & (1 << (v & 31))) !== 0) out.push(v);
    return out;
  }
  readonly isr = new Uint32Array(8);
  nmiPending = false;
  /** Number of vectors pending in IRR: checked at every instruction boundary, so kept instead of scanned. */
  pendingCount = 0;
  /** Fixed IPIs that arrived while their vector was already pending (merged into one IRR bit). */
  coalesced = 0;
  /** Number of vectors in service (ISR): with pendingCount, whether the APIC holds any bit at all, kept so that
   * the stateful search need not scan both registers at every restore (explore/machine-state.ts). */
  serviceCount = 0;

  /** A fixed interrupt arrives: sets its IRR bit. Returns false when it coalesced with a pending one. */
  raise(vector: number): boolean {
    const word = vector >>> 5;
    const bit = 1 << (vector & 31);
    if ((this.irr[word]! & bit) !== 0) {
      this.coalesced++;
      return false;
    }
    this.irr[word] = this.irr[word]! | bit;
    this.pendingCount++;
    return true;
  }

  raiseNmi(): void {
    this.nmiPending = true;
  }

  /** The vector the APIC would deliver now (ignoring IF), or -1: highest IRR above the in-service priority. */
  deliverable(): number {
    if (this.pendingCount === 0) return -1;
    const pending = highestBit(this.irr);
    if (pending < 0) return -1;
    const inService = highestBit(this.isr);
    return inService < 0 || pending >>> 4 > inService >>> 4 ? pending : -1;
  }

  /** Interrupt acknowledge: IRR -> ISR for `vector`. */
  accept(vector: number): void {
    const word = vector >>> 5;
    const bit = 1 << (vector & 31);
    if ((this.irr[word]! & bit) !== 0) this.pendingCount--;
    if ((this.isr[word]! & bit) === 0) this.serviceCount++;
    this.irr[word] = this.irr[word]! & ~bit;
    this.isr[word] = this.isr[word]! | bit;
  }

  /** EOI: clears the highest in-service vector; returns it, or -1 when none was in service. */
  eoi(): number {
    const vector = highestBit(this.isr);
    if (vector >= 0) {
      this.isr[vector >>> 5] = this.isr[vector >>> 5]! & ~(1 << (vector & 31));
      this.serviceCount--;
    }
    return vector;
  }

  pendingVectors(): number[] {
    return listBits(this.irr);
  }

  inServiceVectors(): number[] {
    return listBits(this.isr);
  }

  copyFrom(other: LocalApic): void {
    this.irr.set(other.irr);
    this.isr.set(other.isr);
    this.nmiPending = other.nmiPending;
    this.coalesced = other.coalesced;
    this.pendingCount = other.pendingCount;
    this.serviceCount = other.serviceCount;
  }
}
