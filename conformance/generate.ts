import { PTE_HI, PTE_LO } from '../src/mmu/pte.ts';
import {
  type AccessKind,
  type Case,
  type DeliveryCase,
  type EntryBits,
  type GateSpec,
  LAYOUT,
  type LeafLevel,
  type PagingCase,
  type StackState,
  type Step,
  type Trigger,
} from './case.ts';

// The case generator: every family the suite covers, enumerated in a fixed order with ids that say what each case
// is. Changing the order or an id changes the recordings, so add cases at the end of a family's loops.
// kvm-unit-tests' x86/access.c is the model: every combination of entry flags, access kind and privilege.

// Entry bits, as the model's PTE format names them (SDM Vol. 3 Tables 4-14..4-20).
const { P, RW, US, A, D, PS, G } = PTE_LO;
const NX_HI = PTE_HI.NX;

const LEAVES: readonly LeafLevel[] = [1, 2, 3];
const LEAF_NAME = { 1: '4k', 2: '2m', 3: '1g' } as const;
const LEVEL_NAME = { 4: 'pml4e', 3: 'pdpte', 2: 'pde', 1: 'pte' } as const;
const KINDS: readonly AccessKind[] = ['read', 'write', 'fetch'];

/** Levels of the entries for a leaf, outermost first (4 .. leaf). */
function levels(leaf: LeafLevel): (1 | 2 | 3 | 4)[] {
  return ([4, 3, 2, 1] as const).filter((l) => l >= leaf);
}

/** Entry bits: P, R/W, U/S at every level, PS on a large leaf, A and D as asked. */
function permissive(leaf: LeafLevel, accessed: boolean, dirty: boolean, global = false): EntryBits[] {
  return levels(leaf).map((level) => {
    let lo = P | RW | US | (accessed ? A : 0);
    if (level === leaf) lo |= (leaf > 1 ? PS : 0) | (dirty ? D : 0) | (global ? G : 0);
    return [lo, 0] as EntryBits;
  });
}

function withBits(entries: EntryBits[], index: number, lo: (v: number) => number, hi = (v: number) => v): EntryBits[] {
  return entries.map((e, i) => (i === index ? ([lo(e[0]) >>> 0, hi(e[1]) >>> 0] as EntryBits) : e));
}

function pagingCase(
  family: PagingCase['family'],
  id: string,
  leaf: LeafLevel,
  entries: EntryBits[],
  steps: Step[],
  cpl: 0 | 3 = 0,
  controls = { wp: true, nxe: true },
): PagingCase {
  return { id: `${family}/${id}`, family, controls, cpl, leaf, entries, steps };
}

const controlName = (c: { wp: boolean; nxe: boolean }) => `wp${c.wp ? 1 : 0}-nxe${c.nxe ? 1 : 0}`;

/**
 * Permissions (SDM Vol. 3 §4.6): each leaf size; all-permissive, then P, R/W or U/S cleared or XD set at one level;
 * every access kind at CPL 0 and 3 under each CR0.WP and EFER.NXE. Entries start with A and D clear.
 */
function pagingFamily(): Case[] {
  const out: Case[] = [];
  for (const leaf of LEAVES) {
    const base = permissive(leaf, false, false);
    const variants: [string, EntryBits[]][] = [['all', base]];
    levels(leaf).forEach((level, i) => {
      const name = LEVEL_NAME[level];
      variants.push([`${name}-not-present`, withBits(base, i, (v) => v & ~P)]);
      variants.push([`${name}-read-only`, withBits(base, i, (v) => v & ~RW)]);
      variants.push([`${name}-supervisor`, withBits(base, i, (v) => v & ~US)]);
      variants.push([
        `${name}-xd`,
        withBits(
          base,
          i,
          (v) => v,
          (v) => v | NX_HI,
        ),
      ]);
    });
    for (const [variant, entries] of variants) {
      for (const kind of KINDS) {
        for (const cpl of [0, 3] as const) {
          for (const wp of [false, true]) {
            for (const nxe of [false, true]) {
              const controls = { wp, nxe };
              const id = `${LEAF_NAME[leaf]}/${variant}/${kind}/cpl${cpl}/${controlName(controls)}`;
              out.push(pagingCase('paging', id, leaf, entries, [{ op: 'access', kind }], cpl, controls));
            }
          }
        }
      }
    }
  }
  return out;
}

