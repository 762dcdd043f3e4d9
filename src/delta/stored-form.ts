/**
 * How a chunk is stored, self-described (issue 19): either one plain zstd frame, or a delta: a
 * zstd skippable frame (magic DELTA_MAGIC) naming the chunk's bases, count then their 32-byte ids
 * in dictionary order, followed by one zstd frame compressed with the bases' contents,
 * concatenated in that order, as its dictionary. Readers tell the two apart by the first four
 * bytes, so stores and copies (migrate-storage) need no record to read a chunk.
 *
 * A `.nar.zst` download cannot send a delta (the client has no dictionary): it sends the chunk as
 * rawZstdFrame instead, whose length depends only on the content's (rawFrameSize), so that a NAR's
 * served size stays exact and computable from its chunks' records.
 */
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

/** A skippable frame magic (RFC 8878, 3.1.2) no other Narwhal format uses (packs use 0x184D2A5E). */
export const DELTA_MAGIC = 0x184d2a5d;
const ID_BYTES = 32;
/** Skippable frame header (magic, length) and the count of bases. */
const DELTA_HEADER_BYTES = 9;
/** The longest chain of deltas read: a chunk, its base and its base's base may be deltas, no more. */
export const MAX_DELTA_DEPTH = 3;
/** The most bases a dictionary may name. */
export const MAX_DELTA_BASES = 255;

const ZSTD_MAGIC = 0xfd2fb528;
/** Frame header of a raw frame: magic, descriptor (single segment, 4-byte content size), content size. */
export const RAW_FRAME_HEADER_BYTES = 9;
export const RAW_BLOCK_HEADER_BYTES = 3;
/** The largest block zstd allows (Block_Maximum_Size). */
export const RAW_BLOCK_BYTES = 128 * 1024;
const SINGLE_SEGMENT_FOUR_BYTE_SIZE = 0xa0;

export interface DeltaBase {
  id: Uint8Array;
  content: Uint8Array;
}

export type StoredForm = { kind: 'plain' } | { kind: 'delta'; bases: Uint8Array[]; frame: Uint8Array };

/** The chunk `content` stored as a delta against `bases` (1 to MAX_DELTA_BASES), compressed at `level`. */
export function encodeDelta(content: Uint8Array, bases: readonly DeltaBase[], level: number): Uint8Array {
  if (bases.length === 0 || bases.length > MAX_DELTA_BASES)
    throw new RangeError(`a delta needs 1 to ${MAX_DELTA_BASES} bases`);
  const frame = zstdCompressSync(content, {
    dictionary: deltaDictionary(bases.map((base) => base.content)),
    params: { [constants.ZSTD_c_compressionLevel]: level },
  });
  return deltaStoredForm(
    bases.map((base) => base.id),
    frame,
  );
}

/** The dictionary a delta's frame is compressed with: its bases' contents, in order. */
export function deltaDictionary(contents: readonly Uint8Array[]): Uint8Array {
  return concatenated(contents);
}

/** The stored form of a delta: the header naming `baseIds`, then `frame` (made with deltaDictionary of their contents). */
export function deltaStoredForm(baseIds: readonly Uint8Array[], frame: Uint8Array): Uint8Array {
  if (baseIds.length === 0 || baseIds.length > MAX_DELTA_BASES)
    throw new RangeError(`a delta needs 1 to ${MAX_DELTA_BASES} bases`);
  const headerBytes = deltaStoredSize(baseIds.length, 0);
  const stored = new Uint8Array(headerBytes + frame.length);
  const view = new DataView(stored.buffer);
  view.setUint32(0, DELTA_MAGIC, true);
  view.setUint32(4, headerBytes - 8, true);
  stored[8] = baseIds.length;
  baseIds.forEach((id, i) => {
    if (id.length !== ID_BYTES) throw new RangeError('a base id is 32 bytes');
    stored.set(id, DELTA_HEADER_BYTES + ID_BYTES * i);
  });
  stored.set(frame, headerBytes);
  return stored;
}

