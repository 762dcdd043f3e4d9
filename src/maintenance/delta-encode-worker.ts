/**
 * Worker of the delta pass (delta-encode.ts): decodes a plain stored chunk and its bases (those
 * whose content does not come along) through a kept context, checks each against its id, and
 * compresses the chunk with the bases' contents as dictionary (encodeDelta), so that the pass's
 * CPU work runs beside the main thread, on as many threads as it is given.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { encodeDelta } from '../delta/stored-form.ts';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';
import { transferable, type WorkerReply } from '../runtime/worker-pool.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { ZstdFrameDecoder } from '../storage/zstd-frames.ts';

export interface DeltaRequest {
  id: Uint8Array;
  /** The chunk's plain stored frame (moved to the worker and back). */
  stored: Uint8Array;
  size: number;
  /** The bases, in dictionary order: each as its plain stored frame, or its content (checked already). */
  bases: { id: Uint8Array; stored?: Uint8Array; content?: Uint8Array }[];
  level: number;
  /** The delta is sent back only if at most this many bytes. */
  maxBytes: number;
}

export interface DeltaResult {
  /** The chunk's stored frame, moved back. */
  stored: Uint8Array;
  /** The delta's stored form, when small enough. */
  delta?: Uint8Array;
  /** Milliseconds spent compressing. */
  encodeMs: number;
}

/** A base's size is not sent: it is at most the largest chunk. */
const MAX_CHUNK = DEFAULT_CHUNKER_PARAMS.max;

const decoder = new ZstdFrameDecoder();
/** Where the chunk and its base are decoded: only the delta leaves the worker. */
let chunkScratch = new Uint8Array(0);
/** One per base position, made when first needed. */
const baseScratch: Uint8Array[] = [];
const scavenge = scavengerByVolume();

parentPort!.on('message', (request: DeltaRequest & { seq: number }) => {
  let reply: WorkerReply<DeltaResult>;
  const transfer: ArrayBuffer[] = [];
  try {
    const result = deltaOf(request);
    transfer.push(...transferable(result.stored));
    if (result.delta) transfer.push(...transferable(result.delta));
    reply = { seq: request.seq, result };
  } catch (err) {
    reply = {
      seq: request.seq,
      error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code },
    };
  }
  parentPort!.postMessage(reply, transfer);
  scavenge(request.size);
});

function deltaOf({ id, stored, size, bases, level, maxBytes }: DeltaRequest): DeltaResult {
  if (chunkScratch.length <= size) chunkScratch = new Uint8Array(size + 1);
  const data = checked(id, stored, size, chunkScratch);
  const dictionary = bases.map((base, i) => ({
    id: base.id,
    content:
      base.content ?? checked(base.id, base.stored!, undefined, (baseScratch[i] ??= new Uint8Array(MAX_CHUNK + 1))),
  }));
  const started = performance.now();
  const delta = encodeDelta(data, dictionary, level);
  const encodeMs = performance.now() - started;
  return delta.byteLength <= maxBytes ? { stored, delta, encodeMs } : { stored, encodeMs };
}

/** The frame's content, decoded into `into`, which must hash to `id` (and be `size` long, when known). */
function checked(id: Uint8Array, frame: Uint8Array, size: number | undefined, into: Uint8Array): Uint8Array {
  let data: Uint8Array;
  try {
    data = decoder.decode(frame, size ?? MAX_CHUNK, into);
  } catch {
    throw corrupt(`chunk ${chunkHex(id)} does not decompress`);
  }
  if ((size !== undefined && data.length !== size) || !createHash('sha256').update(data).digest().equals(id))
    throw corrupt(`chunk ${chunkHex(id)} does not match its hash`);
  return data;
}

function corrupt(message: string): Error {
  return Object.assign(new Error(message), { code: 'chunk-corrupt' });
}
