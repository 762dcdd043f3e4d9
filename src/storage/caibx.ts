/**
 * The casync blob index (.caibx) codec. Layout (all integers u64 little-endian):
 *   0   index header: size=48, type=CA_FORMAT_INDEX, feature_flags, chunk_size_min/avg/max
 *   48  table header: size=2^64-1, type=CA_FORMAT_TABLE
 *   64  one 40-byte item per chunk: cumulative end offset, 32-byte chunk ID
 *   end tail: 0, 0, index_offset=48, table size=16+40n+40, CA_FORMAT_TABLE_TAIL_MARKER
 * Total 104 + 40n bytes; an empty blob has n = 0.
 *
 * feature_flags written by casync 2 (Debian 2+20201210) for `casync make x.caibx FILE`, observed:
 *   --digest=sha256         0x9000000000000000 = EXCLUDE_NODUMP | EXCLUDE_FILE
 *   default (sha512-256)    0xb000000000000000 = EXCLUDE_NODUMP | SHA512_256 | EXCLUDE_FILE
 * Only CA_FORMAT_SHA512_256 means anything for a blob index (it selects the chunk ID digest);
 * other bits are accepted as they are and round-trip unchanged.
 */
import { NarwhalError } from '../errors.ts';
import { CHUNK_SIZE_LIMIT_MAX } from '../chunking/chunker.ts';

export const CA_FORMAT_INDEX = 0x96824d9c7b129ff9n;
export const CA_FORMAT_TABLE = 0xe75b9e112f17417dn;
export const CA_FORMAT_TABLE_TAIL_MARKER = 0x4b4f050e5549ecd1n;

export const CA_FORMAT_EXCLUDE_FILE = 0x1000000000000000n;
export const CA_FORMAT_SHA512_256 = 0x2000000000000000n;
export const CA_FORMAT_EXCLUDE_SUBMOUNTS = 0x4000000000000000n;
export const CA_FORMAT_EXCLUDE_NODUMP = 0x8000000000000000n;

/** What `casync make --digest=sha256 x.caibx FILE` writes. */
export const CASYNC_BLOB_FLAGS_SHA256 = CA_FORMAT_EXCLUDE_NODUMP | CA_FORMAT_EXCLUDE_FILE;
/** What `casync make x.caibx FILE` (default digest sha512-256) writes. */
export const CASYNC_BLOB_FLAGS_SHA512_256 = CA_FORMAT_EXCLUDE_NODUMP | CA_FORMAT_SHA512_256 | CA_FORMAT_EXCLUDE_FILE;

export const CHUNK_ID_SIZE = 32;
const INDEX_HEADER_SIZE = 48;
const TABLE_HEADER_SIZE = 16;
const ITEM_SIZE = 40;
const TAIL_SIZE = 40;
const U64_MAX = 0xffffffffffffffffn;

export interface CaibxChunk {
  /** Cumulative offset just after this chunk in the blob. */
  end: number;
  /** 32-byte chunk ID (SHA-256 or SHA-512/256 of the uncompressed chunk). */
  id: Uint8Array;
}

export interface CaibxIndex {
  featureFlags: bigint;
  chunkSizeMin: number;
  chunkSizeAvg: number;
  chunkSizeMax: number;
  chunks: CaibxChunk[];
}

/** Size in bytes of the encoding of an index with `chunkCount` chunks. */
export function caibxByteLength(chunkCount: number): number {
  return INDEX_HEADER_SIZE + TABLE_HEADER_SIZE + ITEM_SIZE * chunkCount + TAIL_SIZE;
}

/** The node:crypto digest name for the chunk IDs of an index with these feature flags. */
export function chunkDigestAlgorithm(featureFlags: bigint): 'sha256' | 'sha512-256' {
  return (featureFlags & CA_FORMAT_SHA512_256) !== 0n ? 'sha512-256' : 'sha256';
}

/** Total blob length described by the index (the last chunk's end, 0 if empty). */
export function caibxBlobLength(index: CaibxIndex): number {
  const n = index.chunks.length;
  return n === 0 ? 0 : index.chunks[n - 1].end;
}

function bad(message: string): NarwhalError {
  return new NarwhalError('bad-index', message);
}

function checkSizes(min: number, avg: number, max: number): void {
  if (!(min >= 1 && min <= avg && avg <= max && max <= CHUNK_SIZE_LIMIT_MAX)) {
    throw bad(`index chunk sizes ${min}/${avg}/${max} are not 1 <= min <= avg <= max <= 128 MiB`);
  }
}

/** Throws NarwhalError('bad-index') unless `end` may follow `prevEnd` in an index with this max. */
function checkEnd(i: number, end: number, prevEnd: number, max: number): void {
  if (!Number.isSafeInteger(end) || end < 0) {
    throw bad(`index chunk ${i} offset is out of range`);
  }
  if (end <= prevEnd) {
    throw bad(`index chunk ${i} offset does not increase`);
  }
  if (end - prevEnd > max) {
    throw bad(`index chunk ${i} is larger than the maximum chunk size`);
  }
}

