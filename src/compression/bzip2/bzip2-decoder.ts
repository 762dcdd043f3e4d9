import { NarwhalError } from '../../errors.ts';
import { InputBuffer } from '../input-buffer.ts';
import type { PullDecoder } from '../pull-decoder-stream.ts';
import { BZIP2_CRC_TABLE } from './bzip2-crc.ts';

/**
 * Streaming bzip2 decoder (format of bzip2 >= 0.9.5, as written by bzip2, pbzip2 and libarchive):
 * concatenated streams, block and stream CRCs verified, anything after the last stream rejected.
 * A block's compressed bits are decoded once enough input is buffered for the whole block (about
 * the block size; bounded by ~2.3 MB per block for any input), then its output is produced in
 * bounded pieces, so memory stays at ~level * 400 kB + a few MB whatever the output size.
 * Randomised blocks (written only by bzip2 0.9.0 and older) are rejected.
 */

const OUTPUT_CHUNK = 128 * 1024;
const MAX_CODE_LENGTH = 20;
const MAX_GROUPS = 6;
const MAX_ALPHA = 258;
const MAX_SELECTORS = 18002;
const GROUP_SIZE = 50;
const FAST_BITS = 10;
const FAST_SIZE = 1 << FAST_BITS;

const STREAM_HEADER = 0;
const BLOCK_HEADER = 1;
const OUTPUT = 2;

/** Thrown inside a decoding attempt when the buffered input ends before the block does. */
const NEED_INPUT = Symbol('need input');

function corrupt(detail: string): NarwhalError {
  return new NarwhalError('bad-compression', `corrupt bzip2 stream: ${detail}`);
}

export class Bzip2Decoder implements PullDecoder {
  readonly #in = new InputBuffer();
  #ended = false;
  #state = STREAM_HEADER;
  #sawStream = false;

  // Bit reader: #bitCount unread bits at the bottom of #bitBuf, then the input from #pos.
  #bitBuf = 0;
  #bitCount = 0;
  #pos = 0;

  #level = 0;
  readonly #readAhead: number | undefined;
  /** Input to buffer before trying to decode the next block; grows when a block is larger. */
  #threshold = 0;
  #combinedCrc = 0;

  // Block decoding tables, reused from block to block.
  readonly #selectors = new Uint8Array(MAX_SELECTORS);
  readonly #lengths = new Uint8Array(MAX_ALPHA);
  readonly #limit = new Int32Array(MAX_GROUPS * 24);
  readonly #base = new Int32Array(MAX_GROUPS * 24);
  readonly #perm = new Uint16Array(MAX_GROUPS * MAX_ALPHA);
  readonly #minLength = new Uint8Array(MAX_GROUPS);
  readonly #maxLength = new Uint8Array(MAX_GROUPS);
  readonly #fast = new Uint16Array(MAX_GROUPS * FAST_SIZE);
  readonly #byteCount = new Int32Array(256);
  readonly #mtf = new Uint8Array(256);
  #tt = new Uint32Array(0);

  // Output of the current block: inverse BWT walk, then run-length (RLE1) decoding.
  #blockCrc = 0;
  #expectedBlockCrc = 0;
  #tPos = 0;
  #remaining = 0;
  #lastByte = -1;
  #runLength = 0;
  #repeat = 0;

  /**
   * readAhead: input bytes to buffer before trying to decode a block (default: a little more than
   * the block size, which holds a whole compressed block unless the data is incompressible).
   * A block that turns out longer is retried with twice the input.
   */
  constructor(options: { readAhead?: number } = {}) {
    this.#readAhead = options.readAhead;
  }

  write(input: Uint8Array): void {
    this.#in.append(input);
  }

  end(): void {
    this.#ended = true;
  }

