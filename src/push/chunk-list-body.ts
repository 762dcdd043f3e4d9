/**
 * The body of a chunk-list upload (`POST /_api/v1/caches/NAME/nars`, docs/http-api.md): a NAR
 * given as its chunks in order, each either named as one the server has or sent along.
 *
 *   "NWCL" u8 version=1
 *   then per chunk:  id: 32 bytes (sha256 of the chunk)  u8 sent
 *                    sent = 0: the server has it;  sent = 1: u32 length, then one zstd frame of it
 *
 * (integers big-endian). The chunks end where their sizes reach the NAR's declared size; the body
 * ends there too. A client can so stream a NAR of any size in one pass, asking which chunks to
 * send a batch at a time.
 */
import { NarwhalError } from '../errors.ts';
import type { ExactReader } from '../runtime/exact-reader.ts';

export const CHUNK_LIST_MAGIC = 'NWCL';
export const CHUNK_LIST_VERSION = 1;
const HEADER_BYTES = 5;
const ENTRY_BYTES = 33;

export type ChunkListEntry = { id: Uint8Array; frame?: undefined } | { id: Uint8Array; frame: Uint8Array };

export function encodeChunkListHeader(): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  out.set(Buffer.from(CHUNK_LIST_MAGIC, 'latin1'));
  out[4] = CHUNK_LIST_VERSION;
  return out;
}

/** One entry: the chunk's id, and its frame when it is sent. */
export function encodeChunkListEntry(id: Uint8Array, frame?: Uint8Array): Uint8Array {
  const out = new Uint8Array(ENTRY_BYTES + (frame ? 4 + frame.length : 0));
  out.set(id);
  if (frame) {
    out[32] = 1;
    new DataView(out.buffer).setUint32(ENTRY_BYTES, frame.length);
    out.set(frame, ENTRY_BYTES + 4);
  }
  return out;
}

export async function readChunkListHeader(reader: ExactReader): Promise<void> {
  const header = await reader.read(HEADER_BYTES);
  if (!header || Buffer.from(header.subarray(0, 4)).toString('latin1') !== CHUNK_LIST_MAGIC) {
    throw new NarwhalError('bad-request', `a chunk list starts with "${CHUNK_LIST_MAGIC}"`);
  }
  if (header[4] !== CHUNK_LIST_VERSION) {
    throw new NarwhalError('bad-request', `chunk list version ${header[4]} is not supported`);
  }
}

/** The next entry; a sent frame is at most `maxFrame` bytes. */
export async function readChunkListEntry(reader: ExactReader, maxFrame: number): Promise<ChunkListEntry> {
  const entry = await reader.read(ENTRY_BYTES);
  if (!entry) throw new NarwhalError('bad-request', 'the chunk list ended before the NAR did');
  const id = entry.slice(0, 32);
  if (entry[32] === 0) return { id };
  if (entry[32] !== 1) throw new NarwhalError('bad-request', `a chunk's flag is 0 or 1, not ${entry[32]}`);
  const prefix = await reader.read(4);
  if (!prefix) throw new NarwhalError('bad-request', 'the body ended inside a chunk entry');
  const length = new DataView(prefix.buffer, prefix.byteOffset, 4).getUint32(0);
  if (length === 0 || length > maxFrame) {
    throw new NarwhalError('bad-request', `a chunk frame is 1 to ${maxFrame} bytes, not ${length}`);
  }
  const frame = await reader.read(length);
  if (!frame) throw new NarwhalError('bad-request', 'the body ended inside a chunk frame');
  return { id, frame };
}
