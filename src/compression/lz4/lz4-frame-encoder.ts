import { NarwhalError } from '../../errors.ts';
import { Xxh32, xxh32, type Xxh32State } from './xxhash32.ts';

/**
 * Encoder of the LZ4 frame format, as `lz4 -d`, liblz4's LZ4F and libarchive read it: one frame of
 * independent blocks with a content checksum, compressed by a greedy single-probe hash matcher
 * (the speed/ratio class of `lz4 -1`). A block that does not shrink is stored uncompressed.
 * Memory: one input block and one output block (about 2 x blockSize) plus a 16 KiB hash table.
 */

const FRAME_MAGIC = 0x184d2204;
/** Version 01, independent blocks, no block checksums, no content size, content checksum. */
const FLG = 0x64;
const UNCOMPRESSED_BIT = 0x80000000;

const MIN_MATCH = 4;
/** The last 5 bytes of a block are always literals. */
const LAST_LITERALS = 5;
/** A match may not start within the last 12 bytes of a block. */
const MF_LIMIT = 12;
const MAX_OFFSET = 65535;
const HASH_BITS = 12;
/** After this many misses in a row the matcher starts skipping ahead faster over incompressible data. */
const SKIP_TRIGGER = 6;

export type Lz4BlockSize = 65536 | 262144 | 1048576 | 4194304;

const blockSizeCodes: ReadonlyMap<number, number> = new Map([
  [65536, 4],
  [262144, 5],
  [1048576, 6],
  [4194304, 7],
]);

/** Largest size compressLz4Block may write for an input of n bytes. */
export function lz4BlockBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

/**
 * Compresses src into one LZ4 block at dst[0..], returning its length. dst must hold
 * lz4BlockBound(src.length) bytes; hashTable (2^12 entries) is scratch space, overwritten.
 */
export function compressLz4Block(src: Uint8Array, dst: Uint8Array, hashTable: Int32Array): number {
  const n = src.length;
  let op = 0;
  let anchor = 0;
  if (n > MF_LIMIT) {
    hashTable.fill(-1);
    const view = new DataView(src.buffer, src.byteOffset, n);
    const matchLimit = n - LAST_LITERALS;
    const lastStart = n - MF_LIMIT;
    let ip = 0;
    let misses = 0;
    while (ip <= lastStart) {
      const seq = view.getInt32(ip, true);
      const h = Math.imul(seq, 0x9e3779b1) >>> (32 - HASH_BITS);
      let ref = hashTable[h];
      hashTable[h] = ip;
      if (ref < 0 || ip - ref > MAX_OFFSET || view.getInt32(ref, true) !== seq) {
        ip += 1 + (misses++ >> SKIP_TRIGGER);
        continue;
      }
      misses = 0;
      let start = ip;
      while (start > anchor && ref > 0 && src[start - 1] === src[ref - 1]) {
        start--;
        ref--;
      }
      let end = ip + MIN_MATCH;
      let r = ref + (end - start);
      // Four bytes at a time, then the first differing byte of the word that differs.
      for (;;) {
        if (end > matchLimit - 4) {
          while (end < matchLimit && src[end] === src[r]) {
            end++;
            r++;
          }
          break;
        }
        const diff = view.getInt32(end, true) ^ view.getInt32(r, true);
        if (diff !== 0) {
          end += (31 - Math.clz32(diff & -diff)) >>> 3;
          break;
        }
        end += 4;
        r += 4;
      }
      // Sequence: token, literal length, literals, offset, match length.
      const tokenAt = op++;
      const literals = start - anchor;
      let token: number;
      if (literals >= 15) {
        token = 0xf0;
        op = writeLengthRest(dst, op, literals - 15);
      } else {
        token = literals << 4;
      }
      if (literals > 32) {
        dst.set(src.subarray(anchor, start), op);
        op += literals;
      } else {
        for (let i = anchor; i < start; i++) dst[op++] = src[i];
      }
      const offset = start - ref;
      dst[op++] = offset & 0xff;
      dst[op++] = offset >>> 8;
      const matchRest = end - start - MIN_MATCH;
      if (matchRest >= 15) {
        token |= 15;
        op = writeLengthRest(dst, op, matchRest - 15);
      } else {
        token |= matchRest;
      }
      dst[tokenAt] = token;
      anchor = end;
      ip = end;
      // Remember a position inside the match too: it helps the next search in repetitive data.
      if (end - 2 <= lastStart) {
        const p = end - 2;
        hashTable[Math.imul(view.getInt32(p, true), 0x9e3779b1) >>> (32 - HASH_BITS)] = p;
      }
    }
  }
  const literals = n - anchor;
  if (literals >= 15) {
    dst[op++] = 0xf0;
    op = writeLengthRest(dst, op, literals - 15);
  } else {
    dst[op++] = literals << 4;
  }
  dst.set(src.subarray(anchor, n), op);
  return op + literals;
}

/** What a length's 4-bit token field cannot hold, as LZ4 writes it: 255s, then the remainder. Returns the next offset. */
function writeLengthRest(dst: Uint8Array, op: number, rest: number): number {
  for (; rest >= 255; rest -= 255) dst[op++] = 255;
  dst[op++] = rest;
  return op;
}