/** The stored size of a delta on `bases` bases whose frame is `frameBytes` long. */
export function deltaStoredSize(bases: number, frameBytes: number): number {
  return DELTA_HEADER_BYTES + ID_BYTES * bases + frameBytes;
}

/**
 * What the stored bytes are. Anything not starting with a well-formed delta header is 'plain'
 * (a zstd frame, or damage that its decompression and hash check will find); the views returned
 * share the stored bytes.
 */
export function parseStored(stored: Uint8Array): StoredForm {
  if (stored.length < DELTA_HEADER_BYTES) return { kind: 'plain' };
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  if (view.getUint32(0, true) !== DELTA_MAGIC) return { kind: 'plain' };
  const count = stored[8];
  const headerBytes = DELTA_HEADER_BYTES + ID_BYTES * count;
  if (count === 0 || view.getUint32(4, true) !== headerBytes - 8 || stored.length <= headerBytes)
    throw new RangeError('malformed delta header');
  const bases = Array.from({ length: count }, (_, i) =>
    stored.subarray(DELTA_HEADER_BYTES + ID_BYTES * i, DELTA_HEADER_BYTES + ID_BYTES * (i + 1)),
  );
  return { kind: 'delta', bases, frame: stored.subarray(headerBytes) };
}

/**
 * The content of a delta's frame, given its bases' contents in dictionary order; at most
 * `maxSize` bytes (more throws, as does a frame that does not decode with this dictionary).
 */
export function decodeDelta(frame: Uint8Array, baseContents: readonly Uint8Array[], maxSize: number): Uint8Array {
  const content = zstdDecompressSync(frame, {
    dictionary: concatenated(baseContents),
    maxOutputLength: maxSize,
  } as Parameters<typeof zstdDecompressSync>[1]);
  return new Uint8Array(content.buffer, content.byteOffset, content.byteLength);
}

/** The length of rawZstdFrame of `size` bytes. */
export function rawFrameSize(size: number): number {
  return RAW_FRAME_HEADER_BYTES + RAW_BLOCK_HEADER_BYTES * rawBlockCount(size) + size;
}

/**
 * `content` as one zstd frame of raw (stored, uncompressed) blocks, without checksum: any zstd
 * decoder reads it, and its length is rawFrameSize(content.length). Written at the start of
 * `into` when given (at least that long), else into a buffer of its own.
 */
export function rawZstdFrame(content: Uint8Array, into?: Uint8Array): Uint8Array {
  if (content.length > 0xffffffff) throw new RangeError('content too large for a raw frame');
  const size = rawFrameSize(content.length);
  if (into !== undefined && into.length < size) throw new RangeError('no room for the raw frame');
  const frame = into === undefined ? new Uint8Array(size) : into.subarray(0, size);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  view.setUint32(0, ZSTD_MAGIC, true);
  frame[4] = SINGLE_SEGMENT_FOUR_BYTE_SIZE;
  view.setUint32(5, content.length, true);
  let at = RAW_FRAME_HEADER_BYTES;
  const blocks = rawBlockCount(content.length);
  for (let i = 0; i < blocks; i++) {
    const block = content.subarray(i * RAW_BLOCK_BYTES, (i + 1) * RAW_BLOCK_BYTES);
    // Block header, 24 bits LE: last-block flag, type 0 (raw), size.
    const header = (block.length << 3) | (i === blocks - 1 ? 1 : 0);
    frame[at] = header & 0xff;
    frame[at + 1] = (header >>> 8) & 0xff;
    frame[at + 2] = (header >>> 16) & 0xff;
    frame.set(block, at + RAW_BLOCK_HEADER_BYTES);
    at += RAW_BLOCK_HEADER_BYTES + block.length;
  }
  return frame;
}

function rawBlockCount(size: number): number {
  return Math.max(1, Math.ceil(size / RAW_BLOCK_BYTES));
}

function concatenated(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const whole = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    whole.set(part, at);
    at += part.length;
  }
  return whole;
}

/** Whether stored bytes claim to be a delta; a malformed claim counts as one, to be checked and refused as one. */
export function claimsDelta(stored: Uint8Array): boolean {
  try {
    return parseStored(stored).kind === 'delta';
  } catch {
    return true;
  }
}
