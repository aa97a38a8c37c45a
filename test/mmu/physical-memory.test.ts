import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { InputError, PAGE_SIZE } from '../../src/mmu/address.ts';
import { PhysicalMemory } from '../../src/mmu/physical-memory.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('sparse physical memory', () => {
  it('reads zero from frames never written, without materialising them', () => {
    const memory = new PhysicalMemory(64 * MiB);
    expect(memory.read8(0)).toBe(0);
    expect(memory.read32(0x12_3458)).toBe(0);
    expect(memory.read64(64 * MiB - 8)).toBe(0);
    expect(memory.frameBytes(0x200).every((b) => b === 0)).toBe(true);
    expect(memory.ownFrameCount).toBe(0);
    expect(memory.materialisedFrames()).toEqual([]);
  });

  it('owns exactly the 3 frames a 4 GiB memory touched, however often each was written', () => {
    const memory = new PhysicalMemory(4 * GiB);
    memory.write8(0x1000, 1);
    memory.write32(0x1ffc, 2);
    memory.write64(2 * GiB, 3);
    memory.write16(4 * GiB - 2, 4);
    memory.read32(3 * GiB);
    expect(memory.ownFrameCount).toBe(3);
    expect(memory.materialisedFrames()).toEqual([1, (2 * GiB) / PAGE_SIZE, (4 * GiB) / PAGE_SIZE - 1]);
    expect(memory.read16(4 * GiB - 2)).toBe(4);
  });

  it('rejects a size that is not a positive multiple of the page size, naming it', () => {
    expect(() => new PhysicalMemory(1000)).toThrow(InputError);
    expect(() => new PhysicalMemory(1000)).toThrow(/1000/);
    expect(() => new PhysicalMemory(0)).toThrow(InputError);
  });
});

describe('little-endian access', () => {
  it('stores a 32-bit value least significant byte first and reads it back at every width', () => {
    const memory = new PhysicalMemory(MiB);
    memory.write32(0x2000, 0x1122_3344);
    expect([0, 1, 2, 3].map((i) => memory.read8(0x2000 + i))).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(memory.read16(0x2000)).toBe(0x3344);
    expect(memory.read16(0x2002)).toBe(0x1122);
    expect(memory.read32(0x2000)).toBe(0x1122_3344);
  });

  it('stores a 64-bit value as its low then high 32-bit halves and reads it back exactly below 2^53', () => {
    const memory = new PhysicalMemory(MiB);
    memory.write64(0x3000, 0x1_2345_6789);
    expect(memory.read32(0x3000)).toBe(0x2345_6789);
    expect(memory.read32(0x3004)).toBe(1);
    memory.write64(0x3008, Number.MAX_SAFE_INTEGER);
    expect(memory.read64(0x3008)).toBe(Number.MAX_SAFE_INTEGER);
    expect(memory.read32(0x300c)).toBe(0x1f_ffff);
  });

  it('keeps only the low bits of a value wider than the access', () => {
    const memory = new PhysicalMemory(MiB);
    memory.write8(0, 0x1ff);
    memory.write16(2, 0x1_2345);
    memory.write32(4, 0x1_0000_0001);
    expect(memory.read8(0)).toBe(0xff);
    expect(memory.read8(1)).toBe(0);
    expect(memory.read16(2)).toBe(0x2345);
    expect(memory.read32(4)).toBe(1);
  });

  it('reads back what write(pa, size, value) stored for sizes 1, 2, 4 and 8', () => {
    const access = fc.constantFrom(1, 2, 4, 8).chain((size) =>
      fc.record({
        size: fc.constant(size),
        pa: fc.nat({ max: (16 * PAGE_SIZE) / size - 1 }).map((i) => i * size),
        value: size === 8 ? fc.nat({ max: Number.MAX_SAFE_INTEGER }) : fc.nat({ max: 2 ** (8 * size) - 1 }),
      }),
    );
    fc.assert(
      fc.property(access, ({ size, pa, value }) => {
        const memory = new PhysicalMemory(16 * PAGE_SIZE);
        memory.write(pa, size, value);
        expect(memory.read(pa, size)).toBe(value);
        let expectedBytes = BigInt(value);
        for (let i = 0; i < size; i++, expectedBytes >>= 8n) {
          expect(memory.read8(pa + i)).toBe(Number(expectedBytes & 0xffn));
        }
      }),
    );
  });

  it('behaves like a flat byte array under any mix of accesses, including frames that share a cache set', () => {
    // Frames 0x10, 0x110, 0x210 and 0x310 collide in the 256-set frame cache; 0x11 is a neighbour.
    const frames = [0x10, 0x110, 0x210, 0x310, 0x11];
    const access = fc.record({
      frame: fc.constantFrom(...frames),
      size: fc.constantFrom(1, 2, 4, 8),
      slot: fc.nat({ max: 511 }),
      value: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      write: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(access, { maxLength: 60 }), (accesses) => {
        const memory = new PhysicalMemory(4 * MiB);
        const bytes = new Map<number, number>();
        for (const { frame, size, slot, value, write } of accesses) {
          const pa = frame * PAGE_SIZE + ((slot * size) % PAGE_SIZE);
          const stored = size === 8 ? value : value % 2 ** (8 * size);
          if (write) {
            memory.write(pa, size, stored);
            let rest = BigInt(stored);
            for (let i = 0; i < size; i++, rest >>= 8n) bytes.set(pa + i, Number(rest & 0xffn));
          } else {
            let expected = 0n;
            for (let i = size - 1; i >= 0; i--) expected = (expected << 8n) | BigInt(bytes.get(pa + i) ?? 0);
            if (expected <= BigInt(Number.MAX_SAFE_INTEGER)) expect(memory.read(pa, size)).toBe(Number(expected));
          }
        }
      }),
    );
  });
});

