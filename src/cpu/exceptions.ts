// Exception vectors and their classes as data (SDM Vol. 3 §6.15 and Table 6-5; Bochs cpu/exception.cc keeps the
// same shape: a per-vector record plus a class-pair matrix). Adding a vector is one row.

export type ExceptionClass = 'benign' | 'contributory' | 'page-fault' | 'double-fault';
export type ExceptionKind = 'fault' | 'trap' | 'abort' | 'interrupt';

export interface VectorInfo {
  readonly vector: number;
  readonly mnemonic: string;
  readonly cls: ExceptionClass;
  readonly kind: ExceptionKind;
  readonly errorCode: boolean;
}

const row = (vector: number, mnemonic: string, cls: ExceptionClass, kind: ExceptionKind, errorCode: boolean) =>
  ({ vector, mnemonic, cls, kind, errorCode }) as const;

/** Architectural exceptions 0-21 (SDM Table 6-1); classes per Table 6-4, #VE is a page-fault class, #CP contributory. */
export const EXCEPTIONS: readonly VectorInfo[] = [
  row(0, '#DE', 'contributory', 'fault', false),
  row(1, '#DB', 'benign', 'trap', false),
  row(2, 'NMI', 'benign', 'interrupt', false),
  row(3, '#BP', 'benign', 'trap', false),
  row(4, '#OF', 'benign', 'trap', false),
  row(5, '#BR', 'benign', 'fault', false),
  row(6, '#UD', 'benign', 'fault', false),
  row(7, '#NM', 'benign', 'fault', false),
  row(8, '#DF', 'double-fault', 'abort', true),
  row(9, 'CSO', 'benign', 'abort', false),
  row(10, '#TS', 'contributory', 'fault', true),
  row(11, '#NP', 'contributory', 'fault', true),
  row(12, '#SS', 'contributory', 'fault', true),
  row(13, '#GP', 'contributory', 'fault', true),
  row(14, '#PF', 'page-fault', 'fault', true),
  row(15, 'reserved', 'benign', 'fault', false),
  row(16, '#MF', 'benign', 'fault', false),
  row(17, '#AC', 'benign', 'fault', true),
  row(18, '#MC', 'benign', 'abort', false),
  row(19, '#XM', 'benign', 'fault', false),
  row(20, '#VE', 'page-fault', 'fault', false),
  row(21, '#CP', 'contributory', 'fault', true),
];

export const VECTOR = { DE: 0, NMI: 2, DF: 8, TS: 10, NP: 11, SS: 12, GP: 13, PF: 14 } as const;

/** Vectors 32-255 are external interrupts (benign, no error code). */
export function vectorInfo(vector: number): VectorInfo {
  return EXCEPTIONS[vector] ?? row(vector, `INT${vector}`, 'benign', 'interrupt', false);
}

export function vectorName(vector: number): string {
  return vectorInfo(vector).mnemonic;
}

/** What happens when `second` is raised while delivering `first`. */
export type Escalation = 'serial' | 'double-fault' | 'triple-fault';

/**
 * SDM Vol. 3 Table 6-5 ("Conditions for Generating a Double Fault"), extended with the #DF row of §6.15
 * (interrupt 8): a contributory or page fault while delivering #DF is a triple fault (shutdown).
 * Rows: class of the first event; columns: class of the second.
 */
export const ESCALATION: Readonly<Record<ExceptionClass, Readonly<Record<ExceptionClass, Escalation>>>> = {
  benign: { benign: 'serial', contributory: 'serial', 'page-fault': 'serial', 'double-fault': 'serial' },
  contributory: {
    benign: 'serial',
    contributory: 'double-fault',
    'page-fault': 'serial',
    'double-fault': 'serial',
  },
  'page-fault': {
    benign: 'serial',
    contributory: 'double-fault',
    'page-fault': 'double-fault',
    'double-fault': 'serial',
  },
  'double-fault': {
    benign: 'serial',
    contributory: 'triple-fault',
    'page-fault': 'triple-fault',
    'double-fault': 'triple-fault',
  },
};

export function escalate(first: number, second: number): Escalation {
  return ESCALATION[vectorInfo(first).cls][vectorInfo(second).cls];
}
