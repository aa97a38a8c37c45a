/**
 * What one step touched, for the checker's dependency analysis (DESIGN.md "Checking": two steps of different
 * CPUs are dependent when they touch the same physical bytes with a write, the same page-table entry, or an IPI
 * meets the target CPU's steps). Recording is off unless the machine asks for it; arrays are reused across steps.
 */
export class Footprint {
  /** Physical reads as flat pairs [pa, size, pa, size, ...]. */
  readonly reads: number[] = [];
  /** Physical writes as flat pairs [pa, size, ...]. */
  readonly writes: number[] = [];
  /** Physical addresses of page-table entries read by the walker. */
  readonly pteReads: number[] = [];
  /** Physical addresses of page-table entries written by the walker (A/D updates). */
  readonly pteWrites: number[] = [];
  /** Virtual page numbers filled into this CPU's TLB. */
  readonly tlbFills: number[] = [];
  /** Virtual page numbers invalidated in this CPU's TLB; -1 = non-global flush, -2 = full flush. */
  readonly tlbInvalidations: number[] = [];
  /** IPIs sent as flat pairs [targetCpu, vector]; vector 2 with nmi delivery is recorded as 2. */
  readonly ipisSent: number[] = [];
  /** Vectors accepted by this CPU in this step (interrupts and exceptions delivered). */
  readonly accepted: number[] = [];
  /** Resources kept outside emulated memory that the step held (an `atomic` step's lock name). */
  readonly resources: string[] = [];

  /** Empties the arrays a step filled; most are empty on most steps, and reading a length is cheaper than setting it. */
  clear(): void {
    if (this.reads.length !== 0) this.reads.length = 0;
    if (this.writes.length !== 0) this.writes.length = 0;
    if (this.pteReads.length !== 0) this.pteReads.length = 0;
    if (this.pteWrites.length !== 0) this.pteWrites.length = 0;
    if (this.tlbFills.length !== 0) this.tlbFills.length = 0;
    if (this.tlbInvalidations.length !== 0) this.tlbInvalidations.length = 0;
    if (this.ipisSent.length !== 0) this.ipisSent.length = 0;
    if (this.accepted.length !== 0) this.accepted.length = 0;
    if (this.resources.length !== 0) this.resources.length = 0;
  }

  /** A plain copy, for keeping past the step. */
  copy(): FootprintRecord {
    return {
      reads: [...this.reads],
      writes: [...this.writes],
      pteReads: [...this.pteReads],
      pteWrites: [...this.pteWrites],
      tlbFills: [...this.tlbFills],
      tlbInvalidations: [...this.tlbInvalidations],
      ipisSent: [...this.ipisSent],
      accepted: [...this.accepted],
      resources: [...this.resources],
    };
  }
}

export type FootprintRecord = {
  readonly [K in keyof Omit<Footprint, 'clear' | 'copy' | 'resources'>]: readonly number[];
} & { readonly resources: readonly string[] };