  read(): Uint8Array | null {
    for (;;) {
      if (this.#state === OUTPUT) {
        const output = this.#produce();
        if (output !== null) return output;
        continue;
      }
      const input = this.#in;
      if (this.#state === STREAM_HEADER && this.#bitCount === 0 && input.available === 0) {
        if (!this.#ended) return this.#needInput();
        if (!this.#sawStream) throw corrupt('empty input');
        return null;
      }
      if (
        this.#state === STREAM_HEADER &&
        this.#sawStream &&
        this.#ended &&
        this.#bitCount + 8 * input.available < 32
      ) {
        throw corrupt('trailing data after the end of the stream');
      }
      if (this.#state === BLOCK_HEADER && !this.#ended && input.available < this.#threshold) {
        return this.#needInput();
      }
      const savedBuf = this.#bitBuf;
      const savedCount = this.#bitCount;
      this.#pos = input.start;
      try {
        if (this.#state === STREAM_HEADER) this.#readStreamHeader();
        else this.#readBlock();
      } catch (error) {
        if (error !== NEED_INPUT) throw error;
        this.#bitBuf = savedBuf;
        this.#bitCount = savedCount;
        this.#threshold = Math.max(this.#threshold, 2 * input.available);
        return this.#needInput();
      }
      input.consume(this.#pos - input.start);
    }
  }

  #needInput(): null {
    this.#in.detach();
    return null;
  }

  /** Reads n <= 24 bits, MSB first. */
  #bits(n: number): number {
    while (this.#bitCount < n) {
      if (this.#pos >= this.#in.end) {
        if (this.#ended) throw corrupt('truncated');
        throw NEED_INPUT;
      }
      this.#bitBuf = (this.#bitBuf << 8) | this.#in.bytes[this.#pos++];
      this.#bitCount += 8;
    }
    this.#bitCount -= n;
    return (this.#bitBuf >>> this.#bitCount) & ((1 << n) - 1);
  }

  #bits32(): number {
    return ((this.#bits(16) << 16) | this.#bits(16)) >>> 0;
  }

  #readStreamHeader(): void {
    const magic = this.#bits(24);
    if (magic !== 0x425a68) {
      // "BZh"
      throw corrupt(this.#sawStream ? 'trailing data after the end of the stream' : 'not a bzip2 stream');
    }
    const level = this.#bits(8) - 0x30;
    if (level < 1 || level > 9) throw corrupt('invalid block size');
    this.#sawStream = true;
    this.#level = level;
    this.#threshold = Math.max(this.#threshold, this.#readAhead ?? level * 100000 + (level * 100000) / 16 + 4096);
    this.#combinedCrc = 0;
    if (this.#tt.length < level * 100000) this.#tt = new Uint32Array(level * 100000);
    this.#state = BLOCK_HEADER;
  }

  /** Reads a block header and decodes its symbols into #tt, or reads the end of the stream. */
  #readBlock(): void {
    const magicHigh = this.#bits(24);
    const magicLow = this.#bits(24);
    if (magicHigh === 0x177245 && magicLow === 0x385090) {
      const streamCrc = this.#bits32();
      if (streamCrc !== this.#combinedCrc) throw corrupt('stream checksum mismatch');
      this.#bitCount -= this.#bitCount & 7;
      this.#state = STREAM_HEADER;
      return;
    }
    if (magicHigh !== 0x314159 || magicLow !== 0x265359) throw corrupt('bad block header');
    this.#expectedBlockCrc = this.#bits32();
    if (this.#bits(1)) throw corrupt('randomised blocks are not supported');
    const origPtr = this.#bits(24);

    // Symbol map: which byte values occur in the block.
    const seqToUnseq = this.#mtf;
    let inUse = 0;
    const inUse16 = this.#bits(16);
    for (let i = 0; i < 16; i++) {
      if (inUse16 & (0x8000 >>> i)) {
        const used = this.#bits(16);
        for (let j = 0; j < 16; j++) if (used & (0x8000 >>> j)) seqToUnseq[inUse++] = i * 16 + j;
      }
    }
    if (inUse === 0) throw corrupt('block uses no symbols');
    const alphaSize = inUse + 2;

    const groups = this.#bits(3);
    if (groups < 2 || groups > MAX_GROUPS) throw corrupt('invalid number of Huffman tables');
    const selectorCount = this.#bits(15);
    if (selectorCount < 1) throw corrupt('no selectors');
    const selectors = this.#selectors;
    for (let i = 0; i < selectorCount; i++) {
      let j = 0;
      while (this.#bits(1)) {
        if (++j >= groups) throw corrupt('invalid selector');
      }
      if (i < MAX_SELECTORS) selectors[i] = j;
    }
    const usedSelectors = Math.min(selectorCount, MAX_SELECTORS);
    const order = [0, 1, 2, 3, 4, 5];
    for (let i = 0; i < usedSelectors; i++) {
      let v = selectors[i];
      const group = order[v];
      for (; v > 0; v--) order[v] = order[v - 1];
      order[0] = group;
      selectors[i] = group;
    }

    const lengths = this.#lengths;
    for (let t = 0; t < groups; t++) {
      let length = this.#bits(5);
      for (let i = 0; i < alphaSize; i++) {
        for (;;) {
          if (length < 1 || length > MAX_CODE_LENGTH) throw corrupt('invalid Huffman code length');
          if (!this.#bits(1)) break;
          length += this.#bits(1) ? -1 : 1;
        }
        lengths[i] = length;
      }
      this.#buildTable(t, alphaSize);
    }

    this.#decodeSymbols(alphaSize, usedSelectors, origPtr);
  }

  /** Canonical Huffman decoding tables for group t, as bzip2's hbCreateDecodeTables, plus a lookup table. */
  #buildTable(t: number, alphaSize: number): void {
    const lengths = this.#lengths;
    let minLength = 32;
    let maxLength = 0;
    for (let i = 0; i < alphaSize; i++) {
      if (lengths[i] > maxLength) maxLength = lengths[i];
      if (lengths[i] < minLength) minLength = lengths[i];
    }
    const perm = this.#perm;
    const permAt = t * MAX_ALPHA;
    let pp = 0;
    for (let len = minLength; len <= maxLength; len++) {
      for (let s = 0; s < alphaSize; s++) if (lengths[s] === len) perm[permAt + pp++] = s;
    }
    const at = t * 24;
    const base = this.#base;
    const limit = this.#limit;
    base.fill(0, at, at + 24);
    limit.fill(0, at, at + 24);
    for (let s = 0; s < alphaSize; s++) base[at + lengths[s] + 1]++;
    for (let i = 1; i < 24; i++) base[at + i] += base[at + i - 1];
    let vec = 0;
    for (let len = minLength; len <= maxLength; len++) {
      vec += base[at + len + 1] - base[at + len];
      limit[at + len] = vec - 1;
      vec <<= 1;
    }
    for (let len = minLength + 1; len <= maxLength; len++) {
      base[at + len] = ((limit[at + len - 1] + 1) << 1) - base[at + len];
    }
    this.#minLength[t] = minLength;
    this.#maxLength[t] = maxLength;

    const fast = this.#fast;
    const fastAt = t * FAST_SIZE;
    const top = Math.min(maxLength, FAST_BITS);
    for (let p = 0; p < FAST_SIZE; p++) {
      let entry = 0;
      for (let len = minLength; len <= top; len++) {
        const code = p >>> (FAST_BITS - len);
        if (code <= limit[at + len]) {
          const index = code - base[at + len];
          if (index >= 0 && index < alphaSize) entry = (perm[permAt + index] << 5) | len;
          break;
        }
      }
      fast[fastAt + p] = entry;
    }
  }

  /** Decodes the Huffman/MTF/RLE2 symbols of a block into #tt, then prepares the inverse BWT. */
  #decodeSymbols(alphaSize: number, selectorCount: number, origPtr: number): void {
    const bytes = this.#in.bytes;
    const end = this.#in.end;
    const ended = this.#ended;
    const fast = this.#fast;
    const limit = this.#limit;
    const base = this.#base;
    const perm = this.#perm;
    const selectors = this.#selectors;
    const tt = this.#tt;
    const byteCount = this.#byteCount;
    const blockMax = this.#level * 100000;
    const endOfBlock = alphaSize - 1;
    // Move-to-front list of byte values, in symbol-map order to begin with.
    const mtf = this.#mtf;
    byteCount.fill(0);

    let buf = this.#bitBuf;
    let count = this.#bitCount;
    let pos = this.#pos;
    let padded = 0;
    let nblock = 0;
    let selector = 0;
    let groupLeft = 0;
    let group = 0;
    let runWeight = 0;
    let run = 0;

    for (;;) {
      if (groupLeft === 0) {
        if (selector >= selectorCount) throw corrupt('selectors exhausted');
        group = selectors[selector++];
        groupLeft = GROUP_SIZE;
      }
      groupLeft--;
      if (count < MAX_CODE_LENGTH) {
        while (count <= 24) {
          if (pos < end) {
            buf = (buf << 8) | bytes[pos++];
          } else if (ended) {
            buf <<= 8;
            padded += 8;
          } else {
            throw NEED_INPUT;
          }
          count += 8;
        }
      }
      let symbol: number;
      const entry = fast[group * FAST_SIZE + ((buf >>> (count - FAST_BITS)) & (FAST_SIZE - 1))];
      if (entry !== 0) {
        symbol = entry >>> 5;
        count -= entry & 31;
      } else {
        const at = group * 24;
        const maxLength = this.#maxLength[group];
        let len = this.#minLength[group];
        for (;;) {
          if (len > maxLength) throw corrupt('invalid Huffman code');
          const code = (buf >>> (count - len)) & ((1 << len) - 1);
          if (code <= limit[at + len]) {
            const index = code - base[at + len];
            if (index < 0 || index >= alphaSize) throw corrupt('invalid Huffman code');
            symbol = perm[group * MAX_ALPHA + index];
            break;
          }
          len++;
        }
        count -= len;
      }
      if (count < padded) throw corrupt('truncated');

      if (symbol <= 1) {
        // RUNA (0) / RUNB (1): bijective base-2 digits of a run of the front byte.
        if (runWeight === 0) {
          runWeight = 1;
          run = 0;
        }
        run += runWeight << symbol;
        runWeight <<= 1;
        if (run > blockMax) throw corrupt('run exceeds the block size');
        continue;
      }
      if (runWeight !== 0) {
        runWeight = 0;
        if (nblock + run > blockMax) throw corrupt('block exceeds its declared size');
        const value = mtf[0];
        byteCount[value] += run;
        if (run < 16) {
          for (let i = 0; i < run; i++) tt[nblock + i] = value;
        } else {
          tt.fill(value, nblock, nblock + run);
        }
        nblock += run;
      }
      if (symbol === endOfBlock) break;
      if (nblock >= blockMax) throw corrupt('block exceeds its declared size');
      const index = symbol - 1;
      const value = mtf[index];
      if (index < 16) {
        for (let i = index; i > 0; i--) mtf[i] = mtf[i - 1];
      } else {
        mtf.copyWithin(1, 0, index);
      }
      mtf[0] = value;
      byteCount[value]++;
      tt[nblock++] = value;
    }
    if (origPtr >= nblock) throw corrupt('invalid BWT origin');

    // Drop the zero bits padded in after the end of the input.
    this.#bitBuf = buf >>> padded;
    this.#bitCount = count - padded;
    this.#pos = pos;

    // Inverse BWT: link each position to its successor in the high 24 bits of tt.
    let sum = 0;
    for (let i = 0; i < 256; i++) {
      const c = byteCount[i];
      byteCount[i] = sum;
      sum += c;
    }
    for (let i = 0; i < nblock; i++) {
      const b = tt[i] & 0xff;
      tt[byteCount[b]++] |= i << 8;
    }
    this.#tPos = tt[origPtr] >>> 8;
    this.#remaining = nblock;
    this.#lastByte = -1;
    this.#runLength = 0;
    this.#repeat = 0;
    this.#blockCrc = -1;
    this.#state = OUTPUT;
  }

  /** The next piece of the current block's output, or null once the block is finished. */
  #produce(): Uint8Array | null {
    const tt = this.#tt;
    let tPos = this.#tPos;
    let remaining = this.#remaining;
    let lastByte = this.#lastByte;
    let runLength = this.#runLength;
    let repeat = this.#repeat;
    let crc = this.#blockCrc;
    let out: Buffer | null = null;
    let o = 0;
    if (remaining > 0 || repeat > 0) {
      out = Buffer.allocUnsafe(OUTPUT_CHUNK);
      while (o < OUTPUT_CHUNK) {
        if (repeat > 0) {
          const n = Math.min(repeat, OUTPUT_CHUNK - o);
          out.fill(lastByte, o, o + n);
          for (let i = 0; i < n; i++) crc = (crc << 8) ^ BZIP2_CRC_TABLE[((crc >>> 24) ^ lastByte) & 0xff];
          o += n;
          repeat -= n;
          continue;
        }
        if (remaining === 0) break;
        remaining--;
        const entry = tt[tPos];
        const b = entry & 0xff;
        tPos = entry >>> 8;
        if (runLength === 4) {
          // After four equal bytes comes a count of further repeats.
          repeat = b;
          runLength = 0;
          continue;
        }
        out[o++] = b;
        crc = (crc << 8) ^ BZIP2_CRC_TABLE[((crc >>> 24) ^ b) & 0xff];
        if (b === lastByte) {
          runLength++;
        } else {
          lastByte = b;
          runLength = 1;
        }
      }
    }
    this.#tPos = tPos;
    this.#remaining = remaining;
    this.#lastByte = lastByte;
    this.#runLength = runLength;
    this.#repeat = repeat;
    this.#blockCrc = crc;
    if (o > 0 && out !== null) return out.subarray(0, o);

    const blockCrc = ~crc >>> 0;
    if (blockCrc !== this.#expectedBlockCrc) throw corrupt('block checksum mismatch');
    this.#combinedCrc = (((this.#combinedCrc << 1) | (this.#combinedCrc >>> 31)) ^ blockCrc) >>> 0;
    this.#state = BLOCK_HEADER;
    return null;
  }
}
