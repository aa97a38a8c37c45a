import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StoreBuffer } from '../../src/cpu/store-buffer.ts';
import { InputError } from '../../src/mmu/input-error.ts';
import { PhysicalMemory } from '../../src/mmu/physical-memory.ts';

const BASE = 0x10_0000;

/** Bytes of `value` stored little-endian in `size` bytes. */
function bytesOf(value: number, size: number): number[] {
  const out: number[] = [];
  let v = value;
  for (let b = 0; b < size; b++) {
    out.push(v % 256);
    v = Math.floor(v / 256);
  }
  return out;
}

describe('a CPU store buffer (x86-TSO)', () => {
  it("the CPU's own load sees its newest buffered store; memory does not until it drains", () => {
    const memory = new PhysicalMemory(4 * 1024 * 1024);
    const sb = new StoreBuffer(4);
    sb.push(0xffffc90000001000, BASE, 8, 1, 0);
    sb.push(0xffffc90000001000, BASE, 8, 2, 0);
    expect(sb.forward(memory, BASE, 8)).toBe(2);
    expect(memory.read(BASE, 8)).toBe(0);
    sb.writeOldest(memory);
    expect([memory.read(BASE, 8), sb.forward(memory, BASE, 8), sb.length]).toEqual([1, 2, 1]);
    sb.writeOldest(memory);
    expect([memory.read(BASE, 8), sb.length]).toEqual([2, 0]);
  });

  it('a load that overlaps a buffered store in part merges its bytes with memory', () => {
    const memory = new PhysicalMemory(4 * 1024 * 1024);
    memory.write(BASE, 8, 0x1122_3344_5566);
    const sb = new StoreBuffer(2);
    sb.push(0, BASE + 2, 2, 0xabcd, 0);
    expect(sb.forward(memory, BASE, 8)).toBe(0x1122_abcd_5566);
    expect(sb.forward(memory, BASE + 4, 4)).toBe(0x1122);
  });

  it('refuses a capacity outside 1..64 and a push into a full buffer, naming the rule', () => {
    expect(() => new StoreBuffer(0)).toThrow(/0 means no store buffer/);
    expect(() => new StoreBuffer(65)).toThrow(InputError);
    const sb = new StoreBuffer(1);
    sb.push(0, BASE, 1, 1, 0);
    expect(() => sb.push(0, BASE, 1, 2, 0)).toThrow(/drain the oldest store first/);
  });

  it('forwards and drains like a FIFO of byte writes, whatever the stores and loads', () => {
    const size = fc.constantFrom(1, 2, 4, 8);
    const store = fc
      .record({ offset: fc.nat({ max: 24 }), size, value: fc.nat({ max: 2 ** 53 - 1 }) })
      .map((s) => ({ ...s, value: s.size === 8 ? s.value : s.value % 2 ** (8 * s.size) }));
    const op = fc.oneof(
      fc.record({ kind: fc.constant('store' as const), store }),
      fc.record({ kind: fc.constant('load' as const), offset: fc.nat({ max: 24 }), size }),
      fc.record({ kind: fc.constant('drain' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const memory = new PhysicalMemory(4 * 1024 * 1024);
        const sb = new StoreBuffer(3);
        const mem = new Array<number>(32).fill(0); // the reference memory's bytes
        const pending: { offset: number; bytes: number[] }[] = [];
        const drainOne = () => {
          sb.writeOldest(memory);
          const s = pending.shift()!;
          s.bytes.forEach((b, k) => {
            mem[s.offset + k] = b;
          });
        };
        for (const o of ops) {
          if (o.kind === 'store') {
            if (sb.length === sb.capacity) drainOne();
            sb.push(0, BASE + o.store.offset, o.store.size, o.store.value, 0);
            pending.push({ offset: o.store.offset, bytes: bytesOf(o.store.value, o.store.size) });
          } else if (o.kind === 'drain') {
            if (sb.length > 0) drainOne();
          } else {
            const view = mem.slice();
            for (const s of pending) {
              for (let k = 0; k < s.bytes.length; k++) view[s.offset + k] = s.bytes[k]!;
            }
            let expected = 0;
            for (let b = o.size - 1; b >= 0; b--) expected = expected * 256 + view[o.offset + b]!;
            expect(sb.forward(memory, BASE + o.offset, o.size)).toBe(expected);
          }
          for (let b = 0; b < 32; b++) expect(memory.read8(BASE + b)).toBe(mem[b]);
        }
      }),
      { seed: 8, numRuns: 300 },
    );
  });
});
