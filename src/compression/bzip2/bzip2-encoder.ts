import { NarwhalError } from '../../errors.ts';
import { BZIP2_CRC_TABLE } from './bzip2-crc.ts';

/**
 * Streaming bzip2 encoder, producing streams that libbz2 (the `bzip2` CLI, libarchive, Nix) reads:
 * initial run-length coding, Burrows-Wheeler transform by prefix doubling, move-to-front with
 * RUNA/RUNB zero runs, and 2 to 6 Huffman tables chosen per group of 50 symbols.
 * Memory: about 32 bytes per byte of block size (level x 100 000), allocated once per encoder.
 */

const BLOCK_MAGIC_HI = 0x314159;
const BLOCK_MAGIC_LO = 0x265359;
const END_MAGIC_HI = 0x177245;
const END_MAGIC_LO = 0x385090;
const RUNA = 0;
const RUNB = 1;
const GROUP_SIZE = 50;
/** Longest code the encoder makes; decoders accept up to 20. */
const MAX_CODE_LENGTH = 17;
const TABLE_ITERATIONS = 4;

/** Bits written most significant first into a growing byte array. */
class BitWriter {
  bytes = new Uint8Array(1 << 16);
  length = 0;
  #bits = 0;
  #count = 0;

  /** Appends the low n bits of value, n <= 24. */
  write(n: number, value: number): void {
    const bits = (this.#bits << n) | value;
    let count = this.#count + n;
    if (this.length + 4 > this.bytes.length) this.#grow();
    while (count >= 8) {
      count -= 8;
      this.bytes[this.length++] = bits >>> count;
    }
    this.#bits = bits & ((1 << count) - 1);
    this.#count = count;
  }

  write32(value: number): void {
    this.write(16, value >>> 16);
    this.write(16, value & 0xffff);
  }

  /** The bits of the incomplete last byte and how many there are (0 to 7). */
  get partial(): { bits: number; count: number } {
    return { bits: this.#bits, count: this.#count };
  }

  /** Empties the writer, then holds `count` pending bits. */
  reset(bits = 0, count = 0): void {
    this.length = 0;
    this.#bits = bits;
    this.#count = count;
  }

  /** Pads the last byte with zero bits. */
  pad(): void {
    if (this.#count > 0) this.write(8 - this.#count, 0);
  }

  /** The whole bytes written since the last take, as a fresh array. */
  take(): Uint8Array {
    const out = this.bytes.slice(0, this.length);
    this.length = 0;
    return out;
  }

  #grow(): void {
    const bigger = new Uint8Array(this.bytes.length * 2);
    bigger.set(this.bytes.subarray(0, this.length));
    this.bytes = bigger;
  }
}

/** Scratch arrays for sorting the rotations of blocks of up to `size` bytes. */
export class RotationSorter {
  readonly #a: Int32Array;
  readonly #b: Int32Array;
  readonly #c: Int32Array;
  readonly #d: Int32Array;
  /** Counts for the counting sorts, then keys of a group being sorted. */
  readonly #count: Int32Array;
  readonly #head: Uint8Array;
  /** Key and rotation packed into one number (key * 2^20 + rotation), for sorting large groups. */
  readonly #packed: Float64Array;

  constructor(size: number) {
    if (size > 1 << 20) throw new NarwhalError('internal', 'block too large');
    this.#a = new Int32Array(size);
    this.#b = new Int32Array(size);
    this.#c = new Int32Array(size);
    this.#d = new Int32Array(size);
    this.#count = new Int32Array(Math.max(size, 65536));
    this.#head = new Uint8Array(size);
    this.#packed = new Float64Array(size);
  }

  /**
   * The cyclic rotations of block[0..n) in sorted order (a view valid until the next call).
   * Prefix doubling: counting-sort passes over all rotations while most are still tied, then
   * Larsson-Sadakane passes over the tied groups only. Equal rotations (periodic blocks) are left
   * in an arbitrary order, which the BWT allows.
   */
  sort(block: Uint8Array, n: number): Int32Array {
    let order = this.#a;
    let rank = this.#b;
    let spare = this.#c;
    const count = this.#count;
    const head = this.#head;
    if (n <= 1) {
      order[0] = 0;
      return order;
    }
    // Order by the first two bytes. A rotation's rank is the position in order where its group
    // (the rotations sharing its first h bytes) starts; head marks those positions.
    count.fill(0, 0, 65536);
    for (let i = 0; i < n; i++) {
      const key = (block[i] << 8) | block[i + 1 < n ? i + 1 : 0];
      spare[i] = key;
      count[key]++;
    }
    let sum = 0;
    for (let k = 0; k < 65536; k++) {
      const c = count[k];
      count[k] = sum;
      sum += c;
    }
    head.fill(0, 0, n);
    let groups = 0;
    for (let i = 0; i < n; i++) {
      const start = count[spare[i]];
      rank[i] = start;
      if (head[start] === 0) {
        head[start] = 1;
        groups++;
      }
    }
    for (let i = 0; i < n; i++) order[count[spare[i]]++] = i;
    let h = 2;
    while (groups < n && h < n) {
      // Rotations i - h in the order of their second halves, stably bucketed by their first.
      for (let i = 0; i < n; i++) count[i] = i;
      for (let i = 0; i < n; i++) {
        let j = order[i] - h;
        if (j < 0) j += n;
        spare[count[rank[j]]++] = j;
      }
      [order, spare] = [spare, order];
      // Split the groups where the second halves differ.
      let newGroups = 0;
      let tied = 0;
      let groupStart = 0;
      let prevSecond = -1;
      for (let i = 0; i < n; i++) {
        const o = order[i];
        const j = o + h;
        const second = rank[j >= n ? j - n : j];
        if (head[i] !== 0 || second !== prevSecond) {
          head[i] = 1;
          if (i - groupStart > 1) tied += i - groupStart;
          groupStart = i;
          newGroups++;
        }
        spare[o] = groupStart;
        prevSecond = second;
      }
      if (n - groupStart > 1) tied += n - groupStart;
      [rank, spare] = [spare, rank];
      h *= 2;
      // No group split: the groups are those of equal rotations, and doubling changes nothing more.
      if (newGroups === groups) return order;
      groups = newGroups;
      if (tied * 4 < n) break;
    }
    if (groups === n || h >= n) return order;

    // Larsson-Sadakane passes: sort only the tied groups, listed as (start, length) pairs, and
    // split them in place.
    let list = spare;
    let nextList = this.#d;
    let listLength = 0;
    for (let i = 1, start = 0; i <= n; i++) {
      if (i === n || head[i] !== 0) {
        if (i - start > 1) {
          list[listLength++] = start;
          list[listLength++] = i - start;
        }
        start = i;
      }
    }
    const keys = count;
    const packed = this.#packed;
    while (listLength > 0 && h < n) {
      let nextLength = 0;
      let split = false;
      for (let g = 0; g < listLength; g += 2) {
        const a = list[g];
        const len = list[g + 1];
        for (let x = 0; x < len; x++) {
          const j = order[a + x] + h;
          keys[x] = rank[j >= n ? j - n : j];
        }
        if (len <= 16) {
          for (let x = 1; x < len; x++) {
            const k = keys[x];
            const r = order[a + x];
            let y = x - 1;
            while (y >= 0 && keys[y] > k) {
              keys[y + 1] = keys[y];
              order[a + y + 1] = order[a + y];
              y--;
            }
            keys[y + 1] = k;
            order[a + y + 1] = r;
          }
        } else {
          const view = packed.subarray(0, len);
          for (let x = 0; x < len; x++) view[x] = keys[x] * 1048576 + order[a + x];
          view.sort();
          for (let x = 0; x < len; x++) {
            const v = view[x];
            const k = Math.floor(v / 1048576);
            keys[x] = k;
            order[a + x] = v - k * 1048576;
          }
        }
        if (keys[0] !== keys[len - 1]) split = true;
        let sub = 0;
        for (let x = 1; x <= len; x++) {
          if (x === len || keys[x] !== keys[sub]) {
            for (let y = sub; y < x; y++) rank[order[a + y]] = a + sub;
            if (x - sub > 1) {
              nextList[nextLength++] = a + sub;
              nextList[nextLength++] = x - sub;
            }
            sub = x;
          }
        }
      }
      // A pass without a split leaves only groups of equal rotations.
      if (!split) break;
      [list, nextList] = [nextList, list];
      listLength = nextLength;
      h *= 2;
    }
    return order;
  }
}

/**
 * Huffman code lengths (1..maxLength) for symbols 0..alphaSize-1 with the given frequencies;
 * absent symbols get a code too, as bzip2 requires. Limits the lengths by flattening the
 * frequencies and retrying, as the reference encoder does.
 */
function makeCodeLengths(
  freq: Int32Array,
  alphaSize: number,
  maxLength: number,
  lengths: Uint8Array,
  scratch: HuffmanScratch,
): void {
  const { weight, parent, heap } = scratch;
  for (let i = 0; i < alphaSize; i++) weight[i] = freq[i] === 0 ? 1 : freq[i];
  for (;;) {
    // Min-heap of node indices by weight; internal nodes are numbered from alphaSize up.
    let size = 0;
    for (let i = 0; i < alphaSize; i++) {
      heap[size] = i;
      siftUp(heap, weight, size++);
    }
    let nodes = alphaSize;
    while (size > 1) {
      const a = heap[0];
      heap[0] = heap[--size];
      siftDown(heap, weight, size);
      const b = heap[0];
      heap[0] = heap[--size];
      siftDown(heap, weight, size);
      const node = nodes++;
      weight[node] = weight[a] + weight[b];
      parent[a] = node;
      parent[b] = node;
      parent[node] = -1;
      heap[size] = node;
      siftUp(heap, weight, size++);
    }
    let longest = 0;
    for (let i = 0; i < alphaSize; i++) {
      let depth = 0;
      for (let k = i; parent[k] !== -1; k = parent[k]) depth++;
      lengths[i] = depth;
      if (depth > longest) longest = depth;
    }
    if (longest <= maxLength) return;
    for (let i = 0; i < alphaSize; i++) weight[i] = 1 + (weight[i] >>> 1);
  }
}

interface HuffmanScratch {
  readonly weight: Float64Array;
  readonly parent: Int32Array;
  readonly heap: Int32Array;
}

/**
 * A run of `zeros` MTF zeros (zeros >= 1) as bzip2's bijective base-2 digits RUNA/RUNB, least
 * significant first, counted in `freq`. Returns the next index in `symbols`.
 */
function writeZeroRun(zeros: number, symbols: Uint16Array, m: number, freq: Int32Array): number {
  for (let rest = zeros - 1; ; rest = (rest - 2) >>> 1) {
    const digit = rest & 1 ? RUNB : RUNA;
    symbols[m++] = digit;
    freq[digit]++;
    if (rest < 2) return m;
  }
}

function siftUp(heap: Int32Array, weight: Float64Array, at: number): void {
  const node = heap[at];
  const w = weight[node];
  while (at > 0) {
    const up = (at - 1) >> 1;
    if (weight[heap[up]] <= w) break;
    heap[at] = heap[up];
    at = up;
  }
  heap[at] = node;
}

function siftDown(heap: Int32Array, weight: Float64Array, size: number): void {
  let at = 0;
  const node = heap[0];
  const w = weight[node];
  for (;;) {
    let child = 2 * at + 1;
    if (child >= size) break;
    if (child + 1 < size && weight[heap[child + 1]] < weight[heap[child]]) child++;
    if (weight[heap[child]] >= w) break;
    heap[at] = heap[child];
    at = child;
  }
  heap[at] = node;
}

/** Canonical codes for the lengths, in the order bzip2 decoders assign them. */
function assignCodes(lengths: Uint8Array, alphaSize: number, codes: Int32Array): void {
  let code = 0;
  for (let len = 1; len <= MAX_CODE_LENGTH; len++) {
    for (let i = 0; i < alphaSize; i++) if (lengths[i] === len) codes[i] = code++;
    code <<= 1;
  }
}

export type Bzip2Level = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;

/**
 * Where a bzip2 stream's encoding stands between two inputs, as plain data: another encoder of the
 * same level resumes from it (restore) and writes the same bytes the first would have written.
 */
export interface Bzip2State {
  /** The run-length coded bytes of the current block, in a buffer of their own. */
  block: Uint8Array;
  blockCrc: number;
  runByte: number;
  runLength: number;
  combinedCrc: number;
  /** The bits of the output's incomplete last byte, and how many there are (0 to 7). */
  bits: number;
  bitCount: number;
}

/**
 * A bzip2 stream encoder: update() takes input and returns the output completed so far (whole
 * blocks); finish() returns the rest of the stream. Returned arrays are owned by the caller.
 */
export class Bzip2Encoder {
  readonly #level: Bzip2Level;
  /** Block fill limit: a run adds at most 5 bytes, and the block may hold level x 100 000. */
  readonly #blockLimit: number;
  /** The run-length coded bytes of the current block. */
  readonly #block: Uint8Array;
  #blockLength = 0;
  /** The byte of the pending run (-1: none) and its length, 1..255. */
  #runByte = -1;
  #runLength = 0;
  /** Running CRC of the current block's input bytes. */
  #blockCrc = -1;
  #combinedCrc = 0;
  #finished = false;
  readonly #out = new BitWriter();

  // Scratch space for compressing a block, allocated on first use.
  #sorter: RotationSorter | null = null;
  #symbols: Uint16Array | null = null;
  readonly #huffman: HuffmanScratch = {
    weight: new Float64Array(2 * 258),
    parent: new Int32Array(2 * 258),
    heap: new Int32Array(2 * 258),
  };

  constructor(level: Bzip2Level = 9) {
    if (!Number.isInteger(level) || level < 1 || level > 9)
      throw new NarwhalError('internal', `bad bzip2 level ${level}`);
    this.#level = level;
    this.#blockLimit = level * 100000 - 19;
    this.#block = new Uint8Array(level * 100000);
    this.reset();
  }

  /** Starts a new stream, forgetting the current one (the scratch space is kept). */
  reset(): void {
    this.#setState({
      block: new Uint8Array(0),
      blockCrc: -1,
      runByte: -1,
      runLength: 0,
      combinedCrc: 0,
      bits: 0,
      bitCount: 0,
    });
    const out = this.#out;
    out.write(24, 0x425a68); // "BZh"
    out.write(8, 0x30 + this.#level);
  }

