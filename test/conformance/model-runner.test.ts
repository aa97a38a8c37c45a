import { describe, expect, it } from 'vitest';
import {
  type Case,
  type DeliveryCase,
  type EntryBits,
  hex64,
  LAYOUT,
  type PagingCase,
} from '../../conformance/case.ts';
import { runOnModel } from '../../conformance/model-runner.ts';

// Sanity checks of the model runner against outcomes the SDM fixes (Vol. 3 §4.6, §4.7, §4.10, §6.12-6.15 and
// Table 6-5), so that a difference from QEMU points at the model or the oracle, not at the runner.

const P = 0x1;
const RW = 0x2;
const US = 0x4;
const A = 0x20;
const D = 0x40;
const PS = 0x80;
/** Bit 63 (XD), as the high half of EntryBits. */
const XD = 0x8000_0000;

/** An upper-level entry with every right: P, R/W, U/S. */
const OPEN: EntryBits = [P | RW | US, 0];

const TEST_VA = hex64(LAYOUT.testVa);
const RFLAGS = hex64(LAYOUT.rflags);
const PAGE = 0x1000;
/** Frame sizes: five slots, six with an error code. */
const FRAME = 40;
const FRAME_WITH_ERROR_CODE = 48;
const INITIAL = hex64(LAYOUT.initialValue);

function paging(overrides: Partial<PagingCase> & Pick<PagingCase, 'entries' | 'steps'>): PagingCase {
  return {
    id: 'test',
    family: 'paging',
    controls: { wp: true, nxe: true },
    cpl: 0,
    leaf: 1,
    ...overrides,
  };
}

function delivery(overrides: Partial<DeliveryCase> & Pick<DeliveryCase, 'trigger'>): DeliveryCase {
  return { id: 'test', family: 'delivery', cpl: 0, gates: {}, stacks: {}, rspOffset: 0, ...overrides };
}

