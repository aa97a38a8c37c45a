import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ESCALATION,
  type Escalation,
  type ExceptionClass,
  escalate,
  VECTOR,
  vectorInfo,
  vectorName,
} from '../../src/cpu/exceptions.ts';

// The oracle is written from the reference digest (section 4), not from the model's table:
// classes: benign = 1-7, 9, 16-19, INTR, INT n; contributory = 0, 10-13 (and #CP 21); page faults = 14, 20.
// Table 6-5: contributory + contributory -> #DF; #PF + contributory or #PF -> #DF; every other pair serial.
// §6.15 interrupt 8: a contributory or page fault while delivering #DF -> triple fault (shutdown).

const CLASSES: readonly ExceptionClass[] = ['benign', 'contributory', 'page-fault', 'double-fault'];
const CONTRIBUTORY = [0, 10, 11, 12, 13, 21];
const PAGE_FAULTS = [14, 20];
const BENIGN = [1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 32, 0xf0, 0xff];

function classOf(vector: number): ExceptionClass {
  if (vector === 8) return 'double-fault';
  if (CONTRIBUTORY.includes(vector)) return 'contributory';
  if (PAGE_FAULTS.includes(vector)) return 'page-fault';
  return 'benign';
}

function sdmTable65(first: ExceptionClass, second: ExceptionClass): Escalation {
  if (first === 'double-fault') return second === 'benign' ? 'serial' : 'triple-fault';
  if (first === 'contributory' && second === 'contributory') return 'double-fault';
  if (first === 'page-fault' && (second === 'contributory' || second === 'page-fault')) return 'double-fault';
  return 'serial';
}

const PAIRS = CLASSES.flatMap((first) =>
  CLASSES.map((second) => ({ first, second, expected: sdmTable65(first, second) })),
);

describe('SDM Table 6-5 as data (ESCALATION)', () => {
  it.each(PAIRS.map((p) => [p.second, p.first, p.expected] as const))(
    'a %s exception raised while delivering a %s one is handled as: %s',
    (second, first, expected) => {
      expect(ESCALATION[first][second]).toBe(expected);
    },
  );

  it('the table has a row and a column for every exception class and nothing else', () => {
    expect(Object.keys(ESCALATION).sort()).toEqual([...CLASSES].sort());
    for (const first of CLASSES) expect(Object.keys(ESCALATION[first]).sort()).toEqual([...CLASSES].sort());
  });

  it('only a contributory or page fault on top of a contributory or page fault makes a #DF', () => {
    const doubleFaults = PAIRS.filter((p) => p.expected === 'double-fault').map((p) => `${p.first}+${p.second}`);
    expect(doubleFaults.sort()).toEqual(
      ['contributory+contributory', 'page-fault+contributory', 'page-fault+page-fault'].sort(),
    );
  });
});

describe('vector classes (SDM Table 6-4)', () => {
  it.each(CONTRIBUTORY)('vector %i is contributory', (v) => expect(vectorInfo(v).cls).toBe('contributory'));
  it.each(PAGE_FAULTS)('vector %i is in the page-fault class', (v) => expect(vectorInfo(v).cls).toBe('page-fault'));
  it.each(BENIGN)('vector %i is benign', (v) => expect(vectorInfo(v).cls).toBe('benign'));

  it('#DF is its own class, an abort with an error code', () => {
    expect(vectorInfo(VECTOR.DF)).toMatchObject({ cls: 'double-fault', kind: 'abort', errorCode: true });
  });

  it('exactly #DF, #TS, #NP, #SS, #GP, #PF, #AC and #CP push an error code', () => {
    const withCode = Array.from({ length: 256 }, (_, v) => v).filter((v) => vectorInfo(v).errorCode);
    expect(withCode).toEqual([8, 10, 11, 12, 13, 14, 17, 21]);
  });

  it('names architectural vectors by mnemonic and external ones by number', () => {
    expect([0, 2, 8, 12, 13, 14].map(vectorName)).toEqual(['#DE', 'NMI', '#DF', '#SS', '#GP', '#PF']);
    expect(vectorName(0xf0)).toBe('INT240');
    expect(vectorInfo(0xf0)).toMatchObject({ cls: 'benign', kind: 'interrupt', errorCode: false });
  });
});

describe('escalate(first, second) over vectors', () => {
  it('agrees with Table 6-5 for every pair of vectors 0..255', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), (first, second) => {
        expect(escalate(first, second)).toBe(sdmTable65(classOf(first), classOf(second)));
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['#GP', VECTOR.GP, '#PF', VECTOR.PF, 'serial'],
    ['#PF', VECTOR.PF, '#PF', VECTOR.PF, 'double-fault'],
    ['#PF', VECTOR.PF, '#GP', VECTOR.GP, 'double-fault'],
    ['#GP', VECTOR.GP, '#NP', VECTOR.NP, 'double-fault'],
    ['#SS', VECTOR.SS, '#SS', VECTOR.SS, 'double-fault'],
    ['an IPI', 0xf0, '#PF', VECTOR.PF, 'serial'],
    ['NMI', VECTOR.NMI, '#GP', VECTOR.GP, 'serial'],
    ['#DF', VECTOR.DF, '#PF', VECTOR.PF, 'triple-fault'],
    ['#DF', VECTOR.DF, '#GP', VECTOR.GP, 'triple-fault'],
    ['#DF', VECTOR.DF, 'an IPI', 0xf0, 'serial'],
  ] as const)('%s then %s during its delivery: %s', (_a, first, _b, second, expected) => {
    expect(escalate(first, second)).toBe(expected);
  });
});
