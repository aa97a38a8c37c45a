/**
 * What one step touched, for the checker's dependency analysis (DESIGN.md "Checking": two steps of different
 * CPUs are dependent when they touch the same physical bytes with a write, the same page-table entry, or an IPI
 * meets the target CPU's steps). Recording is off unless the machine asks for it.
 *
 * The lists are typed arrays with a count, emptied by resetting the count: setting a JS array's length to 0 frees
 * its storage in V8, so a step's first push allocated again (about 100 ns a step, more than the step itself).
 * Producers append to the `*List` fields; the array getters (`reads`, ...) copy for readers.
 */
export class NumberList {
  private data = new Float64Array(16);
  length = 0;

  push(x: number): void {
    if (this.length === this.data.length) this.grow();
    this.data[this.length++] = x;
  }

  /** Appends a pair (an address and a size, a target and a vector). */
  push2(x: number, y: number): void {
    if (this.length + 2 > this.data.length) this.grow();
    this.data[this.length++] = x;
    this.data[this.length++] = y;
  }

  get(i: number): number {
    return this.data[i]!;
  }

  clear(): void {
    this.length = 0;
  }

  toArray(): number[] {
    return Array.from(this.data.subarray(0, this.length));
  }

  private grow(): void {
    const next = new Float64Array(this.data.length * 2);
    next.set(this.data);
    this.data = next;
  }
}

export class Footprint {
  /** Physical reads as flat pairs [pa, size, pa, size, ...]. */
  readonly readList = new NumberList();
  /** Physical writes as flat pairs [pa, size, ...]. */
  readonly writeList = new NumberList();
  /** Physical addresses of page-table entries read by the walker. */
  readonly pteReadList = new NumberList();
  /** Physical addresses of page-table entries written by the walker (A/D updates). */
  readonly pteWriteList = new NumberList();
  /** Virtual page numbers filled into this CPU's TLB. */
  readonly tlbFillList = new NumberList();
  /** Virtual page numbers invalidated in this CPU's TLB; -1 = non-global flush, -2 = full flush. */
  readonly tlbInvalidationList = new NumberList();
  /** IPIs sent as flat pairs [targetCpu, vector]; vector 2 with nmi delivery is recorded as 2. */
  readonly ipiList = new NumberList();
  /** Vectors accepted by this CPU in this step (interrupts and exceptions delivered). */
  readonly acceptedList = new NumberList();
  /** Resources kept outside emulated memory that the step held (an `atomic` step's lock name). */
  readonly resources: string[] = [];

  get reads(): number[] {
    return this.readList.toArray();
  }
  get writes(): number[] {
    return this.writeList.toArray();
  }
  get pteReads(): number[] {
    return this.pteReadList.toArray();
  }
  get pteWrites(): number[] {
    return this.pteWriteList.toArray();
  }
  get tlbFills(): number[] {
    return this.tlbFillList.toArray();
  }
  get tlbInvalidations(): number[] {
    return this.tlbInvalidationList.toArray();
  }
  get ipisSent(): number[] {
    return this.ipiList.toArray();
  }
  get accepted(): number[] {
    return this.acceptedList.toArray();
  }

  /** Empties what the last step recorded. */
  clear(): void {
    this.readList.length = 0;
    this.writeList.length = 0;
    this.pteReadList.length = 0;
    this.pteWriteList.length = 0;
    this.tlbFillList.length = 0;
    this.tlbInvalidationList.length = 0;
    this.ipiList.length = 0;
    this.acceptedList.length = 0;
    // Atomic steps are rare: most steps leave this empty, and setting an empty array's length is a runtime call.
    if (this.resources.length !== 0) this.resources.length = 0;
  }

  /** A plain copy, for keeping past the step. */
  copy(): FootprintRecord {
    return {
      reads: this.reads,
      writes: this.writes,
      pteReads: this.pteReads,
      pteWrites: this.pteWrites,
      tlbFills: this.tlbFills,
      tlbInvalidations: this.tlbInvalidations,
      ipisSent: this.ipisSent,
      accepted: this.accepted,
      resources: [...this.resources],
    };
  }
}

export interface FootprintRecord {
  readonly reads: readonly number[];
  readonly writes: readonly number[];
  readonly pteReads: readonly number[];
  readonly pteWrites: readonly number[];
  readonly tlbFills: readonly number[];
  readonly tlbInvalidations: readonly number[];
  readonly ipisSent: readonly number[];
  readonly accepted: readonly number[];
  readonly resources: readonly string[];
}
