// Bad input at every entry point (the rule in src/mmu/input-error.ts and docs/guide.md "Errors"): every value a
// caller passes is checked where it enters and refused with an InputError naming the value, where it came from and
// the rule it breaks; formatting that message never throws; a refused call changes nothing. Instruction operands
// are refused from the program's own `yield`, which stops that CPU (outcome 'assertion') and propagates, and a
// later run() never resumes the program after the refused instruction.
//
// Every table below is a module-level const array; the last test adds up the rows (and the fast-check runs) and
// prints "bad inputs tried: N".
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { Assembler, type Program } from '../../src/cpu/assembler.ts';
import { Instruction, MSR, OP } from '../../src/cpu/instruction.ts';
import { type GateInit, SELECTOR } from '../../src/cpu/registers.ts';
import { Machine } from '../../src/machine/machine.ts';
import { parseSchedule, parseScheduleRuns } from '../../src/machine/schedule.ts';
import { InputError as AddressInputError, formatVirtual, PAGE_SIZE, toVirtual } from '../../src/mmu/address.ts';
import { describeValue, InputError } from '../../src/mmu/input-error.ts';

// Fixture -------------------------------------------------------------------------------------------------------

/** A mapped, writable kernel data page whose first 8 bytes hold PROBE. */
const DATA = toVirtual(0xffff_c900_0100_0000n);
/** A page no mapping covers (its page table does not exist yet either). */
const FREE = toVirtual(0xffff_c900_0200_0000n);
const PROBE = 0x5a5a_1234;
/** A gate every fixture machine has on CPU 0, so a refused setGate/clearGate can be seen to leave it. */
const GATE_VECTOR = 0x80;
const handler: Program = function* (x) {
  yield x.eoi();
};
const GOOD_GATE: GateInit = { handler, ist: 0, type: 'interrupt' };
/** Messages never show what String() makes of an object. */
const GARBAGE = /\[object \w+\]/;

const pauses: Program = function* (x) {
  for (let i = 0; i < 4; i++) yield x.pause();
};

function namedFunction(): number {
  return 1;
}
class NotAProgram {}
const revoked = (): object => {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
};
const throwingToString = () => ({
  toString(): string {
    throw new Error('toString was called');
  },
});

/** A booted 2-CPU machine: DATA mapped and holding PROBE, a gate at GATE_VECTOR on CPU 0, optionally programs. */
function machine(programs = true): Machine {
  const m = Machine.create({ cpus: 2 });
  m.map(DATA, { writable: true });
  m.memory.write64(m.physicalAddress(DATA)!, PROBE);
  m.cpu(0).setGate(GATE_VECTOR, GOOD_GATE);
  if (programs) {
    m.load(0, pauses);
    m.load(1, pauses);
  }
  return m;
}

/** Everything a refused call must leave as it was. */
function fingerprint(m: Machine) {
  return {
    snapshot: m.snapshot(),
    trace: m.trace.length,
    firstStop: m.firstStop,
    probe: m.memory.read64(m.physicalAddress(DATA)!),
    free: m.physicalAddress(FREE),
    frames: m.boot?.frames.used,
    gates: m.cpus.map((c) => c.idt[GATE_VECTOR]),
    started: m.cpus.map((c) => c.started),
    builds: m.cpus.map((c) => [c.asm.builds, c.asm.consumed]),
  };
}

/** What `f` threw, or NOTHING. */
const NOTHING = Symbol('nothing thrown');
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  return NOTHING;
}

/** `error` is an InputError whose message names `shown` (when given), matches `rule`, and holds no garbage. */
function expectInputError(error: unknown, rule: RegExp, shown?: string): InputError {
  if (!(error instanceof InputError)) {
    throw new Error(
      `expected an InputError, got ${error === NOTHING ? 'no error' : describeValue(error)} instead: ${String((error as Error)?.message)}`,
    );
  }
  expect(error.name).toBe('InputError');
  expect(error.message).toMatch(rule);
  if (shown !== undefined) expect(error.message).toContain(shown);
  expect(error.message).not.toMatch(GARBAGE);
  return error;
}

/** Calls `call` on `m`, expects it refused, and expects `m` unchanged by it. */
function expectRefused(m: Machine, call: (m: Machine) => unknown, rule: RegExp, shown?: string): InputError {
  const before = fingerprint(m);
  const error = expectInputError(
    thrown(() => call(m)),
    rule,
    shown,
  );
  expect(fingerprint(m)).toEqual(before);
  return error;
}

