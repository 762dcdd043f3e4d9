/**
 * Worker of checkChunk (chunk-check.ts): decompresses a stored chunk and checks its size and hash.
 * It decompresses synchronously, through one kept context (zstd-frames.ts): Node's async call
 * builds a new context per call and runs markedly slower (measured: docs/benchmarks.md,
 * 'zstd contexts').
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { transferable, type WorkerReply } from '../runtime/worker-pool.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { ZstdFrameDecoder } from '../storage/zstd-frames.ts';
import { decodeDelta, parseStored } from '../delta/stored-form.ts';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';

export interface CheckRequest {
  id: Uint8Array;
  stored: Uint8Array;
  /** The chunk's size; undefined when unknown (a base: its hash alone is checked). */
  size: number | undefined;
  /** Send the decompressed bytes back (else only the stored ones). */
  wantData: boolean;
  /** For a chunk stored as a delta: its bases' contents, checked, in dictionary order. */
  bases?: Uint8Array[];
}

/** The stored bytes, moved back, and the chunk's bytes when asked for. */
export interface CheckResult {
  stored: Uint8Array;
  data?: Uint8Array;
}

const decoder = new ZstdFrameDecoder();
/** Where chunks are decoded when only their check is wanted, not their bytes. */
let scratch = new Uint8Array(0);
const scavenge = scavengerByVolume();

/** The largest chunk there is: the bound of a chunk of unknown size. */
const MAX_CHUNK = DEFAULT_CHUNKER_PARAMS.max;

parentPort!.on('message', ({ seq, id, stored, size, wantData, bases }: CheckRequest & { seq: number }) => {
  let reply: WorkerReply<CheckResult>;
  const transfer: ArrayBuffer[] = [];
  try {
    let data: Uint8Array;
    try {
      data = bases ? decodeDeltaChunk(stored, bases, size) : decodePlain(stored, size, wantData);
    } catch {
      throw Object.assign(new Error(`chunk ${chunkHex(id)} does not decompress`), { code: 'chunk-corrupt' });
    }
    if ((size !== undefined && data.length !== size) || !createHash('sha256').update(data).digest().equals(id)) {
      throw Object.assign(new Error(`chunk ${chunkHex(id)} does not match its hash`), { code: 'chunk-corrupt' });
    }
    transfer.push(...transferable(stored));
    const result: CheckResult = { stored };
    if (wantData) {
      // The decoder gives each chunk a buffer of its own, which moves along rather than being copied.
      result.data = data;
      transfer.push(data.buffer as ArrayBuffer);
    }
    reply = { seq, result };
  } catch (err) {
    reply = { seq, error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } };
  }
  parentPort!.postMessage(reply, transfer);
  scavenge(size ?? MAX_CHUNK);
});

function decodePlain(stored: Uint8Array, size: number | undefined, wantData: boolean): Uint8Array {
  const expected = size ?? MAX_CHUNK;
  if (!wantData && scratch.length <= expected) scratch = new Uint8Array(expected + 1);
  const data = decoder.decode(stored, expected, wantData ? undefined : scratch);
  // Of unknown size, the chunk was decoded into a buffer for the largest: it moves on in one of its own.
  return size === undefined && wantData ? data.slice() : data;
}

function decodeDeltaChunk(stored: Uint8Array, bases: Uint8Array[], size: number | undefined): Uint8Array {
  const form = parseStored(stored);
  if (form.kind !== 'delta' || form.bases.length !== bases.length) throw new Error('not the delta expected');
  const data = decodeDelta(form.frame, bases, (size ?? MAX_CHUNK) + 1);
  // Its own buffer, which can move to the main thread.
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
}