/** Accessed and dirty flags (SDM §4.8): every pattern of A across the levels and D on the leaf, read and write. */
function accessedDirtyFamily(): Case[] {
  const out: Case[] = [];
  for (const leaf of LEAVES) {
    const count = 5 - leaf;
    for (let mask = 0; mask < 1 << count; mask++) {
      for (const dirty of [false, true]) {
        const entries = permissive(leaf, false, dirty).map(
          (e, i) => [(mask >> i) & 1 ? e[0] | A : e[0], e[1]] as EntryBits,
        );
        const pattern = entries.map((e) => (e[0] & A ? 'A' : '-')).join('');
        for (const kind of ['read', 'write'] as const) {
          for (const cpl of [0, 3] as const) {
            const id = `${LEAF_NAME[leaf]}/a-${pattern}/d${dirty ? 1 : 0}/${kind}/cpl${cpl}`;
            out.push(pagingCase('accessed-dirty', id, leaf, entries, [{ op: 'access', kind }], cpl));
          }
        }
      }
    }
  }
  return out;
}

/**
 * Reserved and ignored bits (SDM §4.5 Tables 4-14..4-20, §4.7): address bits at and above MAXPHYADDR (46), PS in a
 * PML4E, the must-be-zero low bits of 2 MiB and 1 GiB leaves; and bits the walk ignores (9, 11, 52, 58, 62 with
 * CR4.PKE clear). Every access kind at CPL 0 and 3, CR0.WP and EFER.NXE set.
 */
function reservedFamily(): Case[] {
  const out: Case[] = [];
  for (const leaf of LEAVES) {
    const base = permissive(leaf, false, false);
    levels(leaf).forEach((level, i) => {
      const bits: [string, number, number][] = [
        ['rsvd-bit46', 0, 1 << 14],
        ['rsvd-bit51', 0, 1 << 19],
        ['ignored-bit9', 1 << 9, 0],
        ['ignored-bit11', 1 << 11, 0],
        ['ignored-bit52', 0, 1 << 20],
        ['ignored-bit58', 0, 1 << 26],
        ['ignored-bit62', 0, 1 << 30],
      ];
      if (level === 4) bits.push(['rsvd-ps', PS, 0]);
      if (level === leaf && leaf === 2) bits.push(['rsvd-bit13', 1 << 13, 0], ['rsvd-bit20', 1 << 20, 0]);
      if (level === leaf && leaf === 3) {
        bits.push(['rsvd-bit13', 1 << 13, 0], ['rsvd-bit21', 1 << 21, 0], ['rsvd-bit29', 1 << 29, 0]);
      }
      if (level === leaf && leaf > 1) bits.push(['pat-bit12', 1 << 12, 0]);
      for (const [name, lo, hi] of bits) {
        const entries = withBits(
          base,
          i,
          (v) => v | lo,
          (v) => v | hi,
        );
        for (const kind of KINDS) {
          for (const cpl of [0, 3] as const) {
            const id = `${LEAF_NAME[leaf]}/${LEVEL_NAME[level]}-${name}/${kind}/cpl${cpl}`;
            out.push(pagingCase('reserved', id, leaf, entries, [{ op: 'access', kind }], cpl));
          }
        }
      }
    });
  }
  return out;
}

/**
 * TLB coherence (SDM §4.10.4): a translation cached by one access survives an entry change until INVLPG, a CR3
 * write (not for a global page with CR4.PGE), or a CR4.PGE toggle; a fault caches nothing. CPL 0, WP and NXE set.
 */
