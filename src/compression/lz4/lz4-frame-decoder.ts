import { NarwhalError } from '../../errors.ts';
import { InputBuffer } from '../input-buffer.ts';
import type { PullDecoder } from '../pull-decoder-stream.ts';
import { Xxh32, xxh32 } from './xxhash32.ts';

/**
 * Decoder of the LZ4 frame format (lz4 CLI, liblz4's LZ4F, libarchive's lz4 filter as used by
 * `nix copy ?compression=lz4`): concatenated frames and skippable frames; independent or linked
 * blocks; uncompressed blocks; block checksums, content size and content checksum, all verified.
 * Frames needing a dictionary and the legacy format (`lz4 -l`) are rejected.
 * Memory: one compressed block plus one decoded block and 64 KiB of history (at most ~8.1 MiB).
 */

const FRAME_MAGIC = 0x184d2204;
const LEGACY_MAGIC = 0x184c2102;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const HISTORY = 65536;
/** Decoded blocks (up to 4 MiB) are handed out in pieces of at most this size. */
const OUTPUT_PIECE = 256 * 1024;

const MAGIC = 0;
const DESCRIPTOR = 1;
const BLOCK_HEADER = 2;
const BLOCK_DATA = 3;
const CONTENT_CHECKSUM = 4;
const SKIPPABLE_SIZE = 5;
const SKIPPABLE_DATA = 6;

function corrupt(detail: string): NarwhalError {
  return new NarwhalError('bad-compression', `corrupt lz4 stream: ${detail}`);
}

function u32le(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}

export class Lz4FrameDecoder implements PullDecoder {
  readonly #in = new InputBuffer();
  #ended = false;
  #state = MAGIC;
  #sawFrame = false;

  // Current frame.
  #independent = true;
  #blockChecksum = false;
  #contentChecksum: Xxh32 | null = null;
  #contentSize: bigint | null = null;
  #produced = 0;
  #blockMax = 0;
  /** HISTORY bytes for the previous output of linked blocks, then room for one decoded block. */
  #window = new Uint8Array(0);
  #historyLength = 0;

  /** Decoded bytes window[#pendingStart, #pendingEnd) not yet handed out. */
  #pendingStart = 0;
  #pendingEnd = 0;

  // Current block or skippable frame.
  #blockSize = 0;
  #blockUncompressed = false;
  #skipRemaining = 0;

  write(input: Uint8Array): void {
    this.#in.append(input);
  }

  end(): void {
    this.#ended = true;
  }