describe('frames', () => {
  it('copyFrame copies all 4096 bytes of a frame and leaves the source as it was', () => {
    const memory = new PhysicalMemory(MiB);
    for (let i = 0; i < PAGE_SIZE; i += 4) memory.write32(0x5000 + i, (i * 0x0101_0101) >>> 0);
    memory.write32(0x9000 + 0x10, 0xdead_beef);
    memory.copyFrame(5, 9);
    expect(memory.frameBytes(9)).toEqual(memory.frameBytes(5));
    memory.write32(0x9000, 0xffff_ffff);
    expect(memory.read32(0x5000)).toBe(0);
    expect(memory.read32(0x9010)).toBe(memory.read32(0x5010));
  });

  it('copyFrame from a frame never written zeroes the destination', () => {
    const memory = new PhysicalMemory(MiB);
    memory.write32(0x9ffc, 7);
    memory.copyFrame(0x20, 9);
    expect(memory.read32(0x9ffc)).toBe(0);
  });

  it('frameBytes returns a copy that does not alias memory', () => {
    const memory = new PhysicalMemory(MiB);
    memory.write8(0x4000, 9);
    const bytes = memory.frameBytes(4);
    bytes[0] = 1;
    expect(memory.read8(0x4000)).toBe(9);
  });
});

describe('copy-on-write images', () => {
  function baseImage() {
    const original = new PhysicalMemory(16 * MiB);
    original.write32(0x1000, 0x1111_1111);
    original.write32(0x2000, 0x2222_2222);
    const image = original.freeze();
    return { original, image };
  }

  it('a clone reads the image and a write in it affects neither the image nor another clone', () => {
    const { original, image } = baseImage();
    const a = new PhysicalMemory(16 * MiB, image);
    const b = new PhysicalMemory(16 * MiB, image);
    expect(a.read32(0x1000)).toBe(0x1111_1111);
    a.write32(0x1000, 0xaaaa_aaaa);
    a.write32(0x3000, 0xaaaa_aaaa);
    expect(a.read32(0x1000)).toBe(0xaaaa_aaaa);
    expect(b.read32(0x1000)).toBe(0x1111_1111);
    expect(b.read32(0x3000)).toBe(0);
    expect(original.read32(0x1000)).toBe(0x1111_1111);
    expect(new PhysicalMemory(16 * MiB, image).read32(0x1000)).toBe(0x1111_1111);
    expect(image.get(1)?.getUint32(0, true)).toBe(0x1111_1111);
  });

  it('a clone owns only the frames it wrote and keeps the bytes of the image it did not overwrite', () => {
    const { image } = baseImage();
    const clone = new PhysicalMemory(16 * MiB, image);
    expect(clone.ownFrameCount).toBe(0);
    clone.write8(0x1004, 0x55);
    expect(clone.ownFrameCount).toBe(1);
    expect(clone.read32(0x1000)).toBe(0x1111_1111);
    expect(clone.read8(0x1004)).toBe(0x55);
    expect(clone.materialisedFrames()).toEqual([1, 2]);
  });

  it('the frozen memory keeps working on top of its image, and its later writes do not reach clones', () => {
    const { original, image } = baseImage();
    expect(original.ownFrameCount).toBe(0);
    const clone = new PhysicalMemory(16 * MiB, image);
    original.write32(0x2000, 0x0bad_0bad);
    expect(original.read32(0x2000)).toBe(0x0bad_0bad);
    expect(clone.read32(0x2000)).toBe(0x2222_2222);
    expect(image.get(2)?.getUint32(0, true)).toBe(0x2222_2222);
  });

  it('copyFrame in a clone does not write through to the image', () => {
    const { image } = baseImage();
    const clone = new PhysicalMemory(16 * MiB, image);
    clone.copyFrame(1, 2);
    expect(clone.read32(0x2000)).toBe(0x1111_1111);
    expect(new PhysicalMemory(16 * MiB, image).read32(0x2000)).toBe(0x2222_2222);
  });

  it('clones made from successive freezes each see the memory as it was when frozen', () => {
    const memory = new PhysicalMemory(MiB);
    memory.write32(0x1000, 1);
    const first = memory.freeze();
    memory.write32(0x1000, 2);
    memory.write32(0x5000, 5);
    const second = memory.freeze();
    const one = new PhysicalMemory(MiB, first);
    const two = new PhysicalMemory(MiB, second);
    expect([one.read32(0x1000), one.read32(0x5000)]).toEqual([1, 0]);
    expect([two.read32(0x1000), two.read32(0x5000)]).toEqual([2, 5]);
  });
});