function tlbFamily(): Case[] {
  const out: Case[] = [];
  const access = (kind: AccessKind): Step => ({ op: 'access', kind });
  const flushes: [string, Step[]][] = [
    ['no-flush', []],
    ['invlpg', [{ op: 'invlpg' }]],
    ['reload-cr3', [{ op: 'reload-cr3' }]],
    ['toggle-pge', [{ op: 'toggle-pge' }]],
  ];
  for (const leaf of LEAVES) {
    for (const global of [false, true]) {
      const base = permissive(leaf, true, true, global);
      const leafIndex = base.length - 1;
      const g = global ? 'global' : 'local';
      // Entry changes after a cached translation: the leaf made not present, read-only, supervisor, XD; an upper
      // entry made not present.
      const changes: [string, number, EntryBits][] = [
        ['leaf-not-present', leafIndex, [base[leafIndex]![0] & ~P, 0]],
        ['leaf-read-only', leafIndex, [base[leafIndex]![0] & ~RW, 0]],
        ['leaf-xd', leafIndex, [base[leafIndex]![0], NX_HI]],
        ['pml4e-not-present', 0, [base[0]![0] & ~P, 0]],
      ];
      if (leafIndex > 1) changes.push(['upper-not-present', leafIndex - 1, [base[leafIndex - 1]![0] & ~P, 0]]);
      for (const [change, index, bits] of changes) {
        const level = levels(leaf)[index]!;
        for (const [flush, flushSteps] of flushes) {
          for (const first of ['read', 'write'] as const) {
            for (const then of KINDS) {
              const id = `${LEAF_NAME[leaf]}/${g}/${first}-then-${change}-${flush}-then-${then}`;
              const steps: Step[] = [access(first), { op: 'set-entry', level, bits }, ...flushSteps, access(then)];
              out.push(pagingCase('tlb', id, leaf, base, steps));
            }
          }
        }
      }
      // A fault caches nothing: not present, then present again with no flush, then the access succeeds.
      for (const kind of KINDS) {
        const id = `${LEAF_NAME[leaf]}/${g}/fault-then-present-then-${kind}`;
        const notPresent = withBits(base, leafIndex, (v) => v & ~P);
        const steps: Step[] = [access(kind), { op: 'set-entry', level: leaf, bits: base[leafIndex]! }, access(kind)];
        out.push(pagingCase('tlb', id, leaf, notPresent, steps));
      }
      // A read-only translation cached by a read, made writable: the write finds the new entry or faults
      // (SDM §4.10.4.3 allows either; both implementations are recorded).
      const readOnly = withBits(base, leafIndex, (v) => v & ~RW);
      for (const [flush, flushSteps] of flushes) {
        const id = `${LEAF_NAME[leaf]}/${g}/read-only-read-then-writable-${flush}-then-write`;
        const steps: Step[] = [
          access('read'),
          { op: 'set-entry', level: leaf, bits: base[leafIndex]! },
          ...flushSteps,
          access('write'),
        ];
        out.push(pagingCase('tlb', id, leaf, readOnly, steps));
      }
    }
  }
  return out;
}

type GateVariant = [name: string, gate: GateSpec];

/** Variants of the gate the trigger goes through. */
const FIRST_GATES: readonly GateVariant[] = [
  ['gate-default', {}],
  ['gate-trap', { type: 'trap' }],
  ['gate-ist2', { ist: 2 }],
  ['gate-dpl3', { dpl: 3 }],
  ['gate-not-present', { present: false }],
  ['gate-missing', { missing: true }],
  ['gate-selector-null', { selector: 0 }],
  ['gate-selector-code32', { selector: 0x08 }],
  ['gate-selector-data', { selector: 0x18 }],
  ['gate-selector-user-code', { selector: 0x33 }],
  ['gate-selector-beyond-gdt', { selector: 0x80 }],
  ['gate-selector-ldt', { selector: 0x14 }],
];

