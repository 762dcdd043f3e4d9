/**
 * casync-compatible content-defined chunking: a buzhash over a 48-byte window, cut where
 * h mod d == d - 1, identical cut points to `casync make` (systemd/casync src/cachunker.c) for
 * the same min/avg/max. The hash of a full window depends only on the window's bytes, so the first
 * min-48 bytes of every chunk are skipped without being hashed, the window is seeded with bytes
 * [min-48, min), and the first boundary test happens at exactly min bytes, as in casync.
 */
import { NarwhalError } from '../errors.ts';
import { BUZHASH_TABLE } from './buzhash-table.ts';

export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}

export const DEFAULT_CHUNKER_PARAMS: Readonly<ChunkerParams> = Object.freeze({
  min: 16 * 1024,
  avg: 64 * 1024,
  max: 256 * 1024,
});

export const CHUNKER_WINDOW_SIZE = 48;

/** casync refuses chunks above this size (CA_CHUNK_SIZE_LIMIT_MAX). */
export const CHUNK_SIZE_LIMIT_MAX = 128 * 1024 * 1024;

/**
 * Throws unless 48 <= min <= avg <= max <= 128 MiB (all integers). casync itself accepts min down
 * to 1, but its window needs 48 bytes before any test, so smaller minimums only skew the contract.
 */
export function validateChunkerParams(params: ChunkerParams): void {
  const { min, avg, max } = params;
  if (
    !Number.isSafeInteger(min) ||
    !Number.isSafeInteger(avg) ||
    !Number.isSafeInteger(max) ||
    min < CHUNKER_WINDOW_SIZE ||
    min > avg ||
    avg > max ||
    max > CHUNK_SIZE_LIMIT_MAX
  ) {
    throw new NarwhalError(
      'internal',
      `invalid chunker parameters ${min}/${avg}/${max}: need 48 <= min <= avg <= max <= 128 MiB`,
    );
  }
}

/**
 * casync's CA_CHUNKER_DISCRIMINATOR_FROM_AVG (double arithmetic, truncated), clamped to [min, max]
 * as ca_chunker_set_size does. 49535 for the defaults.
 */
export function chunkerDiscriminator(params: ChunkerParams): number {
  const { min, avg, max } = params;
  const d = Math.trunc(avg / (-1.42888852e-7 * avg + 1.33237515));
  return d < min ? min : Math.min(d, max);
}

/**
 * Divisibility prefilter (Hacker's Delight 10-17): with d = m * 2^shift, m odd, n is a multiple
 * of d iff rotr32(n * m^-1, shift) <= floor((2^32 - 1) / d). Applied to n = h + 1 mod 2^32 it
 * never misses a cut; the exact modulo confirms the rare hits (and the wrap of h = 2^32 - 1).
 */
export function divisibilityTest(d: number): { inverse: number; shift: number; limit: number } {
  let shift = 0;
  let m = d;
  while ((m & 1) === 0) {
    m /= 2;
    shift++;
  }
  let inverse = m;
  for (let k = 0; k < 5; k++) inverse = Math.imul(inverse, 2 - Math.imul(m, inverse));
  return { inverse, shift, limit: Math.floor(0xffffffff / d) };
}

/** T rotated left by 48 mod 32 = 16: the term that removes the byte leaving the window. */
export const TABLE_ROL16: Uint32Array = BUZHASH_TABLE.map((v) => ((v << 16) | (v >>> 16)) >>> 0);

/**
 * Finds chunk boundaries in a byte stream fed piecewise. Holds the rolling hash, the position in
 * the current chunk and a copy of the window's last 48 bytes, so consecutive calls may pass
 * different buffers.
 */
export class Chunker {
  readonly params: Readonly<ChunkerParams>;
  readonly discriminator: number;
  /** divisibilityTest(discriminator). */
  private readonly divisorInverse: number;
  private readonly divisorShift: number;
  private readonly divisorLimit: number;
  /** Bytes of the current (not yet cut) chunk consumed so far. */
  private size = 0;
  private hash = 0;
  /** Once size >= min - 48: the last min(48, size - (min - 48)) bytes of the chunk, in order. */
  private readonly window = new Uint8Array(CHUNKER_WINDOW_SIZE);

