/**
 * Streaming XXH32 (the checksum of the LZ4 frame format), in 32-bit integer arithmetic.
 */
const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const P3 = 0xc2b2ae3d | 0;
const P4 = 0x27d4eb2f | 0;
const P5 = 0x165667b1 | 0;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function u32le(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
}

/** Where a running XXH32 stands, as plain data (restore() resumes an Xxh32 of the same seed from it). */
export interface Xxh32State {
  lanes: [number, number, number, number];
  total: number;
  /** The input not yet folded into the lanes (under 16 bytes), in a buffer of its own. */
  memory: Uint8Array;
}

export class Xxh32 {
  #v1: number;
  #v2: number;
  #v3: number;
  #v4: number;
  readonly #seed: number;
  #total = 0;
  readonly #memory = new Uint8Array(16);
  #memorySize = 0;

  constructor(seed = 0) {
    this.#seed = seed | 0;
    this.#v1 = (this.#seed + P1 + P2) | 0;
    this.#v2 = (this.#seed + P2) | 0;
    this.#v3 = this.#seed;
    this.#v4 = (this.#seed - P1) | 0;
  }

  get state(): Xxh32State {
    return {
      lanes: [this.#v1, this.#v2, this.#v3, this.#v4],
      total: this.#total,
      memory: this.#memory.slice(0, this.#memorySize),
    };
  }

  restore(state: Xxh32State): this {
    [this.#v1, this.#v2, this.#v3, this.#v4] = state.lanes;
    this.#total = state.total;
    this.#memory.set(state.memory);
    this.#memorySize = state.memory.length;
    return this;
  }

  update(data: Uint8Array): this {
    let i = 0;
    const n = data.length;
    this.#total += n;
    if (this.#memorySize + n < 16) {
      this.#memory.set(data, this.#memorySize);
      this.#memorySize += n;
      return this;
    }
    let v1 = this.#v1;
    let v2 = this.#v2;
    let v3 = this.#v3;
    let v4 = this.#v4;
    if (this.#memorySize > 0) {
      i = 16 - this.#memorySize;
      this.#memory.set(data.subarray(0, i), this.#memorySize);
      const m = this.#memory;
      v1 = Math.imul(rotl((v1 + Math.imul(u32le(m, 0), P2)) | 0, 13), P1);
      v2 = Math.imul(rotl((v2 + Math.imul(u32le(m, 4), P2)) | 0, 13), P1);
      v3 = Math.imul(rotl((v3 + Math.imul(u32le(m, 8), P2)) | 0, 13), P1);
      v4 = Math.imul(rotl((v4 + Math.imul(u32le(m, 12), P2)) | 0, 13), P1);
      this.#memorySize = 0;
    }
    const limit = n - 16;
    for (; i <= limit; i += 16) {
      v1 = (v1 + Math.imul(data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24), P2)) | 0;
      v1 = Math.imul((v1 << 13) | (v1 >>> 19), P1);
      v2 = (v2 + Math.imul(data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24), P2)) | 0;
      v2 = Math.imul((v2 << 13) | (v2 >>> 19), P1);
      v3 = (v3 + Math.imul(data[i + 8] | (data[i + 9] << 8) | (data[i + 10] << 16) | (data[i + 11] << 24), P2)) | 0;
      v3 = Math.imul((v3 << 13) | (v3 >>> 19), P1);
      v4 = (v4 + Math.imul(data[i + 12] | (data[i + 13] << 8) | (data[i + 14] << 16) | (data[i + 15] << 24), P2)) | 0;
      v4 = Math.imul((v4 << 13) | (v4 >>> 19), P1);
    }
    this.#v1 = v1;
    this.#v2 = v2;
    this.#v3 = v3;
    this.#v4 = v4;
    if (i < n) {
      this.#memory.set(data.subarray(i), 0);
      this.#memorySize = n - i;
    }
    return this;
  }

  /** The hash of everything updated so far, as an unsigned 32-bit number. */
  digest(): number {
    let h: number;
    if (this.#total >= 16) {
      h = (rotl(this.#v1, 1) + rotl(this.#v2, 7) + rotl(this.#v3, 12) + rotl(this.#v4, 18)) | 0;
    } else {
      h = (this.#seed + P5) | 0;
    }
    // Only the low 32 bits of the length enter the hash.
    h = (h + (this.#total % 0x100000000)) | 0;
    const m = this.#memory;
    let i = 0;
    for (; i + 4 <= this.#memorySize; i += 4) {
      h = Math.imul(rotl((h + Math.imul(u32le(m, i), P3)) | 0, 17), P4);
    }
    for (; i < this.#memorySize; i++) {
      h = Math.imul(rotl((h + Math.imul(m[i], P5)) | 0, 11), P1);
    }
    h ^= h >>> 15;
    h = Math.imul(h, P2);
    h ^= h >>> 13;
    h = Math.imul(h, P3);
    h ^= h >>> 16;
    return h >>> 0;
  }
}

/** XXH32 of one buffer. */
export function xxh32(data: Uint8Array, seed = 0): number {
  return new Xxh32(seed).update(data).digest();
}