describe('paging cases', () => {
  it('a CPL 3 read of a supervisor 4 KiB page is #PF(P|U) with CR2 = testVa, delivered on RSP0', () => {
    const o = runOnModel(
      paging({ cpl: 3, entries: [OPEN, OPEN, OPEN, [P | RW, 0]], steps: [{ op: 'access', kind: 'read' }] }),
    );
    expect(o.steps).toEqual([
      {
        event: true,
        attempts: [14],
        delivered: {
          vector: 14,
          errorCode: 5,
          cr2: TEST_VA,
          stack: 'rsp0',
          // TSS.RSP0 is the top of its page, 16-byte aligned: the six-slot frame is just below it.
          frameOffset: PAGE - FRAME_WITH_ERROR_CODE,
          rip: 'fault',
          cs: 0x33,
          rflags: RFLAGS,
          rsp: hex64(LAYOUT.userRsp),
          ss: 0x2b,
        },
      },
    ]);
    expect(o.memory).toBe(INITIAL);
    // The leaf was not used for an access: no A on it.
    expect(BigInt(`0x${o.entries![3]}`) & BigInt(A)).toBe(0n);
  });

  it('a CPL 0 write to a read-only page succeeds with CR0.WP = 0 and sets A and D in the leaf', () => {
    const o = runOnModel(
      paging({
        controls: { wp: false, nxe: true },
        entries: [OPEN, OPEN, OPEN, [P | US, 0]],
        steps: [{ op: 'access', kind: 'write' }],
      }),
    );
    expect(o.steps).toEqual([{ event: false }]);
    expect(o.memory).toBe(hex64(LAYOUT.writeValue));
    expect(o.entries).toEqual([
      hex64(LAYOUT.testPdpt | P | RW | US | A),
      hex64(LAYOUT.testPd | P | RW | US | A),
      hex64(LAYOUT.testPt | P | RW | US | A),
      hex64(LAYOUT.data4k | P | US | A | D),
    ]);
  });

  it('the same write with CR0.WP = 1 is #PF(P|W) on the current stack, and memory keeps its value', () => {
    const o = runOnModel(
      paging({ entries: [OPEN, OPEN, OPEN, [P | US, 0]], steps: [{ op: 'access', kind: 'write' }] }),
    );
    expect(o.steps[0]).toMatchObject({
      event: true,
      attempts: [14],
      delivered: {
        vector: 14,
        errorCode: 3,
        cr2: TEST_VA,
        stack: 'current',
        frameOffset: LAYOUT.kernelRsp - LAYOUT.stacks.current - FRAME_WITH_ERROR_CODE,
        rip: 'fault',
        cs: 0x10,
        ss: 0x18,
        rsp: hex64(LAYOUT.kernelRsp),
      },
    });
    expect(o.memory).toBe(INITIAL);
    expect(BigInt(`0x${o.entries![3]}`) & BigInt(D)).toBe(0n);
  });

  it('reads through 2 MiB and 1 GiB leaves return the target qword and set A, not D', () => {
    const two = runOnModel(
      paging({ leaf: 2, entries: [OPEN, OPEN, [P | RW | PS, 0]], steps: [{ op: 'access', kind: 'read' }] }),
    );
    expect(two.steps).toEqual([{ event: false, value: INITIAL }]);
    expect(two.entries![2]).toBe(hex64(LAYOUT.data2m | P | RW | PS | A));
    const one = runOnModel(
      paging({ leaf: 3, entries: [OPEN, [P | RW | PS, 0]], steps: [{ op: 'access', kind: 'read' }] }),
    );
    expect(one.steps).toEqual([{ event: false, value: INITIAL }]);
    expect(one.entries).toEqual([hex64(LAYOUT.testPdpt | P | RW | US | A), hex64(LAYOUT.data1g | P | RW | PS | A)]);
  });

  it('a PTE cleared without a flush may still translate; after INVLPG the read faults (#PF(0))', () => {
    const o = runOnModel(
      paging({
        family: 'tlb',
        entries: [OPEN, OPEN, OPEN, [P | RW, 0]],
        steps: [
          { op: 'access', kind: 'read' },
          { op: 'set-entry', level: 1, bits: [RW, 0] },
          { op: 'access', kind: 'read' },
          { op: 'invlpg' },
          { op: 'access', kind: 'read' },
        ],
      }),
    );
    // The second read may use the stale TLB entry or fault (SDM §4.10.4.3); the model keeps the entry.
    expect(o.steps.slice(0, 2)).toEqual([
      { event: false, value: INITIAL },
      { event: false, value: INITIAL },
    ]);
    expect(o.steps[2]).toMatchObject({
      event: true,
      attempts: [14],
      delivered: { vector: 14, errorCode: 0, rip: 'fault' },
    });
    expect(o.entries![3]).toBe(hex64(LAYOUT.data4k | RW));
  });

  it('a set-entry stores all 64 bits exactly (XD and the high bits of an entry)', () => {
    const o = runOnModel(
      paging({
        entries: [OPEN, OPEN, OPEN, [P | RW | A, 0]],
        steps: [
          { op: 'set-entry', level: 1, bits: [P | RW | A, XD | 0x7ff0_0000] },
          { op: 'access', kind: 'read' },
        ],
      }),
    );
    expect(o.entries![3]).toBe(`fff00000${(LAYOUT.data4k | P | RW | A).toString(16).padStart(8, '0')}`);
    expect(o.steps).toEqual([{ event: false, value: INITIAL }]);
  });

  it('a fetch from an XD page with NXE is #PF(P|I); without NXE bit 63 is reserved: #PF(P|RSVD), no I', () => {
    const xd: EntryBits = [P | RW | PS, XD];
    const withNxe = runOnModel(
      paging({ leaf: 2, entries: [OPEN, OPEN, xd], steps: [{ op: 'access', kind: 'fetch' }] }),
    );
    // Derived, not executed: the return address was pushed before the jump, so RSP is the case's at the fetch.
    expect(withNxe.steps).toEqual([
      {
        event: true,
        attempts: [14],
        delivered: {
          vector: 14,
          errorCode: 0x11,
          cr2: TEST_VA,
          stack: 'current',
          frameOffset: LAYOUT.kernelRsp - LAYOUT.stacks.current - FRAME_WITH_ERROR_CODE,
          rip: 'target',
          cs: 0x10,
          rflags: RFLAGS,
          rsp: hex64(LAYOUT.kernelRsp),
          ss: 0x18,
        },
      },
    ]);
    const withoutNxe = runOnModel(
      paging({
        controls: { wp: true, nxe: false },
        leaf: 2,
        entries: [OPEN, OPEN, xd],
        steps: [{ op: 'access', kind: 'fetch' }],
      }),
    );
    expect(withoutNxe.steps[0]!.delivered!.errorCode).toBe(0x9);
    const allowed = runOnModel(
      paging({ leaf: 2, entries: [OPEN, OPEN, [P | PS, 0]], steps: [{ op: 'access', kind: 'fetch' }] }),
    );
    expect(allowed.steps).toEqual([{ event: false }]);
    expect(allowed.entries![2]).toBe(hex64(LAYOUT.data2m | P | PS | A));
  });
});