  /**
   * The output completed so far that update() has not returned (whole bytes), and the state to
   * resume from, here or in another encoder of the same level.
   */
  suspend(): { output: Uint8Array; state: Bzip2State } {
    if (this.#finished) throw new NarwhalError('internal', 'bzip2 encoder already finished');
    const output = this.#out.take();
    const { bits, count } = this.#out.partial;
    return {
      output,
      state: {
        block: this.#block.slice(0, this.#blockLength),
        blockCrc: this.#blockCrc,
        runByte: this.#runByte,
        runLength: this.#runLength,
        combinedCrc: this.#combinedCrc,
        bits,
        bitCount: count,
      },
    };
  }

  /** Continues the stream a suspend() left, forgetting the current one. */
  restore(state: Bzip2State): void {
    if (state.block.length > this.#blockLimit + 5) throw new NarwhalError('internal', 'bzip2 state of another level');
    this.#setState(state);
  }

  #setState(state: Bzip2State): void {
    this.#block.set(state.block);
    this.#blockLength = state.block.length;
    this.#blockCrc = state.blockCrc;
    this.#runByte = state.runByte;
    this.#runLength = state.runLength;
    this.#combinedCrc = state.combinedCrc;
    this.#finished = false;
    this.#out.reset(state.bits, state.bitCount);
  }

  update(data: Uint8Array): Uint8Array[] {
    if (this.#finished) throw new NarwhalError('internal', 'bzip2 encoder already finished');
    const out: Uint8Array[] = [];
    const block = this.#block;
    const limit = this.#blockLimit;
    let runByte = this.#runByte;
    let runLength = this.#runLength;
    let length = this.#blockLength;
    let crc = this.#blockCrc;
    for (let i = 0; i < data.length; i++) {
      const b = data[i];
      if (b === runByte && runLength < 255) {
        runLength++;
        continue;
      }
      if (runLength > 0) {
        // Flush the run: 1 to 3 copies, or 4 copies and a count of further ones.
        for (let k = 0; k < runLength; k++) crc = (crc << 8) ^ BZIP2_CRC_TABLE[((crc >>> 24) ^ runByte) & 0xff];
        if (runLength < 4) {
          for (let k = 0; k < runLength; k++) block[length++] = runByte;
        } else {
          block[length++] = runByte;
          block[length++] = runByte;
          block[length++] = runByte;
          block[length++] = runByte;
          block[length++] = runLength - 4;
        }
        if (length >= limit) {
          this.#blockLength = length;
          this.#blockCrc = crc;
          this.#endBlock();
          out.push(this.#out.take());
          length = 0;
          crc = -1;
        }
      }
      runByte = b;
      runLength = 1;
    }
    this.#runByte = runByte;
    this.#runLength = runLength;
    this.#blockLength = length;
    this.#blockCrc = crc;
    return out;
  }

  finish(): Uint8Array[] {
    if (this.#finished) throw new NarwhalError('internal', 'bzip2 encoder already finished');
    this.#finished = true;
    this.#flushRun();
    this.#endBlock();
    const out = this.#out;
    out.write(24, END_MAGIC_HI);
    out.write(24, END_MAGIC_LO);
    out.write32(this.#combinedCrc >>> 0);
    out.pad();
    return [out.take()];
  }

  #flushRun(): void {
    const runLength = this.#runLength;
    if (runLength === 0) return;
    const runByte = this.#runByte;
    const block = this.#block;
    let length = this.#blockLength;
    let crc = this.#blockCrc;
    for (let k = 0; k < runLength; k++) crc = (crc << 8) ^ BZIP2_CRC_TABLE[((crc >>> 24) ^ runByte) & 0xff];
    if (runLength < 4) {
      for (let k = 0; k < runLength; k++) block[length++] = runByte;
    } else {
      block.fill(runByte, length, length + 4);
      block[length + 4] = runLength - 4;
      length += 5;
    }
    this.#blockLength = length;
    this.#blockCrc = crc;
    this.#runLength = 0;
    this.#runByte = -1;
  }

  /** Writes the current block, if any, and starts a new one. */
  #endBlock(): void {
    const n = this.#blockLength;
    if (n === 0) return;
    const blockCrc = ~this.#blockCrc >>> 0;
    this.#combinedCrc = (((this.#combinedCrc << 1) | (this.#combinedCrc >>> 31)) ^ blockCrc) >>> 0;
    this.#writeBlock(n, blockCrc);
    this.#blockLength = 0;
    this.#blockCrc = -1;
  }

  #writeBlock(n: number, blockCrc: number): void {
    const size = this.#level * 100000;
    const sorter = (this.#sorter ??= new RotationSorter(size));
    const symbols = (this.#symbols ??= new Uint16Array(size + 1));
    const block = this.#block;
    const order = sorter.sort(block, n);

    // The bytes in use and their indices among the used ones.
    const used = new Uint8Array(256);
    for (let i = 0; i < n; i++) used[block[i]] = 1;
    const seqOf = new Uint8Array(256);
    let inUse = 0;
    for (let b = 0; b < 256; b++) if (used[b]) seqOf[b] = inUse++;
    const alphaSize = inUse + 2;
    const endOfBlock = inUse + 1;

    // Move-to-front of the last column, with zero runs as RUNA/RUNB digits (bijective base 2).
    const mtf = new Uint8Array(256);
    for (let i = 0; i < inUse; i++) mtf[i] = i;
    const freq = new Int32Array(258);
    let origin = -1;
    let m = 0;
    let zeros = 0;
    for (let i = 0; i < n; i++) {
      const o = order[i];
      if (o === 0) origin = i;
      const s = seqOf[block[o === 0 ? n - 1 : o - 1]];
      if (mtf[0] === s) {
        zeros++;
        continue;
      }
      if (zeros > 0) {
        m = writeZeroRun(zeros, symbols, m, freq);
        zeros = 0;
      }
      let j = 1;
      let prev = mtf[0];
      while (mtf[j] !== s) {
        const t = mtf[j];
        mtf[j] = prev;
        prev = t;
        j++;
      }
      mtf[j] = prev;
      mtf[0] = s;
      symbols[m++] = j + 1;
      freq[j + 1]++;
    }
    if (zeros > 0) m = writeZeroRun(zeros, symbols, m, freq);
    symbols[m++] = endOfBlock;
    freq[endOfBlock]++;

    // Huffman tables: start from contiguous symbol ranges of similar total frequency, then refine
    // by assigning each group of 50 symbols to its cheapest table.
    const groups = m < 200 ? 2 : m < 600 ? 3 : m < 1200 ? 4 : m < 2400 ? 5 : 6;
    const selectorCount = Math.ceil(m / GROUP_SIZE);
    const lengths: Uint8Array[] = [];
    const tableFreq: Int32Array[] = [];
    for (let t = 0; t < groups; t++) {
      lengths.push(new Uint8Array(258));
      tableFreq.push(new Int32Array(258));
    }
    let remaining = m;
    let lo = 0;
    for (let t = groups; t > 0; t--) {
      const target = remaining / t;
      let hi = lo - 1;
      let acc = 0;
      while (acc < target && hi < alphaSize - 1) acc += freq[++hi];
      const len = lengths[groups - t];
      for (let v = 0; v < alphaSize; v++) len[v] = v >= lo && v <= hi ? 0 : 15;
      lo = hi + 1;
      remaining -= acc;
    }
    const selectors = new Uint8Array(selectorCount);
    // The code lengths of tables 0-2 and 3-5 packed in 10-bit fields: a group costs at most 850.
    const packedLow = new Int32Array(258);
    const packedHigh = new Int32Array(258);
    for (let iteration = 0; iteration < TABLE_ITERATIONS; iteration++) {
      for (let v = 0; v < alphaSize; v++) {
        packedLow[v] = lengths[0][v] | (lengths[1][v] << 10) | (groups > 2 ? lengths[2][v] << 20 : 0);
        packedHigh[v] =
          (groups > 3 ? lengths[3][v] : 0) |
          (groups > 4 ? lengths[4][v] << 10 : 0) |
          (groups > 5 ? lengths[5][v] << 20 : 0);
      }
      for (let t = 0; t < groups; t++) tableFreq[t].fill(0);
      for (let g = 0, start = 0; start < m; g++, start += GROUP_SIZE) {
        const end = Math.min(start + GROUP_SIZE, m);
        let low = 0;
        let high = 0;
        for (let k = start; k < end; k++) {
          const v = symbols[k];
          low += packedLow[v];
          high += packedHigh[v];
        }
        let best = 0;
        let bestCost = low & 0x3ff;
        for (let t = 1; t < groups; t++) {
          const c = ((t < 3 ? low : high) >>> (10 * (t % 3))) & 0x3ff;
          if (c < bestCost) {
            bestCost = c;
            best = t;
          }
        }
        selectors[g] = best;
        const f = tableFreq[best];
        for (let k = start; k < end; k++) f[symbols[k]]++;
      }
      for (let t = 0; t < groups; t++)
        makeCodeLengths(tableFreq[t], alphaSize, MAX_CODE_LENGTH, lengths[t], this.#huffman);
    }
    const codes: Int32Array[] = [];
    for (let t = 0; t < groups; t++) {
      const c = new Int32Array(258);
      assignCodes(lengths[t], alphaSize, c);
      codes.push(c);
    }

    const out = this.#out;
    out.write(24, BLOCK_MAGIC_HI);
    out.write(24, BLOCK_MAGIC_LO);
    out.write32(blockCrc);
    out.write(1, 0); // not randomised
    out.write(24, origin);
    let ranges = 0;
    for (let r = 0; r < 16; r++) {
      let any = 0;
      for (let k = 0; k < 16; k++) any |= used[r * 16 + k];
      ranges = (ranges << 1) | any;
    }
    out.write(16, ranges);
    for (let r = 0; r < 16; r++) {
      if (!(ranges & (0x8000 >>> r))) continue;
      let bits = 0;
      for (let k = 0; k < 16; k++) bits = (bits << 1) | used[r * 16 + k];
      out.write(16, bits);
    }
    out.write(3, groups);
    out.write(15, selectorCount);
    const selectorMtf = new Uint8Array([0, 1, 2, 3, 4, 5]);
    for (let g = 0; g < selectorCount; g++) {
      const s = selectors[g];
      let j = 0;
      while (selectorMtf[j] !== s) j++;
      for (let k = j; k > 0; k--) selectorMtf[k] = selectorMtf[k - 1];
      selectorMtf[0] = s;
      // j ones and a zero.
      out.write(j + 1, ((1 << j) - 1) << 1);
    }
    for (let t = 0; t < groups; t++) {
      const len = lengths[t];
      let current = len[0];
      out.write(5, current);
      for (let v = 0; v < alphaSize; v++) {
        const target = len[v];
        while (current < target) {
          out.write(2, 2);
          current++;
        }
        while (current > target) {
          out.write(2, 3);
          current--;
        }
        out.write(1, 0);
      }
    }
    for (let g = 0, start = 0; start < m; g++, start += GROUP_SIZE) {
      const end = Math.min(start + GROUP_SIZE, m);
      const len = lengths[selectors[g]];
      const code = codes[selectors[g]];
      for (let k = start; k < end; k++) {
        const s = symbols[k];
        out.write(len[s], code[s]);
      }
    }
  }
}