/** The machine still works after a refusal: both CPUs step their programs, and DATA can be written. */
function expectUsable(m: Machine): void {
  expect(m.step(1)?.op).toBe('pause');
  expect(m.step(0)?.op).toBe('pause');
  expect(m.memory.read64(m.physicalAddress(DATA)!)).toBe(PROBE);
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Runs `bad` as the second instruction of CPU 0's program (CPU 1 runs pauses) and checks what a failed instruction
 * must do: run() throws, `check` accepts the error, CPU 0 is stopped with outcome 'assertion' and a message naming
 * the error, the program never continued past the bad yield, a second run() does not resume it, and CPU 1 still
 * steps. Returns the error.
 */
function expectProgramStops(bad: (x: Assembler, m: Machine) => unknown, check: (error: unknown) => void): unknown {
  const m = machine(false);
  let reached = 0;
  let after = 0;
  m.load(0, function* (x) {
    yield x.pause();
    reached++;
    yield bad(x, m) as Instruction;
    after++;
    yield x.pause();
  });
  m.load(1, pauses);
  const error = thrown(() => m.run({ schedule: '0,0,0,0' }));
  expect(error).not.toBe(NOTHING);
  check(error);
  expect(reached).toBe(1);
  expect(after).toBe(0);
  const cpu = m.cpu(0);
  expect(cpu.state).toBe('stopped');
  expect(cpu.stopEvent?.outcome).toBe('assertion');
  const named = error instanceof Error ? error.message : describeValue(error);
  expect(cpu.stopEvent?.message).toContain(named);
  const steps = m.stepCount; // 2, or more when the failure is inside a callee
  expect(m.outcome).toBe('assertion');
  // The next run does not resume the program after the failed instruction.
  expect(m.run()).toMatchObject({ outcome: 'assertion', steps: 0, stop: { cpu: 0, step: steps - 1 } });
  expect(m.stepCount).toBe(steps);
  expect(after).toBe(0);
  expectInputError(
    thrown(() => m.step(0)),
    /^CPU 0 cannot step: it is stopped \(assertion: /,
  );
  expect(after).toBe(0);
  expect(m.memory.read64(m.physicalAddress(DATA)!)).toBe(PROBE);
  // The other CPU is untouched and still steps.
  expect(m.step(1)?.op).toBe('pause');
  expect(m.cpu(1).state).toBe('running');
  return error;
}

// 1. Machine.create ----------------------------------------------------------------------------------------------

interface ConfigRow {
  readonly label: string;
  readonly config: unknown;
  readonly rule: RegExp;
  readonly shown?: string;
}

const CPUS_RULE = /^cpus .+ is impossible: a machine has 1\.\.64 CPUs$/;
const MEMORY_RULE = /^memory size .+ must be a positive multiple of the page size \(4096\)$/;
const ENTRIES_RULE = /^TLB entries .+ must be a power of two in 1\.\.65536/;
const WAYS_RULE = /^TLB ways .+ must be a power of two no larger than entries \(\d+\)$/;
const LARGE_RULE = /^TLB largeEntries .+ must be an integer in 0\.\.255$/;
const TLB_OBJECT_RULE = /^Machine\.create option tlb .+ must be an object$/;
const OPTIONS_RULE = /^Machine\.create options .+ must be an object$/;
const UNKNOWN_OPTION_RULE =
  /^Machine\.create options has an unknown option .+; known options: cpus, memory, tlb, trace, traceLimit, footprint, boot, ipiDelivery, kernel, storeBuffer, pagingStructureCaches$/;

/** Values that are no integer of any range. */
const NOT_INTEGERS: readonly unknown[] = [
  1.5,
  -0.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  '2',
  '0x40',
  2n,
  null,
  true,
  {},
  [],
  [2],
  Object.create(null),
  Symbol('n'),
  namedFunction,
  new Date(0),
];
/** As NOT_INTEGERS without null, which NULL_ROWS tries on these options on its own. */
const NOT_INTEGERS_OR_NULL = NOT_INTEGERS.filter((v) => v !== null);
const NOT_BOOLEANS: readonly unknown[] = [
  0,
  1,
  'true',
  'false',
  '',
  null,
  Number.NaN,
  1n,
  {},
  [],
  Object.create(null),
  Symbol('b'),
];

const CREATE_ROWS: readonly ConfigRow[] = [
  ...[0, -1, 65, 128, 2 ** 32, 2 ** 53, ...NOT_INTEGERS_OR_NULL].map((cpus) => ({
    label: `cpus ${describeValue(cpus)}`,
    config: { cpus },
    rule: CPUS_RULE,
    shown: describeValue(cpus),
  })),
  ...[0, -4096, 4095, 4097, 1000, 2 ** 60, 2 ** 64, ...NOT_INTEGERS_OR_NULL].map((memory) => ({
    label: `memory ${describeValue(memory)}`,
    config: { memory },
    rule: MEMORY_RULE,
    shown: describeValue(memory),
  })),
  ...[2 ** 46 + PAGE_SIZE, 2 ** 47, 2 ** 52].map((memory) => ({
    label: `memory ${memory} beyond 64 TiB`,
    config: { memory },
    rule: /^memory 0x[0-9a-f]+ is impossible: at most 64 TiB \(2\^46 bytes\)/,
    shown: `0x${memory.toString(16)}`,
  })),
  ...[PAGE_SIZE, 1024 * 1024, 4 * 1024 * 1024 - PAGE_SIZE].map((memory) => ({
    label: `memory ${memory} too small to boot`,
    config: { memory },
    rule: /^memory of \d+ bytes is too small to boot: the minimal boot needs 4 MiB$/,
    shown: String(memory),
  })),
  ...[null, 5, 'big', [], true, namedFunction, Symbol('t')].map((tlb) => ({
    label: `tlb ${describeValue(tlb)}`,
    config: { tlb },
    rule: TLB_OBJECT_RULE,
    shown: describeValue(tlb),
  })),
  ...[3 * 2 ** 32, 2 ** 32, 0, 3, 48, -64, 2 ** 17, 2 ** 53, ...NOT_INTEGERS_OR_NULL].map((entries) => ({
    label: `tlb.entries ${describeValue(entries)}`,
    config: { tlb: { entries } },
    rule: ENTRIES_RULE,
    shown: describeValue(entries),
  })),
  ...[0, 3, 128, 3 * 2 ** 32, -4, ...NOT_INTEGERS_OR_NULL].map((ways) => ({
    label: `tlb.ways ${describeValue(ways)}`,
    config: { tlb: { ways } },
    rule: WAYS_RULE,
    shown: describeValue(ways),
  })),
  ...[-1, 256, 2 ** 32, ...NOT_INTEGERS_OR_NULL].map((largeEntries) => ({
    label: `tlb.largeEntries ${describeValue(largeEntries)}`,
    config: { tlb: { largeEntries } },
    rule: LARGE_RULE,
    shown: describeValue(largeEntries),
  })),
  ...['size', 'entry', 'Entries', '__proto__', 'largeentries'].map((key) => ({
    label: `tlb unknown key ${key}`,
    config: { tlb: { [key]: 64 } },
    rule: /^Machine\.create option tlb has an unknown option '.+'; known options: entries, ways, largeEntries$/,
    shown: `'${key}'`,
  })),
  ...[0, -1, 2 ** 53, ...NOT_INTEGERS_OR_NULL].map((traceLimit) => ({
    label: `traceLimit ${describeValue(traceLimit)}`,
    config: { traceLimit },
    rule: /^Machine\.create option traceLimit .+ must be an integer >= 1 \(the events the trace keeps; omit it for no limit\)$/,
    shown: describeValue(traceLimit),
  })),
  ...(['trace', 'footprint', 'boot'] as const).flatMap((key) =>
    NOT_BOOLEANS.map((value) => ({
      label: `${key} ${describeValue(value)}`,
      config: { [key]: value },
      rule: new RegExp(`^Machine\\.create option ${key} .+ must be true or false$`),
      shown: describeValue(value),
    })),
  ),
  ...['cpu', 'CPUs', 'memorySize', 'tlbs', 'traces', 'seed', '__proto__', 'constructor', ''].map((key) => ({
    label: `unknown option '${key}'`,
    config: { [key]: 1 },
    rule: UNKNOWN_OPTION_RULE,
    shown: `'${key}'`,
  })),
  {
    label: 'a symbol key',
    config: { [Symbol('cpus')]: 2 },
    rule: UNKNOWN_OPTION_RULE,
    shown: 'Symbol(cpus)',
  },
  ...[null, 5, 'cpus=2', [], [2], true, 2n, namedFunction, Symbol('c')].map((config) => ({
    label: `config ${describeValue(config)}`,
    config,
    rule: OPTIONS_RULE,
    shown: describeValue(config),
  })),
];

describe('Machine.create options', () => {
  it.each(CREATE_ROWS)('refuses $label', ({ config, rule, shown }) => {
    expectInputError(
      thrown(() => Machine.create(config as never)),
      rule,
      shown,
    );
  });

  it('the limits themselves are fine: 1 and 64 CPUs, 64 TiB of sparse memory, a 65536-entry TLB', () => {
    expect(Machine.create({ cpus: 1 }).cpus).toHaveLength(1);
    expect(Machine.create({ cpus: 64, boot: false, memory: PAGE_SIZE }).cpus).toHaveLength(64);
    expect(Machine.create({ memory: 2 ** 46 }).memory.size).toBe(2 ** 46);
    expect(Machine.create({ cpus: 1, tlb: { entries: 65536, ways: 1, largeEntries: 0 } }).cpu(0).tlb.capacity).toBe(
      65536,
    );
  });

  it('InputError is one class, whether imported from input-error.ts or address.ts', () => {
    expect(AddressInputError).toBe(InputError);
    expect(thrown(() => Machine.create({ cpus: 0 }))).toBeInstanceOf(AddressInputError);
  });
});

// 2. map(va, flags) ----------------------------------------------------------------------------------------------

/** Values that are no address in any form, with how messages show them. */
const BAD_ADDRESSES: readonly (readonly [unknown, string])[] = [
  [1.5, '1.5'],
  [Number.NaN, 'NaN'],
  [-1, '-1'],
  [-4096, '-4096'],
  [Number.POSITIVE_INFINITY, 'Infinity'],
  [Number.NEGATIVE_INFINITY, '-Infinity'],
  [2 ** 49, '562949953421312'],
  [2 ** 53, '9007199254740992'],
  [Number.MAX_VALUE, String(Number.MAX_VALUE)],
  ['', "''"],
  ['zz', "'zz'"],
  ['0xg000', "'0xg000'"],
  ['-0x1000', "'-0x1000'"],
  ['0x', "'0x'"],
  ['1.5', "'1.5'"],
  ['0x10000000000000000', '0x10000000000000000'],
  [2n ** 64n, '0x10000000000000000'],
  [-1n, '-0x1'],
  [-(2n ** 64n), '-0x10000000000000000'],
  [null, 'null'],
  [undefined, 'undefined'],
  [true, 'true'],
  [{}, 'an object'],
  [[], 'an array of length 0'],
  [[0x1000], 'an array of length 1'],
  [Object.create(null), 'an object with no prototype'],
  [Symbol('va'), 'Symbol(va)'],
  [new Date(0), 'a Date'],
  [namedFunction, 'function namedFunction'],
];
const ADDRESS_RULE =
  /(is not a virtual address: numbers must be integers in 0\.\.2\^48-1|is not an address: pass a number \(model form\), a bigint or a hex string|is not a number: write it in hex|does not fit in 64 bits)/;

interface MachineRow {
  readonly label: string;
  readonly call: (m: Machine) => unknown;
  readonly rule: RegExp;
  readonly shown?: string;
}

/** Sites that take a virtual address, with the name their messages give it. */
const ADDRESS_SITES: readonly (readonly [string, string, (m: Machine, va: never) => unknown])[] = [
  ['map', 'map() address', (m, va) => m.map(va)],
  ['evictTlb', 'evictTlb address', (m, va) => m.evictTlb(0, va)],
  ['fillTlb', 'fillTlb address', (m, va) => m.fillTlb(0, va)],
  ['pteAddress', 'pteAddress() address', (m, va) => m.pteAddress(va)],
  ['entryAddress', 'entryAddress() address', (m, va) => m.entryAddress(va, 1)],
  ['physicalAddress', 'physicalAddress() address', (m, va) => m.physicalAddress(va)],
  ['toVirtual', 'address', (_m, va) => toVirtual(va)],
  ['a schedule TLB event', 'schedule entry 0 address', (m, va) => m.run({ schedule: [{ cpu: 0, tlb: 'evict', va }] })],
];

const ADDRESS_ROWS: readonly MachineRow[] = ADDRESS_SITES.flatMap(([site, where, call]) =>
  BAD_ADDRESSES.map(([va, shown]) => ({
    label: `${site}(${shown})`,
    call: (m: Machine) => call(m, va as never),
    rule: new RegExp(`^${escapeRegExp(where)} ${escapeRegExp(shown)} ${ADDRESS_RULE.source}`),
    shown,
  })),
);

const MAP_ADDRESS_ROWS: readonly MachineRow[] = [
  ...[
    0xffff_c900_0200_0001n,
    0xffff_c900_0200_0008n,
    0xffff_c900_0200_0800n,
    0xffff_c900_0200_0fffn,
    FREE + 1,
    FREE + 2048,
    0x1001,
  ].map((va) => ({
    label: `unaligned ${formatVirtual(toVirtual(va))}`,
    call: (m: Machine) => m.map(va),
    rule: /^map\(0x[0-9a-f]{16}\): the address must be canonical and 4 KiB aligned$/,
    shown: formatVirtual(toVirtual(va)),
  })),
  ...[0x0000_8000_0000_0000n, 0xffff_7fff_ffff_f000n, 0x1234_0000_0000_0000n, 0x8000_0000_0000_0000n, 2 ** 48].map(
    (va) => ({
      label: `non-canonical ${formatVirtual(toVirtual(va))}`,
      call: (m: Machine) => m.map(va),
      rule: /^map\(0x[0-9a-f]{16}\): the address must be canonical and 4 KiB aligned$/,
      shown: formatVirtual(toVirtual(va)),
    }),
  ),
  ...(
    [
      ['task stack 0 bottom', (m: Machine) => m.boot!.taskStacks[0]!.bottom],
      ['task stack 0 top page', (m: Machine) => m.boot!.taskStacks[0]!.top - PAGE_SIZE],
      ['task stack 1 bottom', (m: Machine) => m.boot!.taskStacks[1]!.bottom],
      ['#DF stack 0', (m: Machine) => m.boot!.doubleFaultStacks[0]!.bottom],
      ['NMI stack 1', (m: Machine) => m.boot!.nmiStacks[1]!.bottom],
      ['the direct map base 0xffff888000000000', () => 0xffff_8880_0000_0000n],
      ['a direct-map page inside a 2 MiB page', (m: Machine) => m.directMap(0x20_1000)],
      ['the direct map of a page table', (m: Machine) => m.directMap(m.pteAddress(DATA) & ~0xfff)],
      ['DATA, mapped by the fixture', () => DATA],
      ['DATA as a hex string', () => '0xffffc90001000000'],
      ['DATA as a bigint', () => 0xffff_c900_0100_0000n],
    ] as const
  ).map(([what, va]) => ({
    label: `already mapped: ${what}`,
    call: (m: Machine) => m.map(va(m) as never),
    rule: /^map\(0x[0-9a-f]{16}\): the address is already mapped \(to physical 0x[0-9a-f]+( by a 2 MiB page)?\); map\(\) never replaces a mapping$/,
  })),
];

const MAP_FLAG_ROWS: readonly MachineRow[] = [
  ...(['writable', 'user', 'global', 'noExecute'] as const).flatMap((flag) =>
    NOT_BOOLEANS.map((value) => ({
      label: `flag ${flag}: ${describeValue(value)}`,
      call: (m: Machine) => m.map(FREE, { [flag]: value } as never),
      rule: new RegExp(`^map\\(0xffffc90002000000\\) flag ${flag} .+ must be true or false$`),
      shown: describeValue(value),
    })),
  ),
  ...['writeable', 'present', 'executable', 'pageSize', 'nx', '__proto__', 'Writable', 'toString'].map((key) => ({
    label: `unknown flag ${key}`,
    call: (m: Machine) => m.map(FREE, { [key]: true } as never),
    rule: /^map\(0xffffc90002000000\) flags has an unknown option '.+'; known options: writable, user, global, noExecute, accessed, dirty$/,
    shown: `'${key}'`,
  })),
  ...[null, 5, 'rw', [], ['writable'], true, namedFunction, 1n, Symbol('f')].map((flags) => ({
    label: `flags ${describeValue(flags)}`,
    call: (m: Machine) => m.map(FREE, flags as never),
    rule: /^map\(0xffffc90002000000\) flags .+ must be an object$/,
    shown: describeValue(flags),
  })),
];

describe('map(va, flags)', () => {
  it.each([...MAP_ADDRESS_ROWS, ...MAP_FLAG_ROWS])('refuses $label, changing nothing', ({ call, rule, shown }) => {
    const m = machine();
    expectRefused(m, call, rule, shown);
    expect(m.physicalAddress(FREE)).toBeUndefined();
    expect(m.map(FREE, { writable: true })).toBe(FREE); // the same address maps fine afterwards
    expectUsable(m);
  });

  it('the live task stack is refused too, while a program is using it, and its contents survive', () => {
    const m = machine(false);
    m.load(0, function* (x) {
      yield x.push(0x1234);
      yield x.pause();
    });
    m.load(1, pauses);
    m.step(0);
    const rsp = m.cpu(0).regs.rsp;
    const page = rsp - (rsp % PAGE_SIZE);
    expectRefused(
      m,
      (mm) => mm.map(page),
      /^map\(0xffffc900000[0-9a-f]{5}\): the address is already mapped \(to physical 0x[0-9a-f]+\); map\(\) never/,
    );
    expect(m.memory.read64(m.physicalAddress(rsp)!)).toBe(0x1234);
    expect(m.step(0)?.op).toBe('pause');
  });

  it('a boot: false machine refuses map() and the other boot helpers, naming the need', () => {
    const m = Machine.create({ cpus: 1, boot: false });
    for (const call of [() => m.map(FREE), () => m.pteAddress(FREE), () => m.physicalAddress(FREE)]) {
      expectInputError(thrown(call), /needs a booted machine \(Machine\.create\(\{ boot: true \}\)\)$/);
    }
  });

  // map() counts the frames it needs (the leaf and every missing table) before it takes any, so a refused
  // call leaves the allocator where it was and a map() that needs only the frame left still works.
  it('a map() refused for lack of memory leaves the frame allocator where it was', () => {
    const m = Machine.create({ cpus: 1 });
    m.map(DATA, { writable: true });
    // Map pages after DATA until one frame is left, skipping page 2: its page table exists, so it needs one frame.
    for (let page = 3; m.boot!.frames.used < m.memory.size - PAGE_SIZE; page++) m.map(DATA + page * PAGE_SIZE);
    const used = m.boot!.frames.used;
    expectInputError(
      thrown(() => m.map(0x0000_1000_0000_0000n)), // needs three new tables and a frame
      /^map\(0x0000100000000000\): out of boot memory: it needs 4 frames and 1 are left/,
    );
    expect(m.boot!.frames.used).toBe(used);
    expect(m.map(DATA + 2 * PAGE_SIZE)).toBe(DATA + 2 * PAGE_SIZE); // needs only the frame that is left
  });
});

// 3. Addresses everywhere: map, TLB events, page-table helpers, toVirtual, schedule arrays -----------------------

describe('an address that is no address, at every site that takes one', () => {
  it.each(ADDRESS_ROWS)('$label is refused, naming the value and the address rule', ({ call, rule, shown }) => {
    const m = machine();
    expectRefused(m, call, rule, shown);
    expectUsable(m);
  });
});

// 4. load(id, program) / step(id) / cpu(id) ---------------------------------------------------------------------

/** CPU ids that do not exist on a 2-CPU machine (and how the message shows them). */
const BAD_CPU_IDS: readonly unknown[] = [
  2,
  3,
  64,
  -1,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  2 ** 53,
  '0',
  '1',
  'length',
  0n,
  null,
  undefined,
  true,
  {},
  [0],
  [],
  Symbol('cpu'),
  namedFunction,
];
const NO_CPU_RULE = /^CPU .+ does not exist: this machine has CPUs 0\.\.1$/;

const CPU_ID_ROWS: readonly MachineRow[] = (
  [
    ['step', (m: Machine, id: never) => m.step(id)],
    ['load', (m: Machine, id: never) => m.load(id, pauses)],
    ['cpu', (m: Machine, id: never) => m.cpu(id)],
    ['runnable', (m: Machine, id: never) => m.runnable(id)],
    ['evictTlb', (m: Machine, id: never) => m.evictTlb(id, DATA)],
    ['fillTlb', (m: Machine, id: never) => m.fillTlb(id, DATA)],
  ] as const
).flatMap(([site, call]) =>
  BAD_CPU_IDS.map((id) => ({
    label: `${site}(${describeValue(id)})`,
    call: (m: Machine) => call(m, id as never),
    rule: NO_CPU_RULE,
    shown: `CPU ${describeValue(id)} `,
  })),
);

/** Values that are not generator functions, for load(): refused there, and never run. */
const NOT_PROGRAMS_CALLABLE: readonly unknown[] = [
  () => 1,
  function plain() {
    return undefined;
  },
  async () => 1,
  async function* asyncGenerator() {},
  namedFunction,
  Math.max,
];
const NOT_PROGRAMS_VALUES: readonly unknown[] = [
  5,
  null,
  undefined,
  'function* (x) {}',
  {},
  [],
  Object.create(null),
  Symbol('p'),
  NotAProgram,
];

const LOAD_ROWS: readonly MachineRow[] = NOT_PROGRAMS_CALLABLE.map((program) => ({
  label: `load(0, ${describeValue(program)})`,
  call: (m: Machine) => m.load(0, program as never),
  rule: /^program .+ is not a generator function: write programs as function\* \(x\)/,
}));

describe('CPU ids and programs', () => {
  it.each(CPU_ID_ROWS)('$label is refused, naming the CPU and the range', ({ call, rule, shown }) => {
    const m = machine();
    expectRefused(m, call, rule, shown);
    expectUsable(m);
  });

  it.each(LOAD_ROWS)('$label is refused and the CPU stays free for a real program', ({ call, rule }) => {
    const m = machine(false);
    expectRefused(m, call, rule);
    expect(m.cpu(0).started).toBe(false);
    m.load(0, pauses);
    m.load(1, pauses);
    expectUsable(m);
  });

  it('loading a second program, or stepping a CPU with no program or a stopped one, is refused', () => {
    const m = machine(false);
    expectRefused(m, (mm) => mm.step(0), /^CPU 0 has no program: load one with machine\.load\(0, program\)$/);
    m.load(0, function* (x) {
      yield x.die('oops', 'BUG: first line\nsecond line');
    });
    expectRefused(
      m,
      (mm) => mm.load(0, pauses),
      /^CPU 0 already runs a program; start\(\) may be called once per CPU$/,
    );
    m.step(0);
    expectRefused(m, (mm) => mm.step(0), /^CPU 0 cannot step: it is stopped \(oops: BUG: first line\)$/);
  });

  // Machine.cpu() checks that `id` is an integer before it uses it as a key, so an id that cannot become one (an
  // object without a prototype, a revoked Proxy, an object whose toString throws) is an InputError too. Every entry
  // that takes a CPU id (step, load, cpu, runnable, evictTlb, fillTlb) goes through it.
  it.each([
    ['an object with no prototype', () => Object.create(null)],
    ['an object whose toString throws', throwingToString],
    ['a revoked Proxy', revoked],
  ])('step(%s) is refused with an InputError', (_what, id) => {
    const m = machine();
    expectRefused(m, (mm) => mm.step(id() as never), NO_CPU_RULE);
  });

  // load() checks that `program` is a generator function before calling it: a value that is not a function, or a
  // class, is an InputError.
  it.each(NOT_PROGRAMS_VALUES.map((program) => [describeValue(program), program]))(
    'load(0, %s) is refused with an InputError',
    (_what, program) => {
      const m = machine(false);
      expectRefused(m, (mm) => mm.load(0, program as never), /^program .+ is not a generator function/);
    },
  );

  // A plain function given to load() is refused without running; one that returns a generator object is refused
  // too, as x.call() refuses it (docs/guide.md: anything but a generator function is refused at load).
  it('load() refuses a plain function without calling it', () => {
    const m = machine(false);
    let calls = 0;
    const plain = () => {
      calls++;
      throw new RangeError('the program body ran');
    };
    expectRefused(m, (mm) => mm.load(0, plain as never), /is not a generator function/);
    expect(calls).toBe(0);
  });

  it('load() refuses an arrow function that returns a generator, as x.call() does', () => {
    const m = machine(false);
    const arrow = (x: Assembler) => pauses(x);
    expectInputError(
      thrown(() => new Assembler(0).call(arrow as never)),
      /is not a generator function/,
    );
    expectRefused(m, (mm) => mm.load(0, arrow as never), /is not a generator function/);
  });
});

// 5. run({ schedule, seed, maxSteps }) -----------------------------------------------------------------------------

const SCHEDULE_STRINGS: readonly (readonly [string, RegExp])[] = [
  ['x', /^malformed schedule token 'x': a schedule is a comma- or space-separated list of CPU ids/],
  ['0;1', /^malformed schedule token '0;1'/],
  ['-1', /^malformed schedule token '-1'/],
  ['+1', /^malformed schedule token '\+1'/],
  ['1*', /^malformed schedule token '1\*'/],
  ['*3', /^malformed schedule token '\*3'/],
  ['1*0', /^schedule token '1\*0': repeat count must be 1\.\.1000000$/],
  ['1*1000001', /^schedule token '1\*1000001': repeat count must be 1\.\.1000000$/],
  ['1*99999999', /^schedule token '1\*99999999': repeat count must be 1\.\.1000000$/],
  ['1*999999999', /^malformed schedule token '1\*999999999'/],
  ['12345678', /^malformed schedule token '12345678'/],
  ['0.5', /^malformed schedule token '0\.5'/],
  ['0*1.5', /^malformed schedule token '0\*1\.5'/],
  ['0x1', /^malformed schedule token '0x1'/],
  ['1e3', /^malformed schedule token '1e3'/],
  ['\u0661', /^malformed schedule token '\u0661'/],
  ['random2', /^malformed schedule token 'random2'/],
  ['Round-Robin', /^malformed schedule token 'Round-Robin'/],
  ['evict:0', /^malformed schedule token 'evict:0'/],
  ['evict:0:', /^malformed schedule token 'evict:0:'/],
  ['evict::0x1000', /^malformed schedule token 'evict::0x1000'/],
  ['evict:-1:0x1000', /^malformed schedule token 'evict:-1:0x1000'/],
  ['evict:12345678:0x1000', /^malformed schedule token 'evict:12345678:0x1000'/],
  ['flush:0:0xffffc90001000000', /^malformed schedule token 'flush:0:0xffffc90001000000'/],
  ['EVICT:0:0xffffc90001000000', /^malformed schedule token 'EVICT:0:0xffffc90001000000'/],
  ['evict:0:0xnothex', /^schedule token 'evict:0:0xnothex': address '0xnothex' is not a number/],
  ['evict:0:-4096', /^schedule token 'evict:0:-4096': address '-4096' is not a number/],
  ['evict:0:1.5', /^schedule token 'evict:0:1\.5': address '1\.5' is not a number/],
  ['fill:0:0x1ffffc90001000000', /^schedule token 'fill:0:0x1ffffc90001000000': address .+ does not fit in 64 bits/],
  ['fill:0:0x0000800000000000', /^schedule token 'fill:0:0x0000800000000000': .+ is not a canonical address/],
  ['evict:1:0x8000000000000000', /^schedule token 'evict:1:0x8000000000000000': .+ is not a canonical address/],
  [`0,${'x'.repeat(200)}`, /^malformed schedule token 'x{60}\.\.\.': /],
];
const SCHEDULE_CPU_STRINGS: readonly (readonly [string, RegExp])[] = [
  ['2', /^schedule entry 0 names CPU 2, which does not exist \(0\.\.1\)$/],
  ['0,7', /^schedule entry 1 names CPU 7, which does not exist \(0\.\.1\)$/],
  ['0*5,1*5,9999999', /^schedule entry 10 names CPU 9999999, which does not exist/],
  ['evict:5:0xffffc90001000000', /^schedule entry 0 names CPU 5, which does not exist/],
  ['0,fill:64:0xffffc90001000000', /^schedule entry 1 names CPU 64, which does not exist/],
  ['0*1000000,0*1000000,2', /^schedule entry 2000000 names CPU 2, which does not exist/],
];
const NOT_SCHEDULES: readonly unknown[] = [5, 0, true, {}, Object.create(null), 5n, namedFunction, new Date(0)];

const HOLE_ARRAY: unknown[] = [0];
HOLE_ARRAY[2] = 1; // index 1 is a hole

const SCHEDULE_ARRAYS: readonly (readonly [string, unknown[], RegExp])[] = [
  ['a hole', HOLE_ARRAY, /^schedule entry 1 is a hole: each entry is a CPU id, a TLB event/],
  ['all holes', new Array(3), /^schedule entry 0 is a hole/],
  ['null', [0, null], /^schedule entry 1 is null: each entry/],
  ['undefined', [undefined], /^schedule entry 0 is undefined: each entry/],
  ['a string id', ['0'], /^schedule entry 0 is '0': each entry/],
  ['a bigint id', [0n], /^schedule entry 0 is 0n: each entry/],
  ['a boolean', [true], /^schedule entry 0 is true: each entry/],
  ['a nested array', [[0]], /^schedule entry 0 is an array of length 1: each entry/],
  ['a symbol', [Symbol('s')], /^schedule entry 0 is Symbol\(s\): each entry/],
  ['a function', [namedFunction], /^schedule entry 0 is function namedFunction: each entry/],
  ['CPU -1', [-1], /^schedule entry 0 names CPU -1, which does not exist \(0\.\.1\)$/],
  ['CPU 2', [0, 1, 2], /^schedule entry 2 names CPU 2, which does not exist/],
  ['CPU 1.5', [1.5], /^schedule entry 0 names CPU 1\.5, which does not exist/],
  ['CPU NaN', [Number.NaN], /^schedule entry 0 names CPU NaN, which does not exist/],
  ['CPU Infinity', [Number.POSITIVE_INFINITY], /^schedule entry 0 names CPU Infinity, which does not exist/],
  ['an empty object', [{}], /^schedule entry 0 TLB event kind undefined must be one of 'evict', 'fill'$/],
  [
    'an object with no prototype',
    [Object.create(null)],
    /^schedule entry 0 TLB event kind undefined must be one of 'evict', 'fill'$/,
  ],
  ['kind flush', [{ cpu: 0, tlb: 'flush', va: DATA }], /^schedule entry 0 TLB event kind 'flush' must be one of/],
  ['kind Evict', [{ cpu: 0, tlb: 'Evict', va: DATA }], /^schedule entry 0 TLB event kind 'Evict' must be one of/],
  ['kind invlpg', [0, { cpu: 0, tlb: 'invlpg', va: DATA }], /^schedule entry 1 TLB event kind 'invlpg' must be/],
  ['kind 1', [{ cpu: 0, tlb: 1, va: DATA }], /^schedule entry 0 TLB event kind 1 must be one of/],
  ['no kind', [{ cpu: 0, va: DATA }], /^schedule entry 0 TLB event kind undefined must be one of/],
  ['no va', [{ cpu: 0, tlb: 'evict' }], /^schedule entry 0 address undefined is not an address/],
  ['no cpu', [{ tlb: 'fill', va: DATA }], /^schedule entry 0 names CPU undefined, which does not exist/],
  ['event CPU 5', [{ cpu: 5, tlb: 'evict', va: DATA }], /^schedule entry 0 names CPU 5, which does not exist/],
  ["event CPU '0'", [{ cpu: '0', tlb: 'evict', va: DATA }], /^schedule entry 0 names CPU '0', which does not exist/],
  ['event CPU -1', [{ cpu: -1, tlb: 'fill', va: DATA }], /^schedule entry 0 names CPU -1, which does not exist/],
  [
    'a non-canonical event address',
    [{ cpu: 0, tlb: 'fill', va: 0x0000_8000_0000_0000n }],
    /^schedule entry 0 address 0x0000800000000000 is not canonical$/,
  ],
  [
    'a marked non-canonical number',
    [{ cpu: 0, tlb: 'evict', va: 2 ** 48 }],
    /^schedule entry 0 address 0x[0-9a-f]{16} is not canonical$/,
  ],
  [
    'an extra key',
    [{ cpu: 0, tlb: 'evict', va: DATA, extra: 1 }],
    /^schedule entry 0 has an unknown option 'extra'; known options: cpu, tlb, va$/,
  ],
  [
    'a misspelt key',
    [{ cpu: 0, tlb: 'evict', addr: DATA }],
    /^schedule entry 0 has an unknown option 'addr'; known options: cpu, tlb, va$/,
  ],
  [
    'a bad entry after good ones',
    [0, 1, 0, 1, { cpu: 1, tlb: 'evict', va: DATA }, 'x'],
    /^schedule entry 5 is 'x': each entry/,
  ],
];

const RUN_ROWS: readonly MachineRow[] = [
  ...[5, 'round-robin', null, [], [0], true, namedFunction, 5n, Symbol('r')].map((options) => ({
    label: `options ${describeValue(options)}`,
    call: (m: Machine) => m.run(options as never),
    rule: /^run options .+ must be an object$/,
    shown: describeValue(options),
  })),
  ...['steps', 'maxStep', 'policy', 'seeds', '__proto__', 'constructor'].map((key) => ({
    label: `unknown option ${key}`,
    call: (m: Machine) => m.run({ [key]: 1 } as never),
    rule: /^run options has an unknown option '.+'; known options: schedule, seed, maxSteps, ipiDelivery, costs$/,
    shown: `'${key}'`,
  })),
  ...[-1, 1.5, 2 ** 53, ...NOT_INTEGERS_OR_NULL].map((maxSteps) => ({
    label: `maxSteps ${describeValue(maxSteps)}`,
    call: (m: Machine) => m.run({ maxSteps: maxSteps as never }),
    rule: /^maxSteps .+ must be an integer >= 0$/,
    shown: describeValue(maxSteps),
  })),
  ...[1.5, -0.5, Number.NaN, 2 ** 53, Number.POSITIVE_INFINITY, '1', 1n, {}, true].map((seed) => ({
    label: `random seed ${describeValue(seed)}`,
    call: (m: Machine) => m.run({ schedule: 'random', seed: seed as never }),
    rule: /^seed .+ must be an integer$/,
    shown: describeValue(seed),
  })),
  ...([undefined, 'round-robin', '0,1', [0, 1], '', []] as const).map((schedule) => ({
    label: `a seed with schedule ${describeValue(schedule)}`,
    call: (m: Machine) => m.run(schedule === undefined ? { seed: 7 } : { schedule, seed: 7 }),
    rule: /^seed 7 is only used by schedule 'random', not .+$/,
    shown: describeValue(schedule ?? 'round-robin'),
  })),
  ...[...SCHEDULE_STRINGS, ...SCHEDULE_CPU_STRINGS].map(([schedule, rule]) => ({
    label: `schedule string '${schedule.slice(0, 40)}'`,
    call: (m: Machine) => m.run({ schedule }),
    rule,
  })),
  ...NOT_SCHEDULES.map((schedule) => ({
    label: `schedule ${describeValue(schedule)}`,
    call: (m: Machine) => m.run({ schedule: schedule as never }),
    rule: /^schedule .+ must be a string or an array$/,
    shown: describeValue(schedule),
  })),
  ...SCHEDULE_ARRAYS.map(([what, schedule, rule]) => ({
    label: `schedule array with ${what}`,
    call: (m: Machine) => m.run({ schedule: schedule as never }),
    rule,
  })),
];

/** Options read with `value ?? default`, given null: [label, call]. */
const NULL_ROWS: readonly (readonly [string, (m: Machine) => unknown])[] = [
  ['Machine.create({ cpus: null })', () => Machine.create({ cpus: null as never })],
  ['Machine.create({ memory: null })', () => Machine.create({ memory: null as never })],
  ['Machine.create({ traceLimit: null })', () => Machine.create({ traceLimit: null as never })],
  ['Machine.create({ tlb: { entries: null } })', () => Machine.create({ tlb: { entries: null as never } })],
  ['Machine.create({ tlb: { ways: null } })', () => Machine.create({ tlb: { ways: null as never } })],
  ['Machine.create({ tlb: { largeEntries: null } })', () => Machine.create({ tlb: { largeEntries: null as never } })],
  ['run({ maxSteps: null })', (m) => m.run({ maxSteps: null as never })],
  ['run({ schedule: null })', (m) => m.run({ schedule: null as never })],
  ["run({ schedule: 'random', seed: null })", (m) => m.run({ schedule: 'random', seed: null as never })],
];

describe('null is a value, not an absent option', () => {
  // These options were read with `??`, so null silently meant "the default" ({ cpus: null } made 2 CPUs); only
  // undefined is an absent option, as requireBoolean has it.
  it.each(NULL_ROWS)('%s is refused', (_label, call) => {
    const m = machine();
    expectRefused(m, call, /null/);
  });

  it('the boolean options and schedule entries do refuse null', () => {
    expectInputError(
      thrown(() => Machine.create({ trace: null as never })),
      /^Machine\.create option trace null must be true or false$/,
    );
    const m = machine();
    expectRefused(m, (mm) => mm.run({ schedule: [0], seed: null as never }), /^seed null is only used by schedule/);
  });
});

describe('run({ schedule, seed, maxSteps })', () => {
  it.each(RUN_ROWS)('$label is refused before any step', ({ call, rule, shown }) => {
    const m = machine();
    expectRefused(m, call, rule, shown);
    expect(m.stepCount).toBe(0);
    expect(m.trace).toEqual([]);
    expect(m.run({ schedule: '1,0' })).toMatchObject({ outcome: 'ok', steps: 2 });
  });

  it('a 4 KB string of "0*1000000," repeats runs lazily: maxSteps 10 takes 10 steps, at once', () => {
    const schedule = '0*1000000,'.repeat(410);
    expect(schedule.length).toBe(4100);
    const m = machine(false);
    m.load(0, function* (x) {
      for (;;) yield x.pause();
    });
    const start = performance.now();
    expect(m.run({ schedule, maxSteps: 10 })).toMatchObject({ outcome: 'ok', steps: 10, limitReached: true });
    expect(m.stepCount).toBe(10);
    expect(performance.now() - start).toBeLessThan(1000);
    // parseScheduleRuns keeps the repeats folded; parseSchedule, which expands, refuses instead of allocating.
    expect(parseScheduleRuns(schedule)).toHaveLength(410);
    expectInputError(
      thrown(() => parseSchedule(schedule)),
      /^schedule expands to 410000000 entries, more than 10000000: pass the string to run\(\), which consumes it lazily/,
    );
    // ...and so does run() when the string names a CPU that does not exist, before any step.
    const n = machine();
    expectRefused(n, (mm) => mm.run({ schedule: `${schedule}5`, maxSteps: 10 }), /names CPU 5, which does not exist/);
  });

  // A schedule entry that names a CPU with no program is refused before the first step (run() checks every CPU
  // a schedule names), so the machine is as it was.
  it('a schedule naming a CPU with no program is refused without stepping the CPUs before it', () => {
    const m = machine(false);
    m.load(0, pauses);
    expectRefused(m, (mm) => mm.run({ schedule: '0,1' }), /^schedule entry 1 names CPU 1, which has no program/);
  });
});

describe('parseSchedule / parseScheduleRuns', () => {
  it.each(SCHEDULE_STRINGS)('"%s" is refused, naming the token', (text, rule) => {
    expectInputError(
      thrown(() => parseSchedule(`0,${text},1`)),
      rule,
    );
    expectInputError(
      thrown(() => parseScheduleRuns(text)),
      rule,
    );
  });

  it.each([...NOT_SCHEDULES, null].map((v) => [describeValue(v), v]))('%s is not a schedule string', (shown, value) => {
    for (const parse of [parseSchedule, parseScheduleRuns]) {
      expectInputError(
        thrown(() => parse(value as never)),
        /^schedule .+ must be a string or an array$/,
        shown,
      );
    }
  });
});

// 6. TLB events and page-table helpers ---------------------------------------------------------------------------

const HELPER_ROWS: readonly MachineRow[] = [
  ...[-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 10n, '0', null, undefined, {}, Symbol('pa')].map(
    (pa) => ({
      label: `directMap(${describeValue(pa)})`,
      call: (m: Machine) => m.directMap(pa as never),
      rule: /^physical address .+ is outside memory \(0\.\.0x4000000\)$/,
      shown: describeValue(pa),
    }),
  ),
  ...[0x400_0000, 0x400_1000, 2 ** 46].map((pa) => ({
    label: `directMap(0x${pa.toString(16)}) past the end of memory`,
    call: (m: Machine) => m.directMap(pa),
    rule: /^physical address 0x[0-9a-f]+ is outside memory \(0\.\.0x4000000\)$/,
    shown: `0x${pa.toString(16)}`,
  })),
  ...[0, 5, -1, 1.5, Number.NaN, '1', 1n, null, undefined, {}].map((level) => ({
    label: `entryAddress(DATA, ${describeValue(level)})`,
    call: (m: Machine) => m.entryAddress(DATA, level as never),
    rule: /^entryAddress\(\) level .+ must be an integer in 1\.\.4$/,
    shown: describeValue(level),
  })),
  ...[-1, 1.5, Number.NaN, 0x400_0000, 2 ** 53, '0', 0n, null].map((root) => ({
    label: `entryAddress(DATA, 1, root ${describeValue(root)})`,
    call: (m: Machine) => m.entryAddress(DATA, 1, root as never),
    rule: /^entryAddress\(\) root .+ must be an integer in 0\.\.67108863$/,
    shown: describeValue(root),
  })),
  ...[0x0000_8000_0000_0000n, 0xffff_7fff_ffff_f000n].map((va) => ({
    label: `entryAddress(${formatVirtual(toVirtual(va))}, 4) non-canonical`,
    call: (m: Machine) => m.entryAddress(va, 4),
    rule: /^entryAddress\(0x[0-9a-f]{16}\): the address is not canonical$/,
  })),
  ...(
    [
      [FREE, 1, /the walk stops at level 2 \(a non-present entry\), above level 1/],
      [0x0000_1000_0000_0000n, 3, /the walk stops at level 4 \(a non-present entry\), above level 3/],
      [0xffff_8880_0000_0000n, 1, /the walk stops at level 2 \(a 2 MiB page\), above level 1/],
    ] as const
  ).map(([va, level, rule]) => ({
    label: `entryAddress(${formatVirtual(toVirtual(va))}, ${level}) below where the walk stops`,
    call: (m: Machine) => m.entryAddress(va, level),
    rule,
  })),
  ...[0x0000_1000_0000_0000n, 0x0000_8000_0000_0000n, FREE].map((va) => ({
    label: `pteAddress(${formatVirtual(toVirtual(va))}) with no page table`,
    call: (m: Machine) => m.pteAddress(va),
    rule: /^0x[0-9a-f]{16} has no page table down to its leaf entry$/,
  })),
];

describe('TLB events and page-table helpers', () => {
  it.each(HELPER_ROWS)('$label is refused', ({ call, rule, shown }) => {
    const m = machine();
    expectRefused(m, call, rule, shown);
    expectUsable(m);
  });

  it('physicalAddress of an address that no page maps (non-canonical included) is undefined, not an error', () => {
    const m = machine();
    expect(m.physicalAddress(FREE)).toBeUndefined();
    expect(m.physicalAddress(0x0000_8000_0000_0000n)).toBeUndefined();
  });

  // evictTlb and fillTlb refuse a non-canonical address, as the same event in a schedule string or array is.
  it.each([
    ['evictTlb', (m: Machine) => m.evictTlb(0, 0x0000_8000_0000_0000n)],
    ['fillTlb', (m: Machine) => m.fillTlb(0, 0x0000_8000_0000_0000n)],
  ] as const)('%s refuses a non-canonical address, as schedule TLB events do', (_site, call) => {
    const m = machine();
    expectRefused(m, call, /0x0000800000000000 is not (a )?canonical/);
  });
});

// 7. setGate / clearGate ----------------------------------------------------------------------------------------

const GATE_ROWS: readonly MachineRow[] = [
  ...[256, -1, 1000, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '0x80', 128n, null, undefined, {}, Symbol('v')].map(
    (vector) => ({
      label: `vector ${describeValue(vector)}`,
      call: (m: Machine) => m.cpu(0).setGate(vector as never, GOOD_GATE),
      rule: /^CPU 0 setGate\(.+\): IDT vector .+ must be an integer in 0\.\.255$/,
      shown: describeValue(vector),
    }),
  ),
  ...[null, undefined, 5, 'gate', true, 1n, Symbol('g'), handler, namedFunction].map((gate) => ({
    label: `gate ${describeValue(gate)}`,
    call: (m: Machine) => m.cpu(0).setGate(GATE_VECTOR, gate as never),
    rule: /^CPU 0 setGate\(128\): gate .+ must be an object$/,
    shown: describeValue(gate),
  })),
  ...[{}, Object.create(null), { ist: 0, type: 'interrupt' }].map((gate) => ({
    label: `gate ${describeValue(gate)} without a handler`,
    call: (m: Machine) => m.cpu(0).setGate(GATE_VECTOR, gate as never),
    rule: /^CPU 0 setGate\(128\): handler undefined is not a generator function: write handlers as function\* \(x, ctx\)/,
  })),
  ...[...NOT_PROGRAMS_CALLABLE, ...NOT_PROGRAMS_VALUES].map((h) => ({
    label: `handler ${describeValue(h)}`,
    call: (m: Machine) => m.cpu(0).setGate(GATE_VECTOR, { ...GOOD_GATE, handler: h as never }),
    rule: /^CPU 0 setGate\(128\): handler .+ is not a generator function/,
    shown: describeValue(h),
  })),
  ...[-1, 8, 1.5, Number.NaN, '1', 1n, null, undefined, {}, true].map((ist) => ({
    label: `ist ${describeValue(ist)}`,
    call: (m: Machine) => m.cpu(0).setGate(GATE_VECTOR, { ...GOOD_GATE, ist: ist as never }),
    rule: /^CPU 0 setGate\(128\): IST index .+ must be an integer in 0\.\.7$/,
    shown: describeValue(ist),
  })),
  ...['fault', 'INTERRUPT', 'task', '', 'trap ', null, undefined, 1, {}].map((type) => ({
    label: `type ${describeValue(type)}`,
    call: (m: Machine) => m.cpu(0).setGate(GATE_VECTOR, { ...GOOD_GATE, type: type as never }),
    rule: /^CPU 0 setGate\(128\): gate type .+ must be one of 'interrupt', 'trap'$/,
    shown: describeValue(type),
  })),
  ...[-1, 4, 1.5, Number.NaN, '0', 0n, null, true].map((dpl) => ({
    label: `dpl ${describeValue(dpl)}`,
    call: (m: Machine) => m.cpu(0).setGate(GATE_VECTOR, { ...GOOD_GATE, dpl: dpl as never }),
    rule: /^CPU 0 setGate\(128\): DPL .+ must be an integer in 0\.\.3$/,
    shown: describeValue(dpl),
  })),
  ...[-1, 0x10000, 2 ** 32, 1.5, Number.NaN, '0x10', 16n, null].map((selector) => ({
    label: `selector ${describeValue(selector)}`,
    call: (m: Machine) => m.cpu(0).setGate(GATE_VECTOR, { ...GOOD_GATE, selector: selector as never }),
    rule: /^CPU 0 setGate\(128\): selector .+ must be an integer in 0\.\.65535$/,
    shown: describeValue(selector),
  })),
  ...[0, 1, 'true', null, {}].map((present) => ({
    label: `present ${describeValue(present)}`,
    call: (m: Machine) => m.cpu(0).setGate(GATE_VECTOR, { ...GOOD_GATE, present: present as never }),
    rule: /^CPU 0 setGate\(128\): present .+ must be true or false$/,
    shown: describeValue(present),
  })),
  ...[256, -1, 1.5, Number.NaN, '1', 1n, null, undefined, {}, Symbol('c')].map((vector) => ({
    label: `clearGate(${describeValue(vector)})`,
    call: (m: Machine) => m.cpu(0).clearGate(vector as never),
    rule: /^CPU 0 clearGate: IDT vector .+ must be an integer in 0\.\.255$/,
    shown: describeValue(vector),
  })),
];

describe('setGate(vector, gate) and clearGate(vector)', () => {
  it.each(GATE_ROWS)('$label is refused and the IDT keeps its gate', ({ call, rule, shown }) => {
    const m = machine();
    const gate = m.cpu(0).idt[GATE_VECTOR];
    expectRefused(m, call, rule, shown);
    expect(m.cpu(0).idt[GATE_VECTOR]).toBe(gate);
    m.cpu(0).setGate(GATE_VECTOR, { ...GOOD_GATE, type: 'trap', dpl: 3, selector: SELECTOR.KERNEL_CS });
    expect(m.cpu(0).idt[GATE_VECTOR]).toMatchObject({ type: 'trap', dpl: 3 });
    expectUsable(m);
  });

  // setGate refuses unknown keys, as Machine.create, map flags, run and schedule entries do: a misspelt
  // { prsent: false } would otherwise install a present gate.
  it.each(['prsent', 'DPL', 'selecter', 'istIndex'])('a gate with the unknown key %s is refused', (key) => {
    const m = machine();
    expectRefused(m, (mm) => mm.cpu(0).setGate(GATE_VECTOR, { ...GOOD_GATE, [key]: 3 } as never), /unknown option/);
  });
});

// 8. Instruction operands, refused from the program's own yield ------------------------------------------------

interface BuilderRow {
  readonly label: string;
  readonly build: (x: Assembler) => unknown;
  /** How the message starts: "CPU 0 store value". */
  readonly where: string;
  readonly shown: string;
  readonly rule: RegExp;
}

/** Address operands of the builders, with the instruction names their messages use. */
const ADDRESS_BUILDERS: readonly (readonly [string, (x: Assembler, va: never) => unknown])[] = [
  ['load', (x, va) => x.load(va, 8)],
  ['store', (x, va) => x.store(va, 8, 0)],
  ['cmpxchg', (x, va) => x.cmpxchg(va, 8, 0, 1)],
  ['xchg', (x, va) => x.xchg(va, 8, 1)],
  ['spin-until', (x, va) => x.spinUntil(va, 8, () => true)],
  ['wait-until', (x, va) => x.waitUntil(va, 8, () => true)],
  ['invlpg', (x, va) => x.invlpg(va)],
  ['mov-to-cr2', (x, va) => x.movToCr2(va)],
  ['mov-to-rsp', (x, va) => x.movToRsp(va)],
];

const BAD_SIZES: readonly unknown[] = [
  0,
  3,
  5,
  6,
  16,
  -8,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  '8',
  8n,
  null,
  true,
  {},
  Object.create(null),
  Symbol('size'),
];
const SIZE_BUILDERS: readonly (readonly [string, (x: Assembler, size: never) => unknown])[] = [
  ['load', (x, size) => x.load(DATA, size)],
  ['store', (x, size) => x.store(DATA, size, 0)],
  ['cmpxchg', (x, size) => x.cmpxchg(DATA, size, 0, 0)],
  ['xchg', (x, size) => x.xchg(DATA, size, 0)],
  ['spin-until', (x, size) => x.spinUntil(DATA, size, () => true)],
  ['wait-until', (x, size) => x.waitUntil(DATA, size, () => true)],
];

/** Values no access size holds. */
const BAD_VALUES_ANY_SIZE: readonly unknown[] = [
  1.5,
  -0.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  1e300,
  '1',
  '0x10',
  null,
  undefined,
  true,
  {},
  [],
  Object.create(null),
  Symbol('v'),
];
/** Values out of range for one size: just past each end, as number and bigint. */
const BAD_VALUES_BY_SIZE: Readonly<Record<1 | 2 | 4 | 8, readonly unknown[]>> = {
  1: [256, -129, 1000, -1000, 256n, -129n],
  2: [65536, -32769, 65536n, -32769n],
  4: [2 ** 32, -(2 ** 31) - 1, 2n ** 32n, -(2n ** 31n) - 1n],
  8: [-1, -(2 ** 31), 2 ** 53, 2 ** 64, Number.MAX_VALUE, -1n, 2n ** 53n, 2n ** 64n],
};
const VALUE_RULES: Readonly<Record<1 | 2 | 4 | 8, string>> = {
  1: 'a 1-byte value is an integer in -128\\.\\.255',
  2: 'a 2-byte value is an integer in -32768\\.\\.65535',
  4: 'a 4-byte value is an integer in -2147483648\\.\\.4294967295',
  8: 'an 8-byte value is an integer in 0\\.\\.2\\^53-1',
};
const SIZES = [1, 2, 4, 8] as const;
const badValues = (size: 1 | 2 | 4 | 8) => [...BAD_VALUES_ANY_SIZE, ...BAD_VALUES_BY_SIZE[size]];

/** Sized value operands: [instruction, operand name, build]. */
const VALUE_BUILDERS: readonly (readonly [string, string, (x: Assembler, size: number, v: never) => unknown])[] = [
  ['store', 'value', (x, size, v) => x.store(DATA, size, v)],
  ['xchg', 'value', (x, size, v) => x.xchg(DATA, size, v)],
  ['cmpxchg', 'expected', (x, size, v) => x.cmpxchg(DATA, size, v, 0)],
  ['cmpxchg', 'value', (x, size, v) => x.cmpxchg(DATA, size, 0, v)],
];
/** 8-byte operands: [instruction, operand name, build]. */
const QWORD_BUILDERS: readonly (readonly [string, string, (x: Assembler, v: never) => unknown])[] = [
  ['push', 'value', (x, v) => x.push(v)],
  ['mov-to-cr3', 'value', (x, v) => x.movToCr3(v)],
  ['mov-to-cr4', 'value', (x, v) => x.movToCr4(v)],
  ['mov-to-cr0', 'value', (x, v) => x.movToCr0(v)],
  ['wrmsr', 'value', (x, v) => x.wrmsr(MSR.EFER, v)],
];

const row = (
  instruction: string,
  operand: string,
  value: unknown,
  build: (x: Assembler) => unknown,
  rule: RegExp,
  shown = describeValue(value),
): BuilderRow => ({
  label: `${instruction} ${operand} ${shown}`,
  build,
  where: `CPU 0 ${instruction} ${operand}`,
  shown,
  rule,
});

/** Integers that are no model address: load and store without options check them on their fast path. */
const isFastPathInteger = (va: unknown) => typeof va === 'number' && Number.isInteger(va);
const BUILDER_ADDRESS_ROWS: readonly BuilderRow[] = ADDRESS_BUILDERS.flatMap(([instruction, build]) =>
  BAD_ADDRESSES.filter(([va]) => !(isFastPathInteger(va) && (instruction === 'load' || instruction === 'store'))).map(
    ([va, shown]) => row(instruction, 'address', va, (x) => build(x, va as never), ADDRESS_RULE, shown),
  ),
);
const FAST_PATH_ADDRESS_ROWS: readonly BuilderRow[] = ADDRESS_BUILDERS.filter(
  ([instruction]) => instruction === 'load' || instruction === 'store',
).flatMap(([instruction, build]) =>
  BAD_ADDRESSES.filter(([va]) => isFastPathInteger(va)).map(([va, shown]) =>
    row(instruction, 'address', va, (x) => build(x, va as never), ADDRESS_RULE, shown),
  ),
);

const BUILDER_SIZE_ROWS: readonly BuilderRow[] = SIZE_BUILDERS.flatMap(([instruction, build]) =>
  BAD_SIZES.map((size) =>
    row(instruction, 'access size', size, (x) => build(x, size as never), / is not one of 1, 2, 4, 8 bytes$/),
  ),
);

const BUILDER_VALUE_ROWS: readonly BuilderRow[] = [
  ...VALUE_BUILDERS.flatMap(([instruction, operand, build]) =>
    SIZES.flatMap((size) =>
      badValues(size).map((v) => {
        const r = row(
          instruction,
          operand,
          v,
          (x) => build(x, size, v as never),
          new RegExp(` does not fit in ${size} bytes: ${VALUE_RULES[size]}`),
        );
        return { ...r, label: `${r.label} (${size} bytes)` };
      }),
    ),
  ),
  ...QWORD_BUILDERS.flatMap(([instruction, operand, build]) =>
    badValues(8).map((v) =>
      row(
        instruction,
        operand,
        v,
        (x) => build(x, v as never),
        new RegExp(` does not fit in 8 bytes: ${VALUE_RULES[8]}`),
      ),
    ),
  ),
];

const ACCESS_OPTIONS: readonly (readonly [unknown, string, string, RegExp])[] = [
  [null, 'options', 'null', /must be an object$/],
  [5, 'options', '5', /must be an object$/],
  ['fixup', 'options', "'fixup'", /must be an object$/],
  [[], 'options', 'an array of length 0', /must be an object$/],
  [true, 'options', 'true', /must be an object$/],
  [namedFunction, 'options', 'function namedFunction', /must be an object$/],
  [{ fix: 1 }, 'options', "'fix'", /has an unknown option 'fix'; known options: fixup$/],
  [{ fixup: 1, extra: 1 }, 'options', "'extra'", /has an unknown option 'extra'; known options: fixup$/],
  [{ [Symbol('k')]: 1 }, 'options', 'Symbol(k)', /has an unknown option Symbol\(k\); known options: fixup$/],
  [{ fixup: 1.5 }, 'fixup value', '1.5', /must be a safe integer/],
  [{ fixup: Number.NaN }, 'fixup value', 'NaN', /must be a safe integer/],
  [{ fixup: 2 ** 53 }, 'fixup value', '9007199254740992', /must be a safe integer/],
  [{ fixup: Number.POSITIVE_INFINITY }, 'fixup value', 'Infinity', /must be a safe integer/],
  [{ fixup: '1' }, 'fixup value', "'1'", /must be a safe integer/],
  [{ fixup: 1n }, 'fixup value', '1n', /must be a safe integer/],
  [{ fixup: null }, 'fixup value', 'null', /must be a safe integer/],
  [{ fixup: {} }, 'fixup value', 'an object', /must be a safe integer/],
];

const IPI_DESTINATIONS: readonly unknown[] = [
  -1,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  [],
  [1.5],
  [-1],
  [0, 'x'],
  [0, null],
  [1n],
  new Array(2),
  'everyone',
  'SELF',
  'all but self',
  '',
  '0',
  null,
  undefined,
  {},
  Object.create(null),
  1n,
  Symbol('to'),
];

const OUTCOMES_TEXT =
  "must be one of 'double-fault', 'triple-fault', 'oops', 'stack-corruption', 'lost-write', 'use-after-free', 'deadlock', 'assertion'";

const BUILDER_OTHER_ROWS: readonly BuilderRow[] = [
  ...(['load', 'store'] as const).flatMap((instruction) =>
    ACCESS_OPTIONS.map(([options, operand, shown, rule]) =>
      row(
        instruction,
        operand,
        options,
        (x) => (instruction === 'load' ? x.load(DATA, 8, options as never) : x.store(DATA, 8, 0, options as never)),
        rule,
        shown,
      ),
    ),
  ),
  ...[null, 5, 'fixup', [], namedFunction].map((options) =>
    row('iret', 'options', options, (x) => x.iret(options as never), /must be an object$/),
  ),
  ...[
    [{ fix: true }, 'options', "'fix'", /has an unknown option 'fix'; known options: fixup$/],
    [{ fixup: 1 }, 'fixup', '1', /must be true or false$/],
    [{ fixup: 'yes' }, 'fixup', "'yes'", /must be true or false$/],
    [{ fixup: null }, 'fixup', 'null', /must be true or false$/],
    [{ fixup: 0 }, 'fixup', '0', /must be true or false$/],
  ].map(([options, operand, shown, rule]) =>
    row('iret', operand as string, options, (x) => x.iret(options as never), rule as RegExp, shown as string),
  ),
  ...[...NOT_PROGRAMS_CALLABLE, ...NOT_PROGRAMS_VALUES, 5n].map((target) =>
    row('call', 'target', target, (x) => x.call(target as never), /is not a generator function: call programs written/),
  ),
  ...[1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, -(2 ** 53), '1', null, 1n, {}, true, Symbol('r')].map((v) =>
    row('ret', 'value', v, (x) => x.ret(v as never), /must be a safe integer \(the callee's result, like RAX\)$/),
  ),
  ...(['spin-until', 'wait-until'] as const).flatMap((name) =>
    [null, undefined, 5, 'v => true', {}, true, Symbol('p')].map((condition) =>
      row(
        name,
        'condition',
        condition,
        (x) => (name === 'spin-until' ? x.spinUntil : x.waitUntil).call(x, DATA, 8, condition as never),
        /must be a function \(value\) => boolean$/,
      ),
    ),
  ),
  ...[-1, 2 ** 32, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '0xc0000080', null, undefined, 0xc000_0080n].map((msr) =>
    row('wrmsr', 'MSR', msr, (x) => x.wrmsr(msr as never, 0), /must be an integer in 0\.\.4294967295$/),
  ),
  ...[-1, 256, 1000, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '3', null, undefined, 3n, {}].map((vector) =>
    row('int', 'vector', vector, (x) => x.int(vector as never), /must be an integer in 0\.\.255$/),
  ),
  ...IPI_DESTINATIONS.map((to) =>
    row(
      'send-ipi',
      'destination',
      to,
      (x) => x.sendIpi(to as never, 0xf0),
      /must be a CPU id, an array of 1\.\.64 CPU ids, or one of 'self', 'all', 'all-but-self'$/,
    ),
  ),
  ...[0, 2, 15, 256, -1, 1.5, Number.NaN, '240', null, undefined, 240n, {}].map((vector) =>
    row(
      'send-ipi',
      'vector',
      vector,
      (x) => x.sendIpi(1, vector as never),
      /is illegal: fixed IPIs use vectors 16\.\.255 \(SDM §11\.5\.2\), NMIs 0\.\.255$/,
    ),
  ),
  ...[256, -1, 2.5, Number.NaN].map((vector) => {
    const r = row(
      'send-ipi',
      'vector',
      vector,
      (x) => x.sendIpi(1, vector as never, 'nmi'),
      /is illegal: .+ NMIs 0\.\.255$/,
    );
    return { ...r, label: `${r.label} (nmi)` };
  }),
  ...['NMI', 'lowest', 'init', '', 'fixed ', null, 1, {}].map((mode) =>
    row('send-ipi', 'mode', mode, (x) => x.sendIpi(1, 0xf0, mode as never), /must be one of 'fixed', 'nmi'$/),
  ),
  ...[null, undefined, 1, 0, 'true', {}, Symbol('c')].map((condition) =>
    row('assert', 'condition', condition, (x) => x.assert(condition as never, 'm'), /must be a boolean or a function$/),
  ),
  ...[null, undefined, 5, {}, ['m'], Symbol('m')].map((message) =>
    row('assert', 'message', message, (x) => x.assert(true, message as never), /must be a string$/),
  ),
  ...['ok', 'panic', '', 'OOPS', 'assertion ', null, undefined, 5, {}].map((outcome) =>
    row('die', 'outcome', outcome, (x) => x.die(outcome as never, 'm'), new RegExp(escapeRegExp(OUTCOMES_TEXT))),
  ),
  ...[null, undefined, 5, {}].map((message) =>
    row('die', 'message', message, (x) => x.die('oops', message as never), /must be a string$/),
  ),
  ...[...NOT_PROGRAMS_CALLABLE, ...NOT_PROGRAMS_VALUES].map((program) =>
    row('userEntry', 'program', program, (x) => x.userEntry(program as never), /is not a generator function$/),
  ),
];

describe('instruction operands: a bad one stops the CPU from its yield', () => {
  it.each([...BUILDER_ADDRESS_ROWS, ...BUILDER_SIZE_ROWS, ...BUILDER_VALUE_ROWS, ...BUILDER_OTHER_ROWS])(
    '$label',
    ({ build, where, shown, rule }) => {
      const error = expectProgramStops(build, (e) => {
        const ie = expectInputError(e, rule, shown);
        expect(ie.message.startsWith(`${where} `)).toBe(true);
      });
      expect((error as Error).message).toContain(shown);
    },
  );

  // x.load(va, size) and x.store(va, size, value) without options take a fast path (src/cpu/instruction.ts
  // isPlainAccess()) that once checked only Number.isInteger(va): -1 or 2^53 became a #GP oops instead of an
  // InputError. It must agree with toVirtual() (integers 0..2^49-1), as the slow path with { fixup } does.
  it.each(FAST_PATH_ADDRESS_ROWS)('$label (fast path)', ({ build, where, shown, rule }) => {
    expectProgramStops(build, (e) => {
      const ie = expectInputError(e, rule, shown);
      expect(ie.message.startsWith(`${where} `)).toBe(true);
    });
  });

  it('the same addresses with options are refused: the slow path checks them', () => {
    for (const [va] of BAD_ADDRESSES.filter(([v]) => isFastPathInteger(v))) {
      const x = new Assembler(0);
      expectInputError(
        thrown(() => x.load(va as number, 8, { fixup: 0 })),
        /^CPU 0 load address .+ is not a virtual address/,
      );
      expectInputError(
        thrown(() => x.store(va as number, 8, 0, { fixup: 0 })),
        /^CPU 0 store address .+ is not a virtual address/,
      );
    }
  });

  it('a program that catches the refusal goes on building and executing instructions normally', () => {
    const m = machine(false);
    const caught: string[] = [];
    m.load(0, function* (x) {
      for (const bad of [() => x.store(DATA, 1, 256), () => x.load(DATA, 3), () => x.push(-1)]) {
        try {
          bad();
        } catch (error) {
          caught.push((error as InputError).name);
        }
      }
      yield x.store(DATA, 1, 255);
      yield x.push(7);
      expect(yield x.pop()).toBe(7);
      expect(yield x.load(DATA, 8)).toBe(PROBE - 0x34 + 0xff);
    });
    m.load(1, pauses);
    expect(m.run({ schedule: '0*5' })).toMatchObject({ outcome: 'ok', steps: 5 });
    expect(caught).toEqual(['InputError', 'InputError', 'InputError']);
    expect(m.cpu(0).state).toBe('halted');
  });
});

// 9. Errors while an instruction executes -------------------------------------------------------------------------

interface ExecutionRow {
  readonly label: string;
  readonly bad: (x: Assembler, m: Machine) => unknown;
  /** Checks what run() threw. */
  readonly check: (error: unknown) => void;
}

const thrownValue = (value: unknown) => (error: unknown) => expect(error).toBe(value);
const inputError = (rule: RegExp) => (error: unknown) => {
  expectInputError(error, rule);
};
const THROWN_BY_CALLBACKS: readonly (readonly [string, unknown])[] = [
  ['an Error', new Error('the predicate failed')],
  ['a RangeError', new RangeError('out of range')],
  ['an InputError', new InputError('refused by the predicate')],
  ['a string', 'just a string'],
  ['undefined', undefined],
  ['a number', 42],
  ['an object with no prototype', Object.create(null)],
];

/** Values a program may yield by mistake, which the message must show as describeValue does. */
const YIELDED_MISSHOWN: readonly unknown[] = [{ op: 'load' }, namedFunction, [1], 5n, 'load'];

const EXECUTION_ROWS: readonly ExecutionRow[] = [
  ...(
    [
      ['cmpxchg', 0xffc, 8],
      ['cmpxchg', 0xffe, 4],
      ['cmpxchg', 0xfff, 2],
      ['cmpxchg', 0xff9, 8],
      ['xchg', 0xffc, 8],
      ['xchg', 0xfff, 2],
      ['xchg', 0xffd, 4],
    ] as const
  ).map(([op, offset, size]) => ({
    label: `a split lock: ${op} of ${size} bytes at page offset 0x${offset.toString(16)}`,
    bad: (x: Assembler) => (op === 'xchg' ? x.xchg(DATA + offset, size, 1) : x.cmpxchg(DATA + offset, size, 0, 1)),
    check: inputError(new RegExp(`^locked access at ${formatVirtual(DATA + offset)} crosses a page \\(split lock\\)$`)),
  })),
  ...THROWN_BY_CALLBACKS.map(([what, value]) => ({
    label: `a spinUntil predicate that throws ${what}`,
    bad: (x: Assembler) =>
      x.spinUntil(DATA, 8, () => {
        throw value;
      }),
    check: thrownValue(value),
  })),
  ...THROWN_BY_CALLBACKS.map(([what, value]) => ({
    label: `an assert function that throws ${what}`,
    bad: (x: Assembler) =>
      x.assert(() => {
        throw value;
      }, 'never evaluated'),
    check: thrownValue(value),
  })),
  ...THROWN_BY_CALLBACKS.map(([what, value]) => ({
    label: `a program body that throws ${what}`,
    bad: () => {
      throw value;
    },
    check: thrownValue(value),
  })),
  ...([7, 64, [1, 7], [0, 1, 2], 2 ** 40] as const).map((to) => ({
    label: `an IPI to ${describeValue(to)}, a CPU that does not exist`,
    bad: (x: Assembler) => x.sendIpi(to as never, 0xf0),
    check: inputError(/^CPU \d+ does not exist: this machine has CPUs 0\.\.1$/),
  })),
  ...(['pause', 'load', 'store', 'cmpxchg', 'sendIpi', 'die'] as const).map((op) => ({
    label: `a ${op} built by CPU 1's assembler`,
    bad: (_x: Assembler, m: Machine) => {
      const other = m.cpu(1).asm;
      if (op === 'pause') return other.pause();
      if (op === 'load') return other.load(DATA, 8);
      if (op === 'store') return other.store(DATA, 8, 1);
      if (op === 'cmpxchg') return other.cmpxchg(DATA, 8, PROBE, 1);
      if (op === 'sendIpi') return other.sendIpi(0, 0xf0);
      return other.die('oops', 'from CPU 1');
    },
    check: inputError(
      /^CPU 0 program yielded a [\w-]+ built by CPU 1's assembler: build instructions with the x a program receives/,
    ),
  })),
  ...([5, undefined, null, true, Symbol('i')] as const).map((value) => ({
    label: `yielding ${describeValue(value)}, not an instruction`,
    bad: () => value,
    check: inputError(/^CPU 0 program yielded .+, not an instruction: yield x\.load\(\.\.\.\), x\.store\(\.\.\.\)/),
  })),
  ...([1.5, Number.NaN, 2 ** 53, '1', 1n, {}, Object.create(null)] as const).map((value) => ({
    label: `a callee returning ${describeValue(value)}`,
    bad: (x: Assembler) =>
      x.call(function* callee(y: Assembler) {
        yield y.pause();
        return value as never;
      }),
    check: inputError(/returned a value .+ must be a safe integer \(the callee's result, like RAX\)$/),
  })),
];

describe('an instruction that fails while executing stops its CPU, like an exception in the program', () => {
  it.each(EXECUTION_ROWS)('$label', ({ bad, check }) => {
    expectProgramStops(bad, check);
  });

  it('a refused IPI reaches no CPU: every target is checked before any IRR changes', () => {
    expectProgramStops(
      (x) => x.sendIpi([1, 7], 0xf0),
      () => undefined,
    );
    const m = machine(false);
    m.load(0, function* (x) {
      yield x.sendIpi([1, 7], 0xf0);
    });
    expect(() => m.step(0)).toThrow(InputError);
    expect(m.snapshot().cpus[1]!.apic.pending).toEqual([]);
  });

  it('a split lock writes neither page', () => {
    const m = machine(false);
    m.map(DATA + PAGE_SIZE, { writable: true });
    const last = m.physicalAddress(DATA + 0xff8)!;
    m.memory.write64(last, 0x1111);
    m.load(0, function* (x) {
      yield x.xchg(DATA + 0xffc, 8, 0x7777);
    });
    expect(() => m.step(0)).toThrow(/split lock/);
    expect(m.memory.read64(last)).toBe(0x1111);
    expect(m.memory.read64(m.physicalAddress(DATA + PAGE_SIZE)!)).toBe(0);
  });

  // Yielding something that is not an instruction, even an object with no prototype, one whose toString throws,
  // or a revoked Proxy, stops the CPU with an InputError; the next run() does not resume the program.
  it.each([
    ['an object with no prototype', () => Object.create(null)],
    ['an object whose toString throws', throwingToString],
    ['a revoked Proxy', revoked],
  ])('yielding %s stops the CPU with an InputError', (_what, value) => {
    expectProgramStops(() => value(), inputError(/^CPU 0 program yielded .+, not an instruction/));
  });

  // The message shows the yielded value as describeValue does, never as "[object Object]" or a function's source.
  it.each(YIELDED_MISSHOWN.map((v) => [describeValue(v), v]))(
    'yielding %s names it as describeValue does',
    (shown, v) => {
      expectProgramStops(
        () => v,
        inputError(new RegExp(`^CPU 0 program yielded ${escapeRegExp(shown as string)}, not an instruction`)),
      );
    },
  );

  // The Instruction class is exported, but a CPU executes only instructions an assembler built (and so checked):
  // a hand-built `new Instruction(...)` is refused with an InputError.
  it.each([
    ['a store of size 3', () => new Instruction(OP.STORE, DATA, 3, 1, 0, undefined, 0)],
    ['a send-ipi with no target', () => new Instruction(OP.SEND_IPI, 0, 8, 0xf0, 0, undefined, 0)],
  ])('a hand-built instruction (%s) is refused with an InputError', (_what, make) => {
    expectProgramStops(make, inputError(/CPU 0/));
  });

  // An instruction built with another CPU's assembler is refused at the yield, and the build it counted on that
  // assembler is released, so the other CPU's own next instruction runs normally.
  it("a refused foreign instruction leaves the other CPU's program running normally", () => {
    const m = machine(false);
    m.load(0, function* () {
      yield m.cpu(1).asm.load(DATA, 8);
    });
    m.load(1, function* (x) {
      expect(yield x.load(DATA, 8)).toBe(PROBE);
      yield x.pause();
    });
    expectInputError(
      thrown(() => m.step(0)),
      /built by CPU 1's assembler/,
    );
    expect(m.step(1)?.op).toBe('load');
    expect(m.cpu(1).state).toBe('running');
  });

  // sendIpi checks a destination array by index, up to 64 entries, never through its iterator: a huge sparse
  // array or one whose iterator throws is refused at once.
  it('a destination array is checked by index, never through its iterator', () => {
    const to = Object.assign([1], {
      *[Symbol.iterator]() {
        yield 1;
        throw new RangeError('Invalid array length');
      },
    });
    const x = new Assembler(0);
    expect(x.sendIpi(to, 0xf0).name).toBe('send-ipi');
  });
});

// 10. One meaning per value size ----------------------------------------------------------------------------------

/** [size, value as passed, the unsigned image it stands for]. */
const VALUE_MEANINGS: readonly (readonly [1 | 2 | 4 | 8, number | bigint, number])[] = [
  [1, -1, 0xff],
  [1, -128, 0x80],
  [1, -1n, 0xff],
  [1, 255, 0xff],
  [1, 127, 0x7f],
  [2, -1, 0xffff],
  [2, -32768, 0x8000],
  [2, -2n, 0xfffe],
  [2, 65535, 0xffff],
  [4, -1, 0xffff_ffff],
  [4, -(2 ** 31), 0x8000_0000],
  [4, -(2n ** 31n), 0x8000_0000],
  [4, 2 ** 32 - 1, 0xffff_ffff],
  [8, 7n, 7],
  [8, 2 ** 53 - 1, 2 ** 53 - 1],
  [8, 2n ** 53n - 1n, 2 ** 53 - 1],
  [8, -0, 0],
];

describe('values have one meaning per size', () => {
  it.each(VALUE_MEANINGS)('size %i: %s is stored as %i, and cmpxchg/xchg mean the same', (size, value, image) => {
    const m = machine(false);
    const results: number[] = [];
    m.load(0, function* (x) {
      yield x.store(DATA, size, value);
      results.push(yield x.load(DATA, size)); // the image
      results.push(yield x.cmpxchg(DATA, size, value, 5)); // matches: old value, and 5 is written
      results.push(yield x.load(DATA, size));
      results.push(yield x.cmpxchg(DATA, size, value, 6)); // no longer matches: nothing is written
      results.push(yield x.load(DATA, size));
      results.push(yield x.xchg(DATA, size, value)); // old 5, and the image is written
      results.push(yield x.load(DATA, size));
      if (size === 8) {
        yield x.push(value);
        results.push(yield x.pop());
      }
    });
    m.load(1, pauses);
    expect(m.run({ schedule: '0*12' }).outcome).toBe('ok');
    expect(results).toEqual([image, image, 5, 5, 5, 5, image, ...(size === 8 ? [image] : [])]);
  });

  it('the boundary values of each size are accepted: the minimum and the maximum', () => {
    const x = new Assembler(0);
    for (const size of SIZES) {
      const max = size === 8 ? 2 ** 53 - 1 : 2 ** (8 * size) - 1;
      const min = size === 8 ? 0 : -(2 ** (8 * size - 1));
      expect(x.store(DATA, size, max).value).toBe(max);
      expect(x.store(DATA, size, min).value).toBe(size === 8 ? 0 : 2 ** (8 * size - 1));
      expect(x.cmpxchg(DATA, size, min, max).expected).toBe(size === 8 ? 0 : 2 ** (8 * size - 1));
      expect(x.xchg(DATA, size, BigInt(min)).value).toBe(size === 8 ? 0 : 2 ** (8 * size - 1));
    }
  });
});

// 11. describeValue and formatVirtual never throw ------------------------------------------------------------------

const DESCRIBED: readonly (readonly [string, () => unknown, string])[] = [
  ['an object with no prototype', () => Object.create(null), 'an object with no prototype'],
  ['a revoked Proxy', revoked, 'an unprintable value'],
  ['Symbol()', () => Symbol(), 'Symbol()'],
  ['Symbol("s")', () => Symbol('s'), 'Symbol(s)'],
  ['10n', () => 10n, '10n'],
  ['-5n', () => -5n, '-5n'],
  ['-0', () => -0, '-0'],
  ['0', () => 0, '0'],
  ['NaN', () => Number.NaN, 'NaN'],
  ['-Infinity', () => Number.NEGATIVE_INFINITY, '-Infinity'],
  ['1.5', () => 1.5, '1.5'],
  ['a named function', () => namedFunction, 'function namedFunction'],
  ['an anonymous function', () => [() => 1][0], 'function (anonymous)'],
  ['a class', () => NotAProgram, 'function NotAProgram'],
  ['an array', () => [1, 2, 3], 'an array of length 3'],
  ['a sparse array', () => new Array(2 ** 32 - 1), 'an array of length 4294967295'],
  ['a huge string', () => 'x'.repeat(1_000_000), `'${'x'.repeat(60)}...'`],
  ['a string with quotes', () => "it's\nhere\\", "'it\\'s\\nhere\\\\'"],
  ['null', () => null, 'null'],
  ['undefined', () => undefined, 'undefined'],
  ['true', () => true, 'true'],
  ['a Map', () => new Map(), 'a Map'],
  ['a Date', () => new Date(0), 'a Date'],
  ['a class instance', () => new NotAProgram(), 'a NotAProgram'],
  ['a plain object', () => ({ a: 1 }), 'an object'],
  ['an object whose toString throws', throwingToString, 'an object'],
  [
    'an object whose constructor getter throws',
    () =>
      Object.create(
        Object.defineProperty({}, 'constructor', {
          get() {
            throw new Error('constructor');
          },
        }),
      ),
    'an unprintable value',
  ],
  [
    'a Proxy whose getPrototypeOf trap throws',
    () =>
      new Proxy(
        {},
        {
          getPrototypeOf() {
            throw new Error('trap');
          },
        },
      ),
    'an unprintable value',
  ],
  [
    'a function whose name getter throws',
    () =>
      Object.defineProperty(() => 1, 'name', {
        get: () => {
          throw new Error('name');
        },
      }),
    'an unprintable value',
  ],
];

describe('describeValue and formatVirtual never throw', () => {
  it.each(DESCRIBED)('describeValue(%s)', (_what, value, described) => {
    expect(describeValue(value())).toBe(described);
    const formatted = formatVirtual(value() as never);
    expect(typeof formatted).toBe('string');
  });

  it('formatVirtual prints model addresses in 64-bit form and describes anything else', () => {
    expect(formatVirtual(DATA)).toBe('0xffffc90001000000');
    expect(formatVirtual(toVirtual(0x0000_8000_0000_0000n))).toBe('0x0000800000000000');
    expect(formatVirtual(1.5)).toBe('1.5');
    expect(formatVirtual(-1)).toBe('-1');
    expect(formatVirtual(2 ** 49)).toBe('562949953421312');
    expect(formatVirtual(10n as never)).toBe('10n');
  });
});

// 12. The command line ------------------------------------------------------------------------------------------

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const CLI_ROWS: readonly (readonly [readonly string[], RegExp])[] = [
  [['run', 'stale-tlb', '-p', '__proto__=1'], /unknown parameter '__proto__' for scenario stale-tlb/],
  [['run', 'stale-tlb', '-p', 'constructor=1'], /unknown parameter 'constructor' for scenario stale-tlb/],
  [['run', 'stale-tlb', '-p', 'toString=1'], /unknown parameter 'toString' for scenario stale-tlb/],
  [['run', 'stale-tlb', '-p', 'hasOwnProperty=1'], /unknown parameter 'hasOwnProperty'/],
  [['run', 'stale-tlb', '-p', 'valueOf=1'], /unknown parameter 'valueOf'/],
  [
    ['run', 'stale-tlb', '-p', 'Reads=1'],
    /unknown parameter 'Reads' for scenario stale-tlb; valid parameters: reads \(1\.\.100\)/,
  ],
  [['run', 'stale-tlb', '-p', 'reads=abc'], /parameter reads=.*abc.* must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', 'reads=1.5'], /parameter reads=.*1\.5.* must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', 'reads=0'], /parameter reads=.*0.* must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', 'reads=101'], /parameter reads=.*101.* must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', 'reads=-1'], /parameter reads=.*-1.* must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', 'reads='], /parameter reads=.* must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', 'reads= 5'], /parameter reads=.* must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', 'reads=0x5'], /parameter reads=.*0x5.* must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', 'reads=1e1'], /parameter reads=.*1e1.* must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', 'reads=NaN'], /parameter reads=.*NaN.* must be an integer/],
  [['run', 'stale-tlb', '-p', 'reads=Infinity'], /parameter reads=.*Infinity.* must be an integer/],
  [['run', 'stale-tlb', '-p', 'reads=99999999999999999999'], /must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', `reads=${'9'.repeat(5000)}`], /must be an integer in 1\.\.100/],
  [['run', 'stale-tlb', '-p', 'reads=1', '-p', 'reads=2'], /parameter reads is given twice/],
  [['run', 'stale-tlb', '-p', '=5'], /parameter '=5' must be written key=value/],
  [['run', 'stale-tlb', '-p', 'reads'], /parameter 'reads' must be written key=value/],
  [['run', 'stale-tlb', '-p', '5'], /must be written key=value/],
  [['run', 'stale-tlb', '-p'], /value is missing/],
  [['run', 'stale-tlb', '--bogus'], /Unknown option `--bogus`/],
  [['run', 'stale-tlb', 'extra'], /Unused args: `extra`/],
  [['run'], /missing required args for command `run <scenario>`/],
  [['run', 'nope'], /unknown scenario 'nope'; valid scenarios: pf-in-pf, df-triple, stale-tlb/],
  [['run', '__proto__'], /unknown scenario '__proto__'/],
  [['run', 'toString'], /unknown scenario 'toString'/],
  [['run', 'constructor'], /unknown scenario 'constructor'/],
  [['run', ''], /unknown scenario ''|missing required args/],
  [['frobnicate'], /unknown command 'frobnicate'; commands: list, run <scenario>, /],
  [['list', 'extra'], /Unused args/],
  [['list', '-p', 'x=1'], /Unknown option `-p`/],
  [['demo', '--bogus'], /Unknown option `--bogus`/],
  [['run', 'pf-in-pf', '-p', 'cpus=0'], /parameter cpus=.*0.* must be an integer in 1\.\.64/],
  [['run', 'pf-in-pf', '-p', 'cpus=65'], /parameter cpus=.*65.* must be an integer in 1\.\.64/],
  [['run', 'pf-in-pf', '-p', 'df-ist=3'], /parameter df-ist=.*3.* must be an integer in 0\.\.2/],
  [['run', 'pf-in-pf', '-p', 'df-ist=true'], /parameter df-ist=.*true.* must be an integer in 0\.\.2/],
  [['run', 'pf-in-pf', '-p', 'reads=1'], /unknown parameter 'reads' for scenario pf-in-pf/],
  [['run', 'df-triple', '-p', 'df-ist=1'], /unknown parameter 'df-ist' for scenario df-triple/],
];

describe('the CLI: exit code 2 and a message on stderr', () => {
  it.each(CLI_ROWS)('%j', async (argv, message) => {
    const { code, out, err } = await cli(...argv);
    expect(code).toBe(2);
    expect(err).toMatch(/^x86slice: /);
    expect(err).toMatch(message);
    expect(err).not.toMatch(GARBAGE);
    expect(out).toBe('');
  });
});

// 13. Properties: any value at any entry point is accepted or refused with an InputError -------------------------

const RUNS = 100;

const nullProto = fc
  .dictionary(fc.string({ maxLength: 6 }), fc.anything({ maxDepth: 1 }), { maxKeys: 3 })
  .map((d) => Object.assign(Object.create(null) as object, d));
const edgeNumbers = fc.oneof(
  fc.constantFrom(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -0,
    0.5,
    1.5,
    -1,
    2 ** 32,
    3 * 2 ** 32,
    2 ** 46,
    2 ** 48,
    2 ** 53,
    2 ** 64,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    Number.EPSILON,
  ),
  fc.double(),
  fc.integer(),
  fc.maxSafeInteger(),
);
/** Anything a caller might pass: fast-check's anything (with boxed values, sparse arrays, typed arrays...), edge
 * numbers, bigints, strings and objects without a prototype. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything({
    maxDepth: 2,
    maxKeys: 4,
    withBoxedValues: true,
    withSparseArray: true,
    withBigInt: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withTypedArray: true,
    withObjectString: true,
    withNullPrototype: true,
  }),
  edgeNumbers,
  fc.bigInt(),
  fc.string(),
  nullProto,
  fc.constantFrom(Symbol('s'), namedFunction, () => 1, NotAProgram),
);

interface PropertyRow {
  readonly label: string;
  /** Needs a machine (fresh when the last call succeeded); `m` is undefined for calls with no machine. */
  readonly machine: boolean;
  readonly call: (m: Machine | undefined, value: unknown) => unknown;
}

const PROPERTY_ROWS: readonly PropertyRow[] = [
  { label: 'Machine.create(v)', machine: false, call: (_m, v) => Machine.create(v as never) },
  { label: 'Machine.create({ cpus: v })', machine: false, call: (_m, v) => Machine.create({ cpus: v as never }) },
  { label: 'Machine.create({ memory: v })', machine: false, call: (_m, v) => Machine.create({ memory: v as never }) },
  { label: 'Machine.create({ tlb: v })', machine: false, call: (_m, v) => Machine.create({ tlb: v as never }) },
  {
    label: 'Machine.create({ traceLimit: v })',
    machine: false,
    call: (_m, v) => Machine.create({ cpus: 1, traceLimit: v as never }),
  },
  {
    label: 'Machine.create({ tlb: { entries: v } })',
    machine: false,
    call: (_m, v) => Machine.create({ cpus: 1, tlb: { entries: v as never } }),
  },
  {
    label: 'Machine.create({ tlb: { ways: v } })',
    machine: false,
    call: (_m, v) => Machine.create({ cpus: 1, tlb: { ways: v as never } }),
  },
  {
    label: 'Machine.create({ tlb: { largeEntries: v } })',
    machine: false,
    call: (_m, v) => Machine.create({ cpus: 1, tlb: { largeEntries: v as never } }),
  },
  {
    label: 'Machine.create({ trace, footprint, boot: v })',
    machine: false,
    call: (_m, v) => Machine.create({ cpus: 1, trace: v as never, footprint: v as never, boot: v as never }),
  },
  { label: 'map(v)', machine: true, call: (m, v) => m!.map(v as never) },
  { label: 'map(FREE, v)', machine: true, call: (m, v) => m!.map(FREE, v as never) },
  { label: 'map(FREE, { writable: v })', machine: true, call: (m, v) => m!.map(FREE, { writable: v as never }) },
  { label: 'run(v)', machine: true, call: (m, v) => m!.run(v as never) },
  { label: 'run({ schedule: v })', machine: true, call: (m, v) => m!.run({ schedule: v as never }) },
  { label: 'run({ schedule: [0, v] })', machine: true, call: (m, v) => m!.run({ schedule: [0, v as never] }) },
  {
    label: 'run({ schedule: [{ cpu: 0, tlb: v, va: v }] })',
    machine: true,
    call: (m, v) => m!.run({ schedule: [{ cpu: 0, tlb: v as never, va: v as never }] }),
  },
  { label: 'run({ maxSteps: v })', machine: true, call: (m, v) => m!.run({ maxSteps: v as never }) },
  {
    label: "run({ schedule: 'random', seed: v })",
    machine: true,
    call: (m, v) => m!.run({ schedule: 'random', seed: v as never }),
  },
  { label: 'run({ schedule: String(v) })', machine: true, call: (m, v) => m!.run({ schedule: safeString(v) }) },
  { label: 'evictTlb(0, v)', machine: true, call: (m, v) => m!.evictTlb(0, v as never) },
  { label: 'fillTlb(0, v)', machine: true, call: (m, v) => m!.fillTlb(0, v as never) },
  { label: 'directMap(v)', machine: true, call: (m, v) => m!.directMap(v as never) },
  { label: 'pteAddress(v)', machine: true, call: (m, v) => m!.pteAddress(v as never) },
  { label: 'entryAddress(v, 1)', machine: true, call: (m, v) => m!.entryAddress(v as never, 1) },
  { label: 'entryAddress(DATA, v)', machine: true, call: (m, v) => m!.entryAddress(DATA, v as never) },
  { label: 'entryAddress(DATA, 1, v)', machine: true, call: (m, v) => m!.entryAddress(DATA, 1, v as never) },
  { label: 'physicalAddress(v)', machine: true, call: (m, v) => m!.physicalAddress(v as never) },
  { label: 'setGate(v, gate)', machine: true, call: (m, v) => m!.cpu(0).setGate(v as never, GOOD_GATE) },
  { label: 'setGate(0x80, v)', machine: true, call: (m, v) => m!.cpu(0).setGate(GATE_VECTOR, v as never) },
  {
    label: 'setGate(0x80, { ist, type, dpl, selector, present: v })',
    machine: true,
    call: (m, v) =>
      m!.cpu(0).setGate(GATE_VECTOR, {
        ...GOOD_GATE,
        [['ist', 'type', 'dpl', 'selector', 'present', 'handler'][Math.abs(safeHash(v)) % 6]!]: v,
      }),
  },
  { label: 'clearGate(v)', machine: true, call: (m, v) => m!.cpu(0).clearGate(v as never) },
  { label: 'toVirtual(v)', machine: false, call: (_m, v) => toVirtual(v as never) },
  { label: 'parseSchedule(v)', machine: false, call: (_m, v) => parseSchedule(v as never) },
  { label: 'parseSchedule(String(v))', machine: false, call: (_m, v) => parseSchedule(safeString(v)) },
  { label: 'parseScheduleRuns(v)', machine: false, call: (_m, v) => parseScheduleRuns(v as never) },
];

/** Builders, each given the value in one operand (the others valid); run on a standalone assembler. */
const BUILDER_PROPERTY_ROWS: readonly (readonly [string, (x: Assembler, v: never) => unknown])[] = [
  ['load(v)', (x, v) => x.load(v)],
  ['load(DATA, v)', (x, v) => x.load(DATA, v)],
  ['load(DATA, 8, v)', (x, v) => x.load(DATA, 8, v)],
  ['store(DATA, 8, v)', (x, v) => x.store(DATA, 8, v)],
  ['store(DATA, 1, v)', (x, v) => x.store(DATA, 1, v)],
  ['store(DATA, v, 0)', (x, v) => x.store(DATA, v, 0)],
  ['store(DATA, 4, 0, v)', (x, v) => x.store(DATA, 4, 0, v)],
  ['push(v)', (x, v) => x.push(v)],
  ['cmpxchg(DATA, 2, v, 0)', (x, v) => x.cmpxchg(DATA, 2, v, 0)],
  ['cmpxchg(DATA, 4, 0, v)', (x, v) => x.cmpxchg(DATA, 4, 0, v)],
  ['xchg(v, 8, 0)', (x, v) => x.xchg(v, 8, 0)],
  ['spinUntil(DATA, 8, v)', (x, v) => x.spinUntil(DATA, 8, v)],
  ['invlpg(v)', (x, v) => x.invlpg(v)],
  ['movToCr3(v)', (x, v) => x.movToCr3(v)],
  ['movToCr2(v)', (x, v) => x.movToCr2(v)],
  ['movToRsp(v)', (x, v) => x.movToRsp(v)],
  ['wrmsr(v, 0)', (x, v) => x.wrmsr(v, 0)],
  ['int(v)', (x, v) => x.int(v)],
  ['sendIpi(v, 0xf0)', (x, v) => x.sendIpi(v, 0xf0)],
  ['sendIpi(1, v)', (x, v) => x.sendIpi(1, v)],
  ['sendIpi(1, 0xf0, v)', (x, v) => x.sendIpi(1, 0xf0, v)],
  ['iret(v)', (x, v) => x.iret(v)],
  ['call(v)', (x, v) => x.call(v)],
  ['ret(v)', (x, v) => x.ret(v)],
  ['assert(v, "m")', (x, v) => x.assert(v, 'm')],
  ['assert(true, v)', (x, v) => x.assert(true, v)],
  ['die(v, "m")', (x, v) => x.die(v, 'm')],
  ['die("oops", v)', (x, v) => x.die('oops', v)],
  ['userEntry(v)', (x, v) => x.userEntry(v)],
];

/** A string from any value, without the value's own toString (which may throw). */
function safeString(v: unknown): string {
  return typeof v === 'string' ? v : describeValue(v);
}
function safeHash(v: unknown): number {
  const s = safeString(v);
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
  return h;
}

/** A refused call must be an InputError with a readable message. */
function checkRefusal(error: unknown): void {
  if (!(error instanceof InputError)) {
    throw new Error(`not an InputError: ${describeValue(error)} ${String((error as Error)?.message)}`);
  }
  expect(typeof error.message).toBe('string');
  expect(error.message.length).toBeGreaterThan(0);
  expect(error.message).not.toMatch(GARBAGE);
}

describe('properties: any value is accepted or refused with an InputError, and a refusal changes nothing', () => {
  it.each(PROPERTY_ROWS)('$label', ({ machine: needsMachine, call }) => {
    let m = needsMachine ? machine() : undefined;
    fc.assert(
      fc.property(anyValue, (v) => {
        const before = m && fingerprint(m);
        const error = thrown(() => call(m, v));
        if (error === NOTHING) {
          if (needsMachine) m = machine(); // it changed the machine: the next value gets a fresh one
          return;
        }
        checkRefusal(error);
        if (m) expect(fingerprint(m)).toEqual(before);
      }),
      { numRuns: RUNS },
    );
    if (m) expectUsable(m);
  });

  it.each(BUILDER_PROPERTY_ROWS)('x.%s', (_label, build) => {
    const x = new Assembler(0, () => 0x1000);
    fc.assert(
      fc.property(anyValue, (v) => {
        const before = { builds: x.builds, consumed: x.consumed, reused: { ...x.reused } };
        const error = thrown(() => build(x, v as never));
        if (error === NOTHING) return;
        checkRefusal(error);
        expect(error as Error).toHaveProperty('message', expect.stringMatching(/^CPU 0 /));
        expect({ builds: x.builds, consumed: x.consumed, reused: { ...x.reused } }).toEqual(before);
      }),
      { numRuns: RUNS },
    );
  });

  it('describeValue and formatVirtual never throw, and describeValue stays short', () => {
    fc.assert(
      fc.property(anyValue, (v) => {
        const described = describeValue(v);
        expect(typeof described).toBe('string');
        expect(described.length).toBeLessThanOrEqual(80);
        expect(described).not.toMatch(GARBAGE);
        expect(typeof formatVirtual(v as never)).toBe('string');
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('a bad operand in a program stops only its CPU and is never resumed past', () => {
    fc.assert(
      fc.property(anyValue, fc.constantFrom(...BUILDER_PROPERTY_ROWS), (v, [, build]) => {
        const m = machine(false);
        let after = 0;
        let refused: unknown = NOTHING;
        m.load(0, function* (x) {
          let instruction: unknown;
          try {
            instruction = build(x, v as never);
          } catch (error) {
            refused = error;
            throw error;
          }
          yield instruction as Instruction;
          after++;
        });
        m.load(1, pauses);
        const error = thrown(() => m.run({ schedule: '0,1,0' }));
        if (refused === NOTHING) return; // the value was accepted (what it then does is another test's business)
        expect(error).toBe(refused);
        checkRefusal(error);
        expect(m.cpu(0).state).toBe('stopped');
        expect(m.cpu(0).stopEvent?.outcome).toBe('assertion');
        expect(m.run().steps).toBe(0);
        expect(after).toBe(0);
        expect(m.step(1)?.op).toBe('pause');
      }),
      { numRuns: RUNS },
    );
  });

  it('the CLI answers any -p value and any parameter name with 0 or 2, never an exception', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string(), fc.integer().map(String), fc.constantFrom('1', '100', '101', '0', '-0', '1.0', '')),
        async (value) => {
          const { code, err } = await cli('run', 'stale-tlb', '-p', `reads=${value}`, '--json');
          expect([0, 2]).toContain(code);
          if (code === 2) expect(err).toMatch(/^x86slice: parameter reads=[\s\S]* must be an integer in 1\.\.100$/);
        },
      ),
      { numRuns: RUNS },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 1 }).filter((key) => !key.startsWith('-') && !key.includes('=') && key !== 'reads'),
        async (key) => {
          const { code, err } = await cli('run', 'stale-tlb', '-p', `${key}=1`);
          expect(code).toBe(2);
          expect(err).toMatch(/^x86slice: (unknown parameter .+ for scenario stale-tlb|parameter .+ must be written)/);
        },
      ),
      { numRuns: RUNS },
    );
  });

  // Objects without a prototype among the values (see Machine.cpu() above).
  it('step(v) with any value is accepted or refused with an InputError', () => {
    const m = machine();
    fc.assert(
      fc.property(anyValue, (v) => {
        const error = thrown(() => m.step(v as never));
        if (error !== NOTHING) checkRefusal(error);
      }),
      { numRuns: RUNS, examples: [[Object.create(null)]] },
    );
  });

  // load(0, v) never calls v (see load() above).
  it('load(0, v) with any value is accepted or refused with an InputError', () => {
    fc.assert(
      fc.property(anyValue, (v) => {
        const m = machine(false);
        const error = thrown(() => m.load(0, v as never));
        if (error !== NOTHING) checkRefusal(error);
      }),
      { numRuns: RUNS, examples: [[5]] },
    );
  });
});

// 14. Revoked proxies as options ----------------------------------------------------------------------------------

// A revoked Proxy, which throws on any look at it, is refused with an InputError wherever an options object goes:
// Machine.create, its tlb, map flags, run options, schedule arrays, load/store/iret options, sendIpi destinations,
// setGate gates.
const REVOKED_ROWS: readonly (readonly [string, (m: Machine) => unknown])[] = [
  ['Machine.create(proxy)', () => Machine.create(revoked() as never)],
  ['Machine.create({ tlb: proxy })', () => Machine.create({ tlb: revoked() as never })],
  ['map(FREE, proxy)', (m) => m.map(FREE, revoked() as never)],
  ['run(proxy)', (m) => m.run(revoked() as never)],
  ['run({ schedule: proxy })', (m) => m.run({ schedule: revoked() as never })],
  ['run({ schedule: [proxy] })', (m) => m.run({ schedule: [revoked() as never] })],
  ['setGate(0x80, proxy)', (m) => m.cpu(0).setGate(GATE_VECTOR, revoked() as never)],
  ['x.load(DATA, 8, proxy)', () => new Assembler(0).load(DATA, 8, revoked() as never)],
  ['x.store(DATA, 8, 0, proxy)', () => new Assembler(0).store(DATA, 8, 0, revoked() as never)],
  ['x.iret(proxy)', () => new Assembler(0).iret(revoked() as never)],
  ['x.sendIpi(proxy, 0xf0)', () => new Assembler(0).sendIpi(revoked() as never, 0xf0)],
];

describe('a revoked Proxy passed as options', () => {
  it.each(REVOKED_ROWS)('%s is refused with an InputError', (_label, call) => {
    const m = machine();
    expectRefused(m, call, /an unprintable value/);
  });

  it('where the value is only described, a revoked Proxy is "an unprintable value"', () => {
    const m = machine();
    expectRefused(m, (mm) => mm.map(revoked() as never), /^map\(\) address an unprintable value is not an address/);
    expectRefused(m, (mm) => mm.directMap(revoked() as never), /^physical address an unprintable value is outside/);
    expectRefused(
      m,
      (mm) => mm.cpu(0).setGate(revoked() as never, GOOD_GATE),
      /IDT vector an unprintable value must be an integer/,
    );
    expectInputError(
      thrown(() => parseSchedule(revoked() as never)),
      /^schedule an unprintable value must be a string or an array$/,
    );
  });
});

// The count ----------------------------------------------------------------------------------------------------

/** Every table of bad inputs (VALUE_MEANINGS holds good ones, so it is not counted). */
const TABLES: Readonly<Record<string, readonly unknown[]>> = {
  CREATE_ROWS,
  MAP_ADDRESS_ROWS,
  MAP_FLAG_ROWS,
  ADDRESS_ROWS,
  CPU_ID_ROWS,
  LOAD_ROWS,
  NOT_PROGRAMS_VALUES,
  RUN_ROWS,
  SCHEDULE_STRINGS,
  NOT_SCHEDULES,
  HELPER_ROWS,
  GATE_ROWS,
  BUILDER_ADDRESS_ROWS,
  BUILDER_SIZE_ROWS,
  BUILDER_VALUE_ROWS,
  BUILDER_OTHER_ROWS,
  EXECUTION_ROWS,
  DESCRIBED,
  CLI_ROWS,
  REVOKED_ROWS,
  YIELDED_MISSHOWN,
  NULL_ROWS,
  FAST_PATH_ADDRESS_ROWS,
};
/**
 * Bad inputs of the tests written inline: CPU ids (3), plain function and arrow given to load (2), a
 * schedule naming a CPU with no program (1), map out of memory (1), non-canonical TLB events (2), unknown gate keys
 * (4), exotic yields (3), hand-built instructions (2), a foreign build (1), a throwing destination iterator (1).
 */
const INLINE_ROWS = 3 + 2 + 1 + 1 + 2 + 4 + 3 + 2 + 1 + 1;
/** fast-check runs: the property tables, describeValue (twice RUNS), the in-program one, the CLI (two), step and load (two). */
const PROPERTY_RUNS =
  (PROPERTY_ROWS.length + BUILDER_PROPERTY_ROWS.length) * RUNS + 2 * RUNS + RUNS + 2 * RUNS + 2 * RUNS;

describe('the count', () => {
  it('adds up the bad inputs tried', () => {
    const rows = Object.values(TABLES).reduce((sum, table) => sum + table.length, 0) + INLINE_ROWS;
    const total = rows + PROPERTY_RUNS;
    console.log(`bad inputs tried: ${total} (${rows} table rows + ${PROPERTY_RUNS} fast-check runs)`);
    expect(rows).toBeGreaterThan(500);
  });
});