const TRIGGERS: readonly [string, Trigger, vector: number][] = [
  ['pf', { kind: 'page-fault' }, 14],
  ['gp', { kind: 'general-protection' }, 13],
  // A push whose write is non-canonical (#SS), one from the hole's first address whose write is the canonical
  // 0x00007ffffffffff8 (#PF), and one from the upper half's first address whose write is non-canonical (#SS).
  ['ss', { kind: 'push', rsp: '0000800000000008' }, 12],
  ['push-hole', { kind: 'push', rsp: '0000800000000000' }, 14],
  ['push-upper', { kind: 'push', rsp: 'ffff800000000000' }, 12],
  ['int3', { kind: 'int', vector: 3 }, 3],
  ['int14', { kind: 'int', vector: 14 }, 14],
  ['int0x80', { kind: 'int', vector: 0x80 }, 0x80],
  // External events, sent by the CPU to itself: their faults carry EXT (SDM §6.13).
  ['ipi0x80', { kind: 'self-ipi', vector: 0x80, nmi: false }, 0x80],
  ['nmi', { kind: 'self-ipi', vector: 2, nmi: true }, 2],
];

/**
 * Exception delivery (SDM Vol. 3 §6.12-6.15, Table 6-5): each trigger at CPL 0 and 3 through each gate variant,
 * with the stack it would use good, not present, read-only or non-canonical, and the frame's alignment; then the
 * second-level failures: the gate of the second exception not present, #DF's gate not present or its IST stack
 * not present (shutdown).
 */
function deliveryFamily(): Case[] {
  const out: Case[] = [];
  const add = (id: string, c: Omit<DeliveryCase, 'id' | 'family'>) =>
    out.push({ id: `delivery/${id}`, family: 'delivery', ...c });
  for (const [tname, trigger, vector] of TRIGGERS) {
    for (const cpl of [0, 3] as const) {
      // RSP is loaded, and the local APIC written, by kernel code.
      if ((trigger.kind === 'push' || trigger.kind === 'self-ipi') && cpl === 3) continue;
      for (const [gname, gate] of FIRST_GATES) {
        if (tname === 'push-upper' && gname !== 'gate-default') continue;
        // The stack the first delivery would use.
        const stack = gate.ist ? (`ist${gate.ist}` as const) : cpl === 3 ? 'rsp0' : 'current';
        const states: (StackState | 'ok')[] = ['ok', 'not-present', 'read-only'];
        if (stack !== 'current') states.push('non-canonical');
        // A gate to a DPL 3 code segment from CPL 3 switches no stack: only 'ok' says anything (and the oracle's
        // CPL 3 handler returns to the harness through RSP0, which must work).
        if (cpl === 3 && gate.selector === 0x33) states.length = 1;
        for (const state of states) {
          for (const rspOffset of state === 'ok' && gname === 'gate-default' ? [0, 8] : [0]) {
            const stacks = state === 'ok' ? {} : { [stack]: state };
            const id = `${tname}/cpl${cpl}/${gname}/${stack}-${state}${rspOffset ? '/rsp-8' : ''}`;
            add(id, { cpl, trigger, gates: { [vector]: gate }, stacks, rspOffset });
          }
        }
      }
      // Second level: the trigger's gate is not present (#NP) or its stack not present (#PF); then the gate of
      // that second exception not present, or #DF's gate or IST stack not present.
      const seconds: [string, Readonly<Record<number, GateSpec>>, DeliveryCase['stacks']][] = [
        ['np-gate-not-present', { [vector]: { present: false }, 11: { present: false } }, {}],
        ['np-gate-missing', { [vector]: { present: false }, 11: { missing: true } }, {}],
        ['gp-gate-not-present', { [vector]: { selector: 0 }, 13: { present: false } }, {}],
        [
          'np-then-df-gate-not-present',
          { [vector]: { present: false }, 11: { present: false }, 8: { present: false } },
          {},
        ],
        [
          'np-then-df-ist1-not-present',
          { [vector]: { present: false }, 11: { present: false } },
          { ist1: 'not-present' },
        ],
        ['np-on-ist3', { [vector]: { present: false }, 11: { ist: 3 } }, {}],
        ['np-ist3-not-present', { [vector]: { present: false }, 11: { ist: 3 } }, { ist3: 'not-present' }],
        ['pf-stack-then-df-gate-not-present', { [vector]: { ist: 2 }, 8: { present: false } }, { ist2: 'not-present' }],
        ['pf-stack-then-df-ist1-not-present', { [vector]: { ist: 2 } }, { ist2: 'not-present', ist1: 'not-present' }],
        [
          'pf-stack-then-df-ist1-non-canonical',
          { [vector]: { ist: 2 } },
          { ist2: 'not-present', ist1: 'non-canonical' },
        ],
        ['pf-stack-then-df-on-ist3', { [vector]: { ist: 2 }, 8: { ist: 3 } }, { ist2: 'not-present' }],
        [
          'pf-stack-then-pf-gate-not-present',
          { [vector]: { ist: 2 }, 14: { present: false } },
          { ist2: 'not-present' },
        ],
      ];
      for (const [sname, gates, stacks] of tname === 'push-upper' ? [] : seconds) {
        if (sname.startsWith('pf-stack') && vector === 14) continue; // the #PF gate is the trigger's own
        const g = cpl === 3 && trigger.kind === 'int' ? withDpl3(gates, vector) : gates;
        add(`${tname}/cpl${cpl}/${sname}`, { cpl, trigger, gates: g, stacks, rspOffset: 0 });
      }
    }
  }
  return out;
}