/**
 * Where an LZ4 frame's encoding stands between two inputs, as plain data: another encoder of the
 * same block size resumes from it (restore) and writes the same bytes the first would have written.
 */
export interface Lz4State {
  headerDone: boolean;
  /** The input of the current, incomplete block, in a buffer of its own. */
  buffered: Uint8Array;
  checksum: Xxh32State;
}

/**
 * Streaming LZ4 frame encoder: update() takes input and returns the output completed so far (the
 * frame header, then whole blocks); finish() returns the rest of the frame. The returned arrays
 * are fresh and owned by the caller.
 */
export class Lz4FrameEncoder {
  readonly #blockSize: number;
  readonly #blockSizeCode: number;
  readonly #buffer: Uint8Array;
  #buffered = 0;
  readonly #hashTable = new Int32Array(1 << HASH_BITS);
  /** Scratch for one compressed block; what it holds is copied out. */
  readonly #scratch: Uint8Array;
  #checksum = new Xxh32();
  #headerDone = false;
  #finished = false;

  constructor(blockSize: Lz4BlockSize = 4194304) {
    const code = blockSizeCodes.get(blockSize);
    if (code === undefined) throw new NarwhalError('internal', `unsupported lz4 block size ${blockSize}`);
    this.#blockSize = blockSize;
    this.#blockSizeCode = code;
    this.#buffer = new Uint8Array(blockSize);
    this.#scratch = new Uint8Array(lz4BlockBound(blockSize));
  }

  /** Starts a new frame, forgetting the current one. */
  reset(): void {
    this.#headerDone = false;
    this.#buffered = 0;
    this.#checksum = new Xxh32();
    this.#finished = false;
  }

  /**
   * The output update() has not returned (none: it returns whole blocks as it completes them), and
   * the state to resume from, here or in another encoder of the same block size.
   */
  suspend(): { output: Uint8Array; state: Lz4State } {
    if (this.#finished) throw new NarwhalError('internal', 'lz4 encoder already finished');
    return {
      output: new Uint8Array(0),
      state: {
        headerDone: this.#headerDone,
        buffered: this.#buffer.slice(0, this.#buffered),
        checksum: this.#checksum.state,
      },
    };
  }

  /** Continues the frame a suspend() left, forgetting the current one. */
  restore(state: Lz4State): void {
    if (state.buffered.length >= this.#blockSize) throw new NarwhalError('internal', 'lz4 state of another block size');
    this.#headerDone = state.headerDone;
    this.#buffer.set(state.buffered);
    this.#buffered = state.buffered.length;
    this.#checksum = new Xxh32().restore(state.checksum);
    this.#finished = false;
  }

  update(data: Uint8Array): Uint8Array[] {
    if (this.#finished) throw new NarwhalError('internal', 'lz4 encoder already finished');
    const out: Uint8Array[] = [];
    this.#header(out);
    this.#checksum.update(data);
    const size = this.#blockSize;
    let at = 0;
    while (at < data.length) {
      if (this.#buffered === 0 && data.length - at >= size) {
        out.push(this.#block(data.subarray(at, at + size)));
        at += size;
        continue;
      }
      const take = Math.min(size - this.#buffered, data.length - at);
      this.#buffer.set(data.subarray(at, at + take), this.#buffered);
      this.#buffered += take;
      at += take;
      if (this.#buffered === size) {
        out.push(this.#block(this.#buffer));
        this.#buffered = 0;
      }
    }
    return out;
  }

  finish(): Uint8Array[] {
    if (this.#finished) throw new NarwhalError('internal', 'lz4 encoder already finished');
    const out: Uint8Array[] = [];
    this.#header(out);
    if (this.#buffered > 0) out.push(this.#block(this.#buffer.subarray(0, this.#buffered)));
    this.#buffered = 0;
    this.#finished = true;
    const end = new Uint8Array(8);
    const view = new DataView(end.buffer);
    view.setUint32(0, 0, true);
    view.setUint32(4, this.#checksum.digest(), true);
    out.push(end);
    return out;
  }

  #header(out: Uint8Array[]): void {
    if (this.#headerDone) return;
    this.#headerDone = true;
    const header = new Uint8Array(7);
    new DataView(header.buffer).setUint32(0, FRAME_MAGIC, true);
    header[4] = FLG;
    header[5] = this.#blockSizeCode << 4;
    header[6] = (xxh32(header.subarray(4, 6)) >>> 8) & 0xff;
    out.push(header);
  }

  /** One block with its size prefix: compressed, or stored when compression does not help. */
  #block(src: Uint8Array): Uint8Array {
    const n = compressLz4Block(src, this.#scratch, this.#hashTable);
    const stored = n >= src.length;
    const out = new Uint8Array(4 + (stored ? src.length : n));
    new DataView(out.buffer).setUint32(0, stored ? (src.length | UNCOMPRESSED_BIT) >>> 0 : n, true);
    out.set(stored ? src : this.#scratch.subarray(0, n), 4);
    return out;
  }
}