  constructor(params: ChunkerParams = DEFAULT_CHUNKER_PARAMS) {
    validateChunkerParams(params);
    this.params = Object.freeze({ min: params.min, avg: params.avg, max: params.max });
    const d = chunkerDiscriminator(params);
    this.discriminator = d;
    const test = divisibilityTest(d);
    this.divisorInverse = test.inverse;
    this.divisorShift = test.shift;
    this.divisorLimit = test.limit;
  }

  /** Bytes consumed since the last cut (the pending chunk's length). */
  get pending(): number {
    return this.size;
  }

  /** Forget the pending chunk, as at the start of a new stream. */
  reset(): void {
    this.size = 0;
    this.hash = 0;
  }

  /**
   * Scans data[start, end) continuing the current chunk. Returns the index in `data` just after
   * the cut (the chunk ends there and the state resets for the next one), or -1 if every byte was
   * consumed without a boundary. Call again from the returned index to continue.
   */
  next(data: Uint8Array, start: number, end: number): number {
    if (!(start >= 0 && start <= end && end <= data.length)) {
      throw new NarwhalError('internal', 'chunker scan range out of bounds');
    }
    const min = this.params.min;
    const max = this.params.max;
    const window = this.window;
    const d = this.discriminator;
    const hit = d - 1;
    const inv = this.divisorInverse;
    const shift = this.divisorShift;
    const back = (32 - shift) & 31;
    const lim = this.divisorLimit;
    let size = this.size;
    let i = start;
    let h: number;

    if (size < min) {
      const skipEnd = min - CHUNKER_WINDOW_SIZE;
      if (size < skipEnd) {
        const n = Math.min(skipEnd - size, end - i);
        size += n;
        i += n;
        if (size < skipEnd) {
          this.size = size;
          return -1;
        }
      }
      const n = Math.min(min - size, end - i);
      for (let k = size - skipEnd, e = i + n; i < e; k++, i++) window[k] = data[i];
      size += n;
      if (size < min) {
        this.size = size;
        return -1;
      }
      h = 0;
      for (let k = 0; k < CHUNKER_WINDOW_SIZE - 1; k++) {
        const v = BUZHASH_TABLE[window[k]];
        const r = (CHUNKER_WINDOW_SIZE - 1 - k) & 31;
        h ^= r === 0 ? v : (v << r) | (v >>> (32 - r));
      }
      h ^= BUZHASH_TABLE[window[CHUNKER_WINDOW_SIZE - 1]];
      if (size >= max || (h >>> 0) % d === hit) {
        this.reset();
        return i;
      }
    } else {
      h = this.hash;
    }

    // Rolling phase: window[] holds the chunk's last 48 bytes before data[s0].
    const T = BUZHASH_TABLE;
    const T16 = TABLE_ROL16;
    const s0 = i;
    const limit = Math.min(end, i + (max - size));
    let q = 0;
    const fromWindowEnd = Math.min(limit, s0 + CHUNKER_WINDOW_SIZE);
    for (; i < fromWindowEnd; i++) {
      h = ((h << 1) | (h >>> 31)) ^ T16[window[i - s0]] ^ T[data[i]];
      q = Math.imul(h + 1, inv);
      if (((q >>> shift) | (q << back)) >>> 0 <= lim && (h >>> 0) % d === hit) {
        this.reset();
        return i + 1;
      }
    }
    for (; i < limit; i++) {
      h = ((h << 1) | (h >>> 31)) ^ T16[data[i - CHUNKER_WINDOW_SIZE]] ^ T[data[i]];
      q = Math.imul(h + 1, inv);
      if (((q >>> shift) | (q << back)) >>> 0 <= lim && (h >>> 0) % d === hit) {
        this.reset();
        return i + 1;
      }
    }
    size += limit - s0;
    if (size >= max) {
      this.reset();
      return limit;
    }
    const n = limit - s0;
    if (n >= CHUNKER_WINDOW_SIZE) {
      for (let k = 0, j = limit - CHUNKER_WINDOW_SIZE; k < CHUNKER_WINDOW_SIZE; k++, j++) window[k] = data[j];
    } else if (n > 0) {
      window.copyWithin(0, n);
      for (let k = CHUNKER_WINDOW_SIZE - n, j = s0; j < limit; k++, j++) window[k] = data[j];
    }
    this.size = size;
    this.hash = h;
    return -1;
  }
}
