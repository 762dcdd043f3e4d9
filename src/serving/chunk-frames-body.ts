/**
 * The bodies of `POST /<cache>/chunk-frames` (docs/http-api.md, "Fetching chunks"): a client
 * asks for chunks by id, each with the ids of chunks it holds that resemble it (hints); the server
 * answers each with a zstd frame of it, or with a delta against chunks the client holds.
 *
 * Request:   "NWCF" u8 version=1, then per chunk wanted:  id (32 bytes)  u8 hints  hints x id
 * Response:  per chunk wanted, in order:  id (32 bytes)  u8 kind  u32 length  payload
 *            kind 0: one zstd frame of the chunk;  1: a delta in Narwhal's stored form
 *            (src/delta/stored-form.ts: its header names the bases, all chunks the client holds);
 *            2: not here (length 0)
 * Integers are big-endian.
 */
import { NarwhalError } from '../errors.ts';
import type { ExactReader } from '../runtime/exact-reader.ts';

export const CHUNK_FRAMES_MAGIC = 'NWCF';
export const CHUNK_FRAMES_VERSION = 1;
/** Chunks one request may ask for, and hints per chunk: bounds a request's work and answer. */
export const MAX_CHUNKS_WANTED = 1024;
export const MAX_HINTS = 8;
const ID_BYTES = 32;

export interface WantedChunk {
  id: Uint8Array;
  /** Chunks the client holds that resemble this one, best first. */
  hints: Uint8Array[];
}

export type ChunkFrameKind = 'frame' | 'delta' | 'absent';
const KIND_CODES: Record<ChunkFrameKind, number> = { frame: 0, delta: 1, absent: 2 };
const KINDS: ChunkFrameKind[] = ['frame', 'delta', 'absent'];

export function encodeWantedChunks(wanted: readonly WantedChunk[]): Uint8Array {
  const size = 5 + wanted.reduce((sum, w) => sum + ID_BYTES + 1 + ID_BYTES * w.hints.length, 0);
  const out = new Uint8Array(size);
  out.set(Buffer.from(CHUNK_FRAMES_MAGIC, 'latin1'));
  out[4] = CHUNK_FRAMES_VERSION;
  let at = 5;
  for (const { id, hints } of wanted) {
    out.set(id, at);
    out[at + ID_BYTES] = hints.length;
    at += ID_BYTES + 1;
    for (const hint of hints) {
      out.set(hint, at);
      at += ID_BYTES;
    }
  }
  return out;
}

export function parseWantedChunks(body: Uint8Array): WantedChunk[] {
  if (body.length < 5 || Buffer.from(body.subarray(0, 4)).toString('latin1') !== CHUNK_FRAMES_MAGIC) {
    throw new NarwhalError('bad-request', `a chunk request starts with "${CHUNK_FRAMES_MAGIC}"`);
  }
  if (body[4] !== CHUNK_FRAMES_VERSION) throw new NarwhalError('bad-request', `chunk request version ${body[4]}?`);
  const wanted: WantedChunk[] = [];
  let at = 5;
  while (at < body.length) {
    if (wanted.length === MAX_CHUNKS_WANTED) {
      throw new NarwhalError('too-large', `at most ${MAX_CHUNKS_WANTED} chunks per request`);
    }
    if (at + ID_BYTES + 1 > body.length) throw new NarwhalError('bad-request', 'a chunk request ends inside an entry');
    const id = body.slice(at, at + ID_BYTES);
    const count = body[at + ID_BYTES];
    at += ID_BYTES + 1;
    if (count > MAX_HINTS) throw new NarwhalError('bad-request', `at most ${MAX_HINTS} hints per chunk`);
    if (at + ID_BYTES * count > body.length) throw new NarwhalError('bad-request', 'a chunk request ends in a hint');
    const hints = Array.from({ length: count }, (_, i) => body.slice(at + ID_BYTES * i, at + ID_BYTES * (i + 1)));
    at += ID_BYTES * count;
    wanted.push({ id, hints });
  }
  if (wanted.length === 0) throw new NarwhalError('bad-request', 'the request asks for no chunk');
  return wanted;
}

export function encodeChunkFrame(id: Uint8Array, kind: ChunkFrameKind, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(ID_BYTES + 5 + payload.length);
  out.set(id);
  out[ID_BYTES] = KIND_CODES[kind];
  new DataView(out.buffer).setUint32(ID_BYTES + 1, payload.length);
  out.set(payload, ID_BYTES + 5);
  return out;
}

/** The next answer of a response, or undefined at its end; payloads are at most `maxPayload` bytes. */
export async function readChunkFrame(
  reader: ExactReader,
  maxPayload: number,
): Promise<{ id: Uint8Array; kind: ChunkFrameKind; payload: Uint8Array } | undefined> {
  if (await reader.atEnd()) return undefined;
  const head = await reader.read(ID_BYTES + 5);
  if (!head) throw new NarwhalError('bad-request', 'the answer ends inside an entry');
  const kind = KINDS[head[ID_BYTES]];
  const length = new DataView(head.buffer, head.byteOffset + ID_BYTES + 1, 4).getUint32(0);
  if (kind === undefined || length > maxPayload) throw new NarwhalError('bad-request', 'a malformed chunk answer');
  const payload = length === 0 ? new Uint8Array(0) : await reader.read(length);
  if (!payload) throw new NarwhalError('bad-request', 'the answer ends inside a chunk');
  return { id: head.slice(0, ID_BYTES), kind, payload };
}
