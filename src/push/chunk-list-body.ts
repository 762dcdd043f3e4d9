/**
 * The body of a chunk-list upload (`POST /_api/v1/caches/NAME/nars`, docs/http-api.md): a NAR
 * given as the list of its chunks, the ones the server lacks sent along.
 *
 *   "NWCL" u8 version=1  u32 count            (big-endian)
 *   count x ( id: 32 bytes (sha256 of the chunk)  u8 sent: 0 the server has it, 1 it follows )
 *   for each chunk sent, in list order: u32 length, then one zstd frame of the chunk
 *
 * The list comes first so that the server can refuse, before any frame is sent, a list naming
 * chunks it cannot count on.
 */
import { NarwhalError } from '../errors.ts';
import type { ExactReader } from '../runtime/exact-reader.ts';

export const CHUNK_LIST_MAGIC = 'NWCL';
export const CHUNK_LIST_VERSION = 1;
const HEADER_BYTES = 9;
const ENTRY_BYTES = 33;

export interface ChunkListEntry {
  id: Uint8Array;
  /** The chunk's frame follows in the body. */
  sent: boolean;
}

export function encodeChunkListHead(entries: readonly ChunkListEntry[]): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + ENTRY_BYTES * entries.length);
  out.set(Buffer.from(CHUNK_LIST_MAGIC, 'latin1'));
  const view = new DataView(out.buffer);
  view.setUint8(4, CHUNK_LIST_VERSION);
  view.setUint32(5, entries.length);
  for (const [i, { id, sent }] of entries.entries()) {
    out.set(id, HEADER_BYTES + ENTRY_BYTES * i);
    out[HEADER_BYTES + ENTRY_BYTES * i + 32] = sent ? 1 : 0;
  }
  return out;
}

/** The length prefix of a sent chunk's frame. */
export function encodeFrameLength(length: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, length);
  return out;
}

/** Reads the head of a chunk-list body: at most `maxCount` entries. */
export async function readChunkListHead(reader: ExactReader, maxCount: number): Promise<ChunkListEntry[]> {
  const header = await reader.read(HEADER_BYTES);
  if (!header || Buffer.from(header.subarray(0, 4)).toString('latin1') !== CHUNK_LIST_MAGIC) {
    throw new NarwhalError('bad-request', `a chunk list starts with "${CHUNK_LIST_MAGIC}"`);
  }
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (view.getUint8(4) !== CHUNK_LIST_VERSION) {
    throw new NarwhalError('bad-request', `chunk list version ${view.getUint8(4)} is not supported`);
  }
  const count = view.getUint32(5);
  if (count === 0 || count > maxCount) {
    throw new NarwhalError('bad-request', `a chunk list of this NAR has 1 to ${maxCount} chunks, not ${count}`);
  }
  const list = await reader.read(ENTRY_BYTES * count);
  if (!list) throw new NarwhalError('bad-request', 'the chunk list ended early');
  const entries: ChunkListEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = ENTRY_BYTES * i;
    const flag = list[at + 32];
    if (flag > 1) throw new NarwhalError('bad-request', `chunk ${i} of the list has flag ${flag}, not 0 or 1`);
    entries.push({ id: list.slice(at, at + 32), sent: flag === 1 });
  }
  return entries;
}

/** The next sent frame: at most `maxLength` bytes. */
export async function readSentFrame(reader: ExactReader, maxLength: number): Promise<Uint8Array> {
  const prefix = await reader.read(4);
  if (!prefix) throw new NarwhalError('bad-request', 'the body ended before every chunk the list says is sent');
  const length = new DataView(prefix.buffer, prefix.byteOffset, 4).getUint32(0);
  if (length === 0 || length > maxLength) {
    throw new NarwhalError('bad-request', `a chunk frame is 1 to ${maxLength} bytes, not ${length}`);
  }
  const frame = await reader.read(length);
  if (!frame) throw new NarwhalError('bad-request', 'the body ended inside a chunk frame');
  return frame;
}
