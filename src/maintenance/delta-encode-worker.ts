/**
 * Worker of the delta pass (delta-encode.ts): decodes a plain stored chunk and its bases (those
 * whose content does not come along) through a kept context, checks each against its id, and
 * compresses the chunk with each option's bases' contents as dictionary, keeping the smallest,
 * so that the pass's CPU work runs beside the main thread, on as many threads as it is given.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { deltaDictionary, deltaStoredForm } from '../delta/stored-form.ts';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';
import { transferable, type WorkerReply } from '../runtime/worker-pool.ts';
import { BoundedContents } from '../serving/bounded-contents.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { encodeWithDictionary, encoderPerLevel, ZstdFrameDecoder } from '../storage/zstd-frames.ts';

export interface DeltaRequest {
  id: Uint8Array;
  /** The chunk's plain stored frame (moved to the worker and back). */
  stored: Uint8Array;
  size: number;
  /** Each option's bases, in dictionary order: each as its plain stored frame, or its content (checked already). */
  options: DeltaBaseInput[][];
  level: number;
  /** The delta is sent back only if at most this many bytes. */
  maxBytes: number;
  /**
   * Set when the chunk's frame is at a faster level than `level`: the delta must then also be at
   * most this share of the chunk's frame at `level` (what recompression would store).
   */
  plainMargin?: number;
}

export interface DeltaBaseInput {
  id: Uint8Array;
  stored?: Uint8Array;
  content?: Uint8Array;
}

export interface DeltaResult {
  /** The chunk's stored frame, moved back. */
  stored: Uint8Array;
  /** The smallest option's delta in its stored form, when small enough, and which option it is. */
  delta?: Uint8Array;
  option?: number;
  /** Milliseconds spent compressing. */
  encodeMs: number;
}

/** Bytes of decoded bases kept per worker. */
const BASE_CACHE_BYTES = 16 * 1024 * 1024;
/** A base's size is not sent: it is at most the largest chunk. */
const MAX_CHUNK = DEFAULT_CHUNKER_PARAMS.max;

const decoder = new ZstdFrameDecoder();
/** Where the chunk and its base are decoded: only the delta leaves the worker. */
let chunkScratch = new Uint8Array(0);
/**
 * Bases decoded and checked lately, by id: neighbouring chunks share most of their bases by place
 * (four of five), so each is decoded once rather than once per chunk.
 */
const bases = new BoundedContents(BASE_CACHE_BYTES);
const encoder = encoderPerLevel();
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

function deltaOf({ id, stored, size, options, level, maxBytes, plainMargin }: DeltaRequest): DeltaResult {
  if (chunkScratch.length <= size) chunkScratch = new Uint8Array(size + 1);
  const data = checked(id, stored, size, chunkScratch);
  const started = performance.now();
  let best: { delta: Uint8Array; option: number } | undefined;
  for (const [option, inputs] of options.entries()) {
    const frame = encodeWithDictionary(data, deltaDictionary(inputs.map(baseContent)), level);
    const delta = deltaStoredForm(
      inputs.map((base) => base.id),
      frame,
    );
    if (!best || delta.byteLength < best.delta.byteLength) best = { delta, option };
  }
  let limit = maxBytes;
  if (best && best.delta.byteLength <= limit && plainMargin !== undefined) {
    limit = Math.min(limit, Math.floor(plainMargin * encoder(level).encode(data).byteLength));
  }
  const encodeMs = performance.now() - started;
  return best && best.delta.byteLength <= limit ? { stored, ...best, encodeMs } : { stored, encodeMs };
}

function baseContent(base: DeltaBaseInput): Uint8Array {
  if (base.content) return base.content;
  const key = chunkHex(base.id);
  let content = bases.get(key);
  if (!content) {
    content = checked(base.id, base.stored!, undefined, new Uint8Array(MAX_CHUNK + 1)).slice();
    bases.set(key, content);
  }
  return content;
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