/** Encodes an index; throws NarwhalError('bad-index') for anything decodeCaibx would reject. */
export function encodeCaibx(index: CaibxIndex): Uint8Array {
  const { featureFlags, chunkSizeMin: min, chunkSizeAvg: avg, chunkSizeMax: max, chunks } = index;
  if (typeof featureFlags !== 'bigint' || featureFlags < 0n || featureFlags > U64_MAX) {
    throw bad('index feature flags are not a u64');
  }
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(avg) || !Number.isSafeInteger(max)) {
    throw bad('index chunk sizes are not integers');
  }
  checkSizes(min, avg, max);
  const n = chunks.length;
  const out = new Uint8Array(caibxByteLength(n));
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(INDEX_HEADER_SIZE), true);
  view.setBigUint64(8, CA_FORMAT_INDEX, true);
  view.setBigUint64(16, featureFlags, true);
  view.setBigUint64(24, BigInt(min), true);
  view.setBigUint64(32, BigInt(avg), true);
  view.setBigUint64(40, BigInt(max), true);
  view.setBigUint64(48, U64_MAX, true);
  view.setBigUint64(56, CA_FORMAT_TABLE, true);
  let prevEnd = 0;
  let p = INDEX_HEADER_SIZE + TABLE_HEADER_SIZE;
  for (let i = 0; i < n; i++) {
    const { end, id } = chunks[i];
    checkEnd(i, end, prevEnd, max);
    if (!(id instanceof Uint8Array) || id.length !== CHUNK_ID_SIZE) {
      throw bad(`index chunk ${i} ID is not ${CHUNK_ID_SIZE} bytes`);
    }
    view.setBigUint64(p, BigInt(end), true);
    out.set(id, p + 8);
    prevEnd = end;
    p += ITEM_SIZE;
  }
  // Tail: a zero offset and zero ID word, then where the table starts and its size, then the marker.
  view.setBigUint64(p + 16, BigInt(INDEX_HEADER_SIZE), true);
  view.setBigUint64(p + 24, BigInt(TABLE_HEADER_SIZE + ITEM_SIZE * n + TAIL_SIZE), true);
  view.setBigUint64(p + 32, CA_FORMAT_TABLE_TAIL_MARKER, true);
  return out;
}

/** Decodes and fully validates an index; throws NarwhalError('bad-index') on any deviation. */
export function decodeCaibx(bytes: Uint8Array): CaibxIndex {
  const len = bytes.length;
  if (len < caibxByteLength(0) || (len - caibxByteLength(0)) % ITEM_SIZE !== 0) {
    throw bad(`index length ${len} is not 104 + 40n bytes`);
  }
  const n = (len - caibxByteLength(0)) / ITEM_SIZE;
  const view = new DataView(bytes.buffer, bytes.byteOffset, len);
  const u64 = (at: number): bigint => view.getBigUint64(at, true);

  if (u64(0) !== BigInt(INDEX_HEADER_SIZE)) throw bad('index header size is not 48');
  if (u64(8) !== CA_FORMAT_INDEX) throw bad('not a casync index (bad header type)');
  const featureFlags = u64(16);
  const min64 = u64(24);
  const avg64 = u64(32);
  const max64 = u64(40);
  const limit = BigInt(CHUNK_SIZE_LIMIT_MAX);
  if (min64 > limit || avg64 > limit || max64 > limit) {
    throw bad('index chunk sizes exceed 128 MiB');
  }
  const min = Number(min64);
  const avg = Number(avg64);
  const max = Number(max64);
  checkSizes(min, avg, max);

  if (u64(48) !== U64_MAX) throw bad('index table header size is not 2^64-1');
  if (u64(56) !== CA_FORMAT_TABLE) throw bad('index table marker missing');

  const chunks: CaibxChunk[] = new Array(n);
  let prevEnd = 0;
  let p = INDEX_HEADER_SIZE + TABLE_HEADER_SIZE;
  for (let i = 0; i < n; i++) {
    const end64 = u64(p);
    const end = end64 > BigInt(Number.MAX_SAFE_INTEGER) ? Number.NaN : Number(end64);
    checkEnd(i, end, prevEnd, max);
    chunks[i] = { end, id: bytes.slice(p + 8, p + 8 + CHUNK_ID_SIZE) };
    prevEnd = end;
    p += ITEM_SIZE;
  }

  if (u64(p) !== 0n || u64(p + 8) !== 0n) throw bad('index tail does not start with zeros');
  if (u64(p + 16) !== BigInt(INDEX_HEADER_SIZE)) throw bad('index tail has a wrong table offset');
  if (u64(p + 24) !== BigInt(TABLE_HEADER_SIZE + ITEM_SIZE * n + TAIL_SIZE)) {
    throw bad('index tail has a wrong table size');
  }
  if (u64(p + 32) !== CA_FORMAT_TABLE_TAIL_MARKER) throw bad('index tail marker missing');

  return { featureFlags, chunkSizeMin: min, chunkSizeAvg: avg, chunkSizeMax: max, chunks };
}