describe('addresses outside installed memory', () => {
  const size = 64 * 1024;

  it('read as all ones, including an access that straddles the end', () => {
    const memory = new PhysicalMemory(size);
    expect(memory.read8(size)).toBe(0xff);
    expect(memory.read16(size - 1)).toBe(0xffff);
    expect(memory.read32(size + 0x1000)).toBe(0xffff_ffff);
    expect(memory.read32(-4)).toBe(0xffff_ffff);
    expect(memory.read(size, 4)).toBe(0xffff_ffff);
    expect(memory.read8(size - 1)).toBe(0);
  });

  it('drop writes without materialising a frame or throwing', () => {
    const memory = new PhysicalMemory(size);
    memory.write8(size, 1);
    memory.write16(size - 1, 1);
    memory.write32(size + 0x1000, 1);
    memory.write64(2 ** 40, 1);
    memory.write32(-4, 1);
    expect(memory.ownFrameCount).toBe(0);
    expect(memory.read8(size - 1)).toBe(0);
  });

  it('drop a copyFrame whose destination is past the end', () => {
    const memory = new PhysicalMemory(size);
    memory.write32(0, 0x1234);
    memory.copyFrame(0, size / PAGE_SIZE + 1);
    expect(memory.ownFrameCount).toBe(1);
    expect(memory.materialisedFrames()).toEqual([0]);
  });
});

describe('write watches', () => {
  function watched() {
    const memory = new PhysicalMemory(MiB);
    const watcher = vi.fn();
    memory.setWatcher(watcher);
    return { memory, watcher };
  }

  it('call the watcher once, with the owner, for a write overlapping the range, then disarm', () => {
    const { memory, watcher } = watched();
    memory.watch(3, 0x1004, 8);
    memory.write32(0x1002, 1); // bytes 0x1002..0x1005 overlap 0x1004..0x100b
    expect(watcher).toHaveBeenCalledExactlyOnceWith(3);
    memory.write32(0x1004, 2);
    expect(watcher).toHaveBeenCalledTimes(1);
  });

  it('do not fire for a write that ends where the range starts or starts where it ends', () => {
    const { memory, watcher } = watched();
    memory.watch(0, 0x1004, 8);
    memory.write32(0x1000, 1);
    memory.write32(0x100c, 1);
    memory.write64(0x2004, 1);
    memory.read32(0x1004);
    expect(watcher).not.toHaveBeenCalled();
    memory.write8(0x100b, 1);
    expect(watcher).toHaveBeenCalledExactlyOnceWith(0);
  });

  it('fire for a copyFrame onto the watched frame and not for a dropped out-of-range write', () => {
    const { memory, watcher } = watched();
    memory.watch(1, 0x7ff8, 8);
    memory.write32(MiB, 1);
    memory.copyFrame(7, 2);
    expect(watcher).not.toHaveBeenCalled();
    memory.copyFrame(2, 7);
    expect(watcher).toHaveBeenCalledExactlyOnceWith(1);
  });

  it('do not fire after unwatch', () => {
    const { memory, watcher } = watched();
    memory.watch(2, 0x1000, 4);
    memory.unwatch(2);
    memory.write32(0x1000, 1);
    expect(watcher).not.toHaveBeenCalled();
  });

  it('fire once for each owner whose range a write overlaps, and only for those', () => {
    const { memory, watcher } = watched();
    memory.watch(0, 0x1000, 8);
    memory.watch(1, 0x1004, 8);
    memory.watch(2, 0x2000, 8);
    memory.write64(0x1000, 1);
    expect(watcher.mock.calls.map(([owner]) => owner).sort()).toEqual([0, 1]);
    memory.write8(0x2007, 1);
    expect(watcher).toHaveBeenLastCalledWith(2);
    expect(watcher).toHaveBeenCalledTimes(3);
  });

  it('re-arming an owner moves its range', () => {
    const { memory, watcher } = watched();
    memory.watch(0, 0x1000, 8);
    memory.watch(0, 0x3000, 8);
    memory.write32(0x1000, 1);
    expect(watcher).not.toHaveBeenCalled();
    memory.write32(0x3000, 1);
    expect(watcher).toHaveBeenCalledExactlyOnceWith(0);
  });

  it('a write to an armed range with no watcher set is not an error', () => {
    const memory = new PhysicalMemory(MiB);
    memory.watch(0, 0x1000, 8);
    expect(() => memory.write32(0x1000, 1)).not.toThrow();
    expect(memory.read32(0x1000)).toBe(1);
  });

  it('reject an owner outside the configured range, naming it', () => {
    const memory = new PhysicalMemory(MiB, undefined, 4);
    expect(() => memory.watch(4, 0, 8)).toThrow(InputError);
    expect(() => memory.watch(4, 0, 8)).toThrow(/owner 4/);
    expect(() => memory.watch(-1, 0, 8)).toThrow(InputError);
  });
});