describe('delivery cases', () => {
  it('a #PF whose current stack page is not present becomes #DF, delivered on IST1 with error code 0', () => {
    const o = runOnModel(delivery({ trigger: { kind: 'page-fault' }, stacks: { current: 'not-present' } }));
    expect(o.steps).toEqual([
      {
        event: true,
        attempts: [14, 8],
        delivered: {
          vector: 8,
          errorCode: 0,
          // CR2 is the nested #PF's: the first frame slot pushed (SS, the highest) is the one that faulted. The SDM
          // fixes only that the second #PF loads CR2; the slot order is the model's (and QEMU's).
          cr2: hex64(LAYOUT.kernelRsp - 8),
          stack: 'ist1',
          frameOffset: PAGE - FRAME_WITH_ERROR_CODE,
          rip: 'fault',
          cs: 0x10,
          rflags: RFLAGS,
          rsp: hex64(LAYOUT.kernelRsp),
          ss: 0x18,
        },
      },
    ]);
    expect(o.entries).toBeUndefined();
  });

  it('a #DF gate that is not present shuts the CPU down (triple fault): no handler runs', () => {
    const o = runOnModel(
      delivery({
        trigger: { kind: 'page-fault' },
        stacks: { current: 'not-present' },
        gates: { 8: { present: false } },
      }),
    );
    expect(o.steps).toEqual([{ event: true, attempts: [14, 8], shutdown: true }]);
  });

  it('a CPL 3 read of the not-present test hierarchy is #PF(U) on RSP0', () => {
    const o = runOnModel(delivery({ cpl: 3, trigger: { kind: 'page-fault' } }));
    expect(o.steps[0]).toMatchObject({
      attempts: [14],
      delivered: { vector: 14, errorCode: 4, cr2: TEST_VA, stack: 'rsp0', cs: 0x33, ss: 0x2b },
    });
  });

  it('INT n from CPL 3 through a DPL 0 gate is #GP(n * 8 + 2), EXT clear, saving the INT itself', () => {
    const o = runOnModel(delivery({ cpl: 3, trigger: { kind: 'int', vector: 0x80 } }));
    expect(o.steps).toEqual([
      {
        event: true,
        attempts: [0x80, 13],
        delivered: {
          vector: 13,
          errorCode: 0x80 * 8 + 2,
          cr2: hex64(0),
          stack: 'rsp0',
          frameOffset: PAGE - FRAME_WITH_ERROR_CODE,
          rip: 'fault',
          cs: 0x33,
          rflags: RFLAGS,
          rsp: hex64(LAYOUT.userRsp),
          ss: 0x2b,
        },
      },
    ]);
  });

  it('INT n through a DPL 3 gate is a trap: no error code slot, the frame saves the next instruction', () => {
    const o = runOnModel(delivery({ cpl: 3, trigger: { kind: 'int', vector: 0x80 }, gates: { 128: { dpl: 3 } } }));
    expect(o.steps[0]).toMatchObject({
      attempts: [0x80],
      delivered: { vector: 0x80, errorCode: null, stack: 'rsp0', frameOffset: PAGE - FRAME, rip: 'next' },
    });
  });

  it('INT n through a missing gate is #GP(n * 8 + 2), delivered serially', () => {
    const o = runOnModel(delivery({ trigger: { kind: 'int', vector: 0x40 } }));
    expect(o.steps[0]).toMatchObject({
      attempts: [0x40, 13],
      delivered: { vector: 13, errorCode: 0x40 * 8 + 2, stack: 'current', rip: 'fault' },
    });
  });

  it('a missing #PF gate raises #GP(14 * 8 + 2 + EXT), and #GP while delivering #PF is #DF (Table 6-5)', () => {
    const o = runOnModel(delivery({ trigger: { kind: 'page-fault' }, gates: { 14: { missing: true } } }));
    expect(o.steps[0]).toMatchObject({
      attempts: [14, 8],
      delivered: { vector: 8, errorCode: 0, stack: 'ist1', cr2: TEST_VA },
    });
  });

  it('the frame is pushed at RSP aligned down to 16; the saved RSP is the unaligned one', () => {
    const o = runOnModel(delivery({ trigger: { kind: 'general-protection' }, rspOffset: 8 }));
    const rsp = LAYOUT.kernelRsp - 8;
    expect(o.steps[0]).toMatchObject({
      attempts: [13],
      delivered: {
        vector: 13,
        errorCode: 0,
        stack: 'current',
        frameOffset: (rsp & ~15) - LAYOUT.stacks.current - FRAME_WITH_ERROR_CODE,
        rsp: hex64(rsp),
      },
    });
  });

  it('a push to a non-canonical address is #SS; #SS through an IST gate is delivered there', () => {
    const o = runOnModel(delivery({ trigger: { kind: 'push', rsp: '0000800000000008' }, gates: { 12: { ist: 2 } } }));
    expect(o.steps[0]).toMatchObject({
      attempts: [12],
      delivered: { vector: 12, errorCode: 0, stack: 'ist2', rip: 'fault', rsp: hex64(LAYOUT.nonCanonical + 8n) },
    });
  });

  it('a push from the first address of the hole writes the canonical address below it (#PF, not #SS)', () => {
    const o = runOnModel(delivery({ trigger: { kind: 'push', rsp: '0000800000000000' }, gates: { 14: { ist: 2 } } }));
    expect(o.steps[0]).toMatchObject({
      attempts: [14],
      delivered: { vector: 14, errorCode: 2, cr2: '00007ffffffffff8', stack: 'ist2', rsp: '0000800000000000' },
    });
  });

  it('a self-IPI is taken at the next boundary with IF set; a missing gate is #GP(vector * 8 + 2 + EXT)', () => {
    const ok = runOnModel(delivery({ trigger: { kind: 'self-ipi', vector: 0x80, nmi: false } }));
    expect(ok.steps[0]).toMatchObject({
      attempts: [0x80],
      delivered: { vector: 0x80, errorCode: null, rip: 'next', rflags: hex64(LAYOUT.ipiRflags) },
    });
    const missing = runOnModel(
      delivery({ trigger: { kind: 'self-ipi', vector: 2, nmi: true }, gates: { 2: { missing: true } } }),
    );
    expect(missing.steps[0]).toMatchObject({ attempts: [2, 13], delivered: { vector: 13, errorCode: 2 * 8 + 3 } });
  });

  it('IRETQ to user code enters CPL 3; a bad SS is #GP(SS) and a non-canonical RIP #GP(0), both at CPL 0', () => {
    const iret = (cs: number, ss: number, rip: 'user' | 'non-canonical') =>
      runOnModel(delivery({ trigger: { kind: 'iret', cs, ss, rip } })).steps[0];
    expect(iret(0x33, 0x2b, 'user')).toEqual({ event: false });
    expect(iret(0x33, 0x28, 'user')).toMatchObject({
      delivered: { vector: 13, errorCode: 0x28, rip: 'fault', cs: 0x10 },
    });
    expect(iret(0x33, 0x2b, 'non-canonical')).toMatchObject({ delivered: { vector: 13, errorCode: 0, rip: 'fault' } });
  });

  it('a non-canonical RSP0 faults the frame push of a CPL 3 event; #PF then #SS is #DF', () => {
    const o = runOnModel(delivery({ cpl: 3, trigger: { kind: 'page-fault' }, stacks: { rsp0: 'non-canonical' } }));
    expect(o.steps[0]).toMatchObject({
      attempts: [14, 8],
      delivered: { vector: 8, errorCode: 0, stack: 'ist1', cs: 0x33, ss: 0x2b, rsp: hex64(LAYOUT.userRsp) },
    });
  });
});

