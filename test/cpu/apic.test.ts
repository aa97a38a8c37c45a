import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LocalApic } from '../../src/cpu/apic.ts';

/** Bits set in eight 32-bit words. */
function popcount(words: Uint32Array): number {
  let n = 0;
  for (const w of words) for (let x = w; x !== 0; x &= x - 1) n++;
  return n;
}

describe('the local APIC', () => {
  it('counts the vectors requested and in service as its IRR and ISR hold them (property)', () => {
    // The counts stand for the registers wherever a scan would cost (the CPU's boundary check, the search's
    // checkpoints): after any sequence of arrivals, acknowledges and EOIs they must match the bits.
    const op = fc.oneof(
      fc.record({ raise: fc.integer({ min: 16, max: 255 }) }),
      fc.record({ accept: fc.integer({ min: 16, max: 255 }) }),
      fc.constant({ eoi: true }),
      fc.constant({ copy: true }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        let apic = new LocalApic();
        for (const o of ops) {
          if ('raise' in o) apic.raise(o.raise);
          else if ('accept' in o) apic.accept(o.accept);
          else if ('eoi' in o) apic.eoi();
          else {
            const copy = new LocalApic();
            copy.copyFrom(apic);
            apic = copy;
          }
          expect(apic.pendingCount).toBe(popcount(apic.irr));
          expect(apic.serviceCount).toBe(popcount(apic.isr));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('an EOI with nothing in service changes nothing and says so', () => {
    const apic = new LocalApic();
    expect(apic.eoi()).toBe(-1);
    expect(apic.serviceCount).toBe(0);
    apic.raise(0x40);
    apic.accept(0x40);
    apic.accept(0x40);
    expect(apic.serviceCount).toBe(1);
    expect(apic.eoi()).toBe(0x40);
    expect(apic.serviceCount).toBe(0);
  });
});
