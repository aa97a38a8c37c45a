// Typed arrays carved from one ArrayBuffer. Each ArrayBuffer the engine allocates lives outside the JS heap and costs
// a few microseconds to make (measured here: 2.5 us for a Float64Array(256), 40 ns for a view on an existing
// buffer), so the arrays a machine needs per CPU (TLBs, page caches) come from one buffer per machine.

export interface ArenaSize {
  readonly float64?: number;
  readonly uint32?: number;
  readonly uint8?: number;
  /** How many arrays will be carved: each may need up to 7 bytes of alignment padding. */
  readonly arrays?: number;
}

/** Bytes an arena needs for `sizes` together. */
export function arenaBytes(...sizes: readonly ArenaSize[]): number {
  let bytes = 0;
  for (const s of sizes) bytes += 8 * (s.float64 ?? 0) + 4 * (s.uint32 ?? 0) + (s.uint8 ?? 0) + 8 * (s.arrays ?? 8);
  return bytes;
}

/** Hands out aligned views of one buffer, in any order, until it is used up. */
export class TypedArena {
  private readonly buffer: ArrayBuffer;
  private offset = 0;

  constructor(size: ArenaSize | number) {
    this.buffer = new ArrayBuffer(typeof size === 'number' ? size : arenaBytes(size));
  }

  private take(bytes: number, align: number): number {
    const at = Math.ceil(this.offset / align) * align;
    if (at + bytes > this.buffer.byteLength)
      throw new Error(`typed arena of ${this.buffer.byteLength} bytes is used up`);
    this.offset = at + bytes;
    return at;
  }

  float64(length: number): Float64Array {
    return new Float64Array(this.buffer, this.take(8 * length, 8), length);
  }

  uint32(length: number): Uint32Array {
    return new Uint32Array(this.buffer, this.take(4 * length, 4), length);
  }

  uint8(length: number): Uint8Array {
    return new Uint8Array(this.buffer, this.take(length, 1), length);
  }
}