describe('the runner', () => {
  const sample: Case[] = [
    paging({ cpl: 3, entries: [OPEN, OPEN, OPEN, [P | RW, 0]], steps: [{ op: 'access', kind: 'write' }] }),
    paging({ entries: [OPEN, OPEN, OPEN, [P | RW | US, 0]], steps: [{ op: 'access', kind: 'write' }] }),
    paging({
      family: 'tlb',
      entries: [OPEN, OPEN, OPEN, [P | RW | 0x100, 0]],
      steps: [
        { op: 'access', kind: 'read' },
        { op: 'set-entry', level: 1, bits: [0, 0] },
        { op: 'reload-cr3' },
        { op: 'access', kind: 'read' },
        { op: 'toggle-pge' },
        { op: 'access', kind: 'read' },
      ],
    }),
    delivery({ trigger: { kind: 'page-fault' }, stacks: { current: 'read-only', ist1: 'not-present' } }),
    delivery({ cpl: 3, trigger: { kind: 'int', vector: 0x81 }, gates: { 129: { selector: 0x33 } } }),
    delivery({ trigger: { kind: 'int', vector: 8 }, gates: { 8: { type: 'trap' } } }),
  ];

  it('a case observes the same whatever ran before it (each case starts from the same state)', () => {
    const alone = sample.map((c) => JSON.stringify(runOnModel(c)));
    const reversed = [...sample].reverse().map((c) => JSON.stringify(runOnModel(c)));
    expect(reversed.reverse()).toEqual(alone);
    expect(sample.map((c) => JSON.stringify(runOnModel(c)))).toEqual(alone);
  });

  it('refuses a CPL 3 paging case with more than one step', () => {
    const bad = paging({
      cpl: 3,
      entries: [OPEN, OPEN, OPEN, OPEN],
      steps: [{ op: 'access', kind: 'read' }, { op: 'invlpg' }],
    });
    expect(() => runOnModel(bad)).toThrow('a CPL 3 paging case has exactly one step, an access');
  });
});
