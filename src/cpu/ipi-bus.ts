import type { LocalApic } from './apic.ts';

// The interrupt bus between local APICs (SDM Vol. 3 §11.6: the ICR write sends an interrupt message; it is
// accepted into the target's IRR some time later). The architecture bounds nothing about that time: the target
// may run any number of instructions between the sender's ICR write and the IRR update. So an IPI sent in
// `scheduled` mode is in flight until a delivery event (a schedule entry, the checker's choice, a built-in policy's
// turn) puts it in the target's IRR; `immediate` mode delivers as the ICR write completes, the earlier behaviour.
// Coalescing is the APIC's: two IPIs of one vector merge once both are in IRR, never while in flight.

/** When a sent IPI reaches the target's IRR: in the same step, or at a delivery event. */
export type IpiDelivery = 'immediate' | 'scheduled';
export const IPI_DELIVERY_MODES: readonly IpiDelivery[] = ['immediate', 'scheduled'];

/** An IPI on its way: sent by `from` to `to`, not yet in the target's IRR (or NMI latch). */
export interface InFlightIpi {
  readonly from: number;
  readonly to: number;
  readonly vector: number;
  readonly nmi: boolean;
  /** Send order, machine-wide: the oldest in flight has the smallest. */
  readonly seq: number;
}

/** Which in-flight IPI to a CPU a delivery event delivers: the oldest, the oldest NMI, or the oldest of a vector. */
export type DeliverySelector = 'oldest' | 'nmi' | number;

export class IpiBus {
  private queue: InFlightIpi[] = [];
  private sent = 0;

  /** IPIs sent since the machine was made (one per target). */
  get sentCount(): number {
    return this.sent;
  }

  constructor(
    private readonly apics: readonly LocalApic[],
    public mode: IpiDelivery,
  ) {}

  /** IPIs in flight, oldest first. */
  get inFlight(): readonly InFlightIpi[] {
    return this.queue;
  }

  /** An ICR write: one interrupt message per target, delivered now or put in flight (see `mode`). */
  send(from: number, targets: readonly number[], vector: number, nmi: boolean): void {
    for (const to of targets) {
      if (this.mode === 'immediate') this.accept(to, vector, nmi);
      else this.queue.push({ from, to, vector, nmi, seq: this.sent });
      this.sent++;
    }
  }

  /** Index in `inFlight` of the oldest IPI to `to` that `which` selects, or -1. */
  find(to: number, which: DeliverySelector): number {
    return this.queue.findIndex(
      (ipi) => ipi.to === to && (which === 'oldest' || (which === 'nmi' ? ipi.nmi : !ipi.nmi && ipi.vector === which)),
    );
  }

  /** Delivers the in-flight IPI at `index` into its target's APIC and returns it. */
  deliverAt(index: number): InFlightIpi {
    const [ipi] = this.queue.splice(index, 1);
    this.accept(ipi!.to, ipi!.vector, ipi!.nmi);
    return ipi!;
  }

  private accept(to: number, vector: number, nmi: boolean): void {
    const apic = this.apics[to]!;
    if (nmi) apic.raiseNmi();
    else apic.raise(vector);
  }

  /** State for machine images. */
  copyFrom(other: IpiBus): void {
    this.queue = [...other.queue];
    this.sent = other.sent;
    this.mode = other.mode;
  }
}