/**
 * IRETQ from CPL 0 (SDM Vol. 2 IRET, IA-32e mode): every pairing of a CS and an SS selector a kernel might get
 * wrong (RPL and DPL mismatches, data for code and code for data, null, the LDT, beyond the GDT), to user code or
 * to a non-canonical RIP. The 32-bit user CS (0x23, compatibility mode) is left out: the model has 64-bit mode only.
 */
function iretFamily(): Case[] {
  const out: Case[] = [];
  const selectors = {
    cs: [0x33, 0x30, 0x13, 0x2b, 0x83, 0x3, 0x37],
    ss: [0x2b, 0x28, 0x18, 0x0, 0x33, 0x2f],
  };
  const h = (n: number) => `0x${n.toString(16)}`;
  for (const cs of selectors.cs) {
    for (const ss of selectors.ss) {
      for (const rip of ['user', 'non-canonical'] as const) {
        out.push({
          id: `delivery/iret/cs-${h(cs)}/ss-${h(ss)}/rip-${rip}`,
          family: 'delivery',
          cpl: 0,
          trigger: { kind: 'iret', cs, ss, rip },
          gates: {},
          stacks: {},
          rspOffset: 0,
        });
      }
    }
  }
  return out;
}

/** INT n from CPL 3 needs DPL 3 on its gate to get past the privilege check. */
function withDpl3(gates: Readonly<Record<number, GateSpec>>, vector: number): Record<number, GateSpec> {
  return { ...gates, [vector]: { ...gates[vector], dpl: 3 } };
}

/** Every case, in recording order. Ids are unique (checked by the suite). */
export function generateCases(): Case[] {
  return [
    ...pagingFamily(),
    ...accessedDirtyFamily(),
    ...reservedFamily(),
    ...tlbFamily(),
    ...deliveryFamily(),
    ...iretFamily(),
  ];
}

export const FAMILIES = ['paging', 'accessed-dirty', 'reserved', 'tlb', 'delivery'] as const;

export { LAYOUT };
