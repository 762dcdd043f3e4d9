/**
 * The body of a chunk-list upload (`POST /_api/v1/caches/NAME/nars`, docs/http-api.md): a NAR
 * given as its chunks in order, each either named as one the server has or sent along.
 *
 *   "NWCL" u8 version (1 or 2)
 *   then per chunk:  id: 32 bytes (sha256 of the chunk)  u8 kind
 *     kind 0: the server has it
 *     kind 1: u32 length, then one zstd frame of it
 *     kind 2 (version 2 only): u8 n (1 to MAX_SENT_BASES), n base ids of 32 bytes, u32 length,
 *             then one zstd frame of it made with the bases' contents, concatenated in that
 *             order, as dictionary (a delta against chunks the server has)
 *
 * (integers big-endian). The chunks end where their sizes reach the NAR's declared size; the body
 * ends there too. A client can so stream a NAR of any size in one pass, asking which chunks to
 * send a batch at a time. A server says in its missing-chunks answer which version it reads
 * (CHUNK_LIST_VERSION_HEADER); one that does not say reads only version 1.
 */
import { NarwhalError } from '../errors.ts';
import type { ExactReader } from '../runtime/exact-reader.ts';

export const CHUNK_LIST_MAGIC = 'NWCL';
/** The newest version this code reads and writes. */
export const CHUNK_LIST_VERSION = 2;
/** Response header of missing-chunks: the newest chunk-list version the server reads. */
export const CHUNK_LIST_VERSION_HEADER = 'narwhal-chunk-list-version';
/** The most bases one sent delta may name. */
export const MAX_SENT_BASES = 8;
const HEADER_BYTES = 5;
const ENTRY_BYTES = 33;
const ID_BYTES = 32;

export type ChunkListEntry =
  | { id: Uint8Array; frame?: undefined; bases?: undefined }
  | { id: Uint8Array; frame: Uint8Array; bases?: Uint8Array[] };

export function encodeChunkListHeader(version: 1 | 2 = CHUNK_LIST_VERSION): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  out.set(Buffer.from(CHUNK_LIST_MAGIC, 'latin1'));
  out[4] = version;
  return out;
}

/**
 * One entry: the chunk's id, and its frame when it is sent; with `bases` (version 2), the frame
 * is a delta made with their contents as dictionary.
 */
export function encodeChunkListEntry(id: Uint8Array, frame?: Uint8Array, bases?: readonly Uint8Array[]): Uint8Array {
  const head = chunkListEntryHead(id, frame?.length, bases);
  if (!frame) return head;
  const out = new Uint8Array(head.length + frame.length);
  out.set(head);
  out.set(frame, head.length);
  return out;
}

/**
 * An entry up to its frame, for a writer that sends the frame after it as it is (no copy): the
 * id, and with `frameLength` the kind, the bases and the length.
 */
export function chunkListEntryHead(id: Uint8Array, frameLength?: number, bases?: readonly Uint8Array[]): Uint8Array {
  if (frameLength === undefined) {
    const out = new Uint8Array(ENTRY_BYTES);
    out.set(id);
    return out;
  }
  const baseBytes = bases ? 1 + ID_BYTES * bases.length : 0;
  if (bases && (bases.length === 0 || bases.length > MAX_SENT_BASES))
    throw new RangeError(`a sent delta names 1 to ${MAX_SENT_BASES} bases`);
  const out = new Uint8Array(ENTRY_BYTES + baseBytes + 4);
  out.set(id);
  out[32] = bases ? 2 : 1;
  if (bases) {
    out[ENTRY_BYTES] = bases.length;
    for (const [i, base] of bases.entries()) out.set(base, ENTRY_BYTES + 1 + ID_BYTES * i);
  }
  new DataView(out.buffer).setUint32(ENTRY_BYTES + baseBytes, frameLength);
  return out;
}

/** Reads the header; gives the body's version. */
export async function readChunkListHeader(reader: ExactReader): Promise<number> {
  const header = await reader.read(HEADER_BYTES);
  if (!header || Buffer.from(header.subarray(0, 4)).toString('latin1') !== CHUNK_LIST_MAGIC) {
    throw new NarwhalError('bad-request', `a chunk list starts with "${CHUNK_LIST_MAGIC}"`);
  }
  if (header[4] !== 1 && header[4] !== 2) {
    throw new NarwhalError('bad-request', `chunk list version ${header[4]} is not supported`);
  }
  return header[4];
}

/** The next entry of a body of `version`; a sent frame is at most `maxFrame` bytes. */
export async function readChunkListEntry(reader: ExactReader, maxFrame: number, version = 1): Promise<ChunkListEntry> {
  const entry = await reader.read(ENTRY_BYTES);
  if (!entry) throw new NarwhalError('bad-request', 'the chunk list ended before the NAR did');
  const id = entry.slice(0, 32);
  const kind = entry[32];
  if (kind === 0) return { id };
  if (kind !== 1 && !(kind === 2 && version >= 2)) {
    throw new NarwhalError('bad-request', `a chunk's kind is ${version >= 2 ? '0, 1 or 2' : '0 or 1'}, not ${kind}`);
  }
  let bases: Uint8Array[] | undefined;
  if (kind === 2) {
    const count = (await reader.read(1))?.[0];
    if (count === undefined) throw new NarwhalError('bad-request', 'the body ended inside a chunk entry');
    if (count === 0 || count > MAX_SENT_BASES) {
      throw new NarwhalError('bad-request', `a delta names 1 to ${MAX_SENT_BASES} bases, not ${count}`);
    }
    const ids = await reader.read(ID_BYTES * count);
    if (!ids) throw new NarwhalError('bad-request', 'the body ended inside a chunk entry');
    bases = Array.from({ length: count }, (_, i) => ids.slice(ID_BYTES * i, ID_BYTES * (i + 1)));
  }
  const prefix = await reader.read(4);
  if (!prefix) throw new NarwhalError('bad-request', 'the body ended inside a chunk entry');
  const length = new DataView(prefix.buffer, prefix.byteOffset, 4).getUint32(0);
  if (length === 0 || length > maxFrame) {
    throw new NarwhalError('bad-request', `a chunk frame is 1 to ${maxFrame} bytes, not ${length}`);
  }
  const frame = await reader.read(length);
  if (!frame) throw new NarwhalError('bad-request', 'the body ended inside a chunk frame');
  return bases ? { id, frame, bases } : { id, frame };
}