  read(): Uint8Array | null {
    if (this.#pendingStart < this.#pendingEnd) return this.#emit();
    const input = this.#in;
    for (;;) {
      const bytes = input.bytes;
      const at = input.start;
      const available = input.available;
      switch (this.#state) {
        case MAGIC: {
          if (available < 4) {
            if (this.#ended) {
              if (available === 0 && this.#sawFrame) return null;
              throw corrupt(this.#sawFrame ? 'trailing data after the last frame' : 'truncated frame header');
            }
            return this.#needInput();
          }
          const magic = u32le(bytes, at);
          if (magic === FRAME_MAGIC) {
            this.#state = DESCRIPTOR;
          } else if ((magic & SKIPPABLE_MAGIC_MASK) >>> 0 === SKIPPABLE_MAGIC) {
            this.#state = SKIPPABLE_SIZE;
          } else if (magic === LEGACY_MAGIC) {
            throw corrupt('legacy lz4 format is not supported');
          } else {
            throw corrupt(this.#sawFrame ? 'trailing data after the last frame' : 'not an lz4 frame');
          }
          input.consume(4);
          this.#sawFrame = true;
          break;
        }
        case DESCRIPTOR: {
          if (available < 2) return this.#needInputOrTruncated();
          const flags = bytes[at];
          const length = 3 + (flags & 0x08 ? 8 : 0) + (flags & 0x01 ? 4 : 0);
          if (available < length) return this.#needInputOrTruncated();
          this.#startFrame(bytes.subarray(at, at + length));
          input.consume(length);
          this.#state = BLOCK_HEADER;
          break;
        }
        case BLOCK_HEADER: {
          if (available < 4) return this.#needInputOrTruncated();
          const header = u32le(bytes, at);
          input.consume(4);
          if (header === 0) {
            this.#state = CONTENT_CHECKSUM;
            break;
          }
          this.#blockSize = header & 0x7fffffff;
          this.#blockUncompressed = header >>> 31 === 1;
          if (this.#blockSize > this.#blockMax) throw corrupt('block larger than the frame allows');
          this.#state = BLOCK_DATA;
          break;
        }
        case BLOCK_DATA: {
          const length = this.#blockSize + (this.#blockChecksum ? 4 : 0);
          if (available < length) return this.#needInputOrTruncated();
          const block = bytes.subarray(at, at + this.#blockSize);
          if (this.#blockChecksum && xxh32(block) !== u32le(bytes, at + this.#blockSize)) {
            throw corrupt('block checksum mismatch');
          }
          this.#decodeBlock(block);
          input.consume(length);
          this.#state = BLOCK_HEADER;
          if (this.#pendingStart < this.#pendingEnd) return this.#emit();
          break;
        }
        case CONTENT_CHECKSUM: {
          const checksum = this.#contentChecksum;
          if (checksum !== null) {
            if (available < 4) return this.#needInputOrTruncated();
            if (checksum.digest() !== u32le(bytes, at)) throw corrupt('content checksum mismatch');
            input.consume(4);
          }
          if (this.#contentSize !== null && this.#contentSize !== BigInt(this.#produced)) {
            throw corrupt('content size mismatch');
          }
          this.#state = MAGIC;
          break;
        }
        case SKIPPABLE_SIZE: {
          if (available < 4) return this.#needInputOrTruncated();
          this.#skipRemaining = u32le(bytes, at);
          input.consume(4);
          this.#state = SKIPPABLE_DATA;
          break;
        }
        case SKIPPABLE_DATA: {
          const n = Math.min(available, this.#skipRemaining);
          input.consume(n);
          this.#skipRemaining -= n;
          if (this.#skipRemaining > 0) return this.#needInputOrTruncated();
          this.#state = MAGIC;
          break;
        }
      }
    }
  }

  #needInput(): null {
    this.#in.detach();
    return null;
  }

  #needInputOrTruncated(): null {
    if (this.#ended) throw corrupt('truncated');
    return this.#needInput();
  }

  #startFrame(descriptor: Uint8Array): void {
    const flags = descriptor[0];
    const bd = descriptor[1];
    if (flags >>> 6 !== 1) throw corrupt('unsupported frame version');
    if (flags & 0x02 || bd & 0x8f) throw corrupt('reserved bits set in frame descriptor');
    const sizeId = (bd >>> 4) & 0x07;
    if (sizeId < 4) throw corrupt('invalid block maximum size');
    const checked = descriptor.subarray(0, descriptor.length - 1);
    if (((xxh32(checked) >>> 8) & 0xff) !== descriptor[descriptor.length - 1]) {
      throw corrupt('frame header checksum mismatch');
    }
    if (flags & 0x01) throw corrupt('frames that need a dictionary are not supported');
    this.#independent = (flags & 0x20) !== 0;
    this.#blockChecksum = (flags & 0x10) !== 0;
    this.#contentChecksum = flags & 0x04 ? new Xxh32() : null;
    if (flags & 0x08) {
      const view = new DataView(descriptor.buffer, descriptor.byteOffset + 2, 8);
      this.#contentSize = view.getBigUint64(0, true);
    } else {
      this.#contentSize = null;
    }
    this.#produced = 0;
    this.#blockMax = 1 << (2 * sizeId + 8);
    if (this.#window.length < HISTORY + this.#blockMax) this.#window = new Uint8Array(HISTORY + this.#blockMax);
    this.#historyLength = 0;
  }

  /** Decodes one block behind the history in the window, to be handed out by #emit(). */
  #decodeBlock(block: Uint8Array): void {
    const window = this.#window;
    let end: number;
    if (this.#blockUncompressed) {
      window.set(block, HISTORY);
      end = HISTORY + block.length;
    } else {
      const lowest = this.#independent ? HISTORY : HISTORY - this.#historyLength;
      end = decodeLz4Block(block, window, HISTORY, HISTORY + this.#blockMax, lowest);
    }
    const decoded = window.subarray(HISTORY, end);
    this.#contentChecksum?.update(decoded);
    this.#produced += decoded.length;
    this.#pendingStart = HISTORY;
    this.#pendingEnd = end;
  }

  /** Copies out the next piece of the decoded block; after the last one, keeps the history. */
  #emit(): Uint8Array {
    const window = this.#window;
    const start = this.#pendingStart;
    const end = Math.min(this.#pendingEnd, start + OUTPUT_PIECE);
    const output = Buffer.from(window.subarray(start, end));
    this.#pendingStart = end;
    if (end === this.#pendingEnd && !this.#independent) {
      const keep = Math.min(HISTORY, this.#historyLength + (end - HISTORY));
      window.copyWithin(HISTORY - keep, end - keep, end);
      this.#historyLength = keep;
    }
    return output;
  }
}

/**
 * Decodes one LZ4 block (sequence format) into dst starting at `start`, never writing at or past
 * `limit`, with matches allowed to reach back to `lowest`. Returns the end of the output.
 */
export function decodeLz4Block(src: Uint8Array, dst: Uint8Array, start: number, limit: number, lowest: number): number {
  const srcEnd = src.length;
  let s = 0;
  let d = start;
  for (;;) {
    if (s >= srcEnd) throw corrupt('block ends inside a sequence');
    const token = src[s++];
    let literals = token >>> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (s >= srcEnd) throw corrupt('block ends inside a literal length');
        b = src[s++];
        literals += b;
      } while (b === 255);
    }
    if (literals > srcEnd - s) throw corrupt('literals run past the block');
    if (literals > limit - d) throw corrupt('block decodes to more than the frame allows');
    if (literals < 32) {
      for (let i = 0; i < literals; i++) dst[d + i] = src[s + i];
    } else {
      dst.set(src.subarray(s, s + literals), d);
    }
    s += literals;
    d += literals;
    if (s === srcEnd) return d;
    if (srcEnd - s < 2) throw corrupt('block ends inside a match offset');
    const offset = src[s] | (src[s + 1] << 8);
    s += 2;
    if (offset === 0 || offset > d - lowest) throw corrupt('match offset out of range');
    let length = (token & 15) + 4;
    if (length === 19) {
      let b: number;
      do {
        if (s >= srcEnd) throw corrupt('block ends inside a match length');
        b = src[s++];
        length += b;
      } while (b === 255);
    }
    if (length > limit - d) throw corrupt('block decodes to more than the frame allows');
    const from = d - offset;
    if (length <= 32 || (offset < 8 && length < 256)) {
      for (let i = 0; i < length; i++) dst[d + i] = dst[from + i];
      d += length;
    } else if (offset >= length) {
      dst.copyWithin(d, from, from + length);
      d += length;
    } else {
      // Overlapping match: the source repeats with period `offset`; copy in doubling steps.
      const matchEnd = d + length;
      while (d < matchEnd) {
        const n = Math.min(matchEnd - d, d - from);
        dst.copyWithin(d, from, from + n);
        d += n;
      }
    }
  }
}
