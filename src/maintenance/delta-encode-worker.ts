/**
 * Worker of the delta pass (delta-encode.ts): decodes a plain stored chunk and its bases (those
 * whose content does not come along) through a kept context, checks each against its id, and
 * compresses the chunk with each option's bases' contents as dictionary, keeping the smallest,
 * so that the pass's CPU work runs beside the main thread, on as many threads as it is given.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { deltaDictionary, deltaStoredForm, deltaStoredSize } from '../delta/stored-form.ts';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';
import { transferable, type WorkerReply } from '../runtime/worker-pool.ts';
import { BoundedContents } from '../serving/bounded-contents.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { encodeWithDictionary, encoderPerLevel, ZstdFrameDecoder, zstdCompressBound } from '../storage/zstd-frames.ts';

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

/** Bytes of decoded bases kept per worker (a window of neighbours' bases by place; 16 MB measured no faster). */
const BASE_CACHE_BYTES = 8 * 1024 * 1024;
/** A base's size is not sent: it is at most the largest chunk. */
const MAX_CHUNK = DEFAULT_CHUNKER_PARAMS.max;

const decoder = new ZstdFrameDecoder();
/** Where the chunk and its bases are decoded: only the delta leaves the worker, and a base's copy is kept. */
let chunkScratch = new Uint8Array(0);
const baseScratch = new Uint8Array(MAX_CHUNK + 1);
/** Where each option's frame is compressed; only the smallest is copied out. */
let frameScratch = new Uint8Array(0);
/**
 * Bases decoded and checked lately, by id: neighbouring chunks share most of their bases by place
 * (four of five), so each is decoded once rather than once per chunk.
 */
const bases = new BoundedContents(BASE_CACHE_BYTES);
const encoder = encoderPerLevel();
/**
 * Collections by the bytes a request allocated (bases decoded and dropped from the cache,
 * dictionaries, the buffers moved in and out), not by the chunk's size alone: counted so, the
 * worker collected too rarely and held tens of MB of dead buffers each (docs/benchmarks.md,
 * "Delta memory and serving speed"). Bases dropped from the cache have outlived scavenges, so a
 * full collection comes every FULL_GC_BYTES.
 */
const FULL_GC_BYTES = 32 * 1024 * 1024;
const scavenge = scavengerByVolume(undefined, FULL_GC_BYTES);
let allocated = 0;

parentPort!.on('message', (request: DeltaRequest & { seq: number }) => {
  let reply: WorkerReply<DeltaResult>;
  const transfer: ArrayBuffer[] = [];
  allocated = request.stored.byteLength;
  for (const inputs of request.options) for (const base of inputs) allocated += base.stored?.byteLength ?? 0;
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
  scavenge(allocated);
});

function deltaOf({ id, stored, size, options, level, maxBytes, plainMargin }: DeltaRequest): DeltaResult {
  if (chunkScratch.length <= size) chunkScratch = new Uint8Array(size + 1);
  const room = zstdCompressBound(size) + 1;
  if (frameScratch.length < room) frameScratch = new Uint8Array(room);
  const data = checked(id, stored, size, chunkScratch);
  const started = performance.now();
  let best: { frame: Uint8Array; option: number; bytes: number } | undefined;
  for (const [option, inputs] of options.entries()) {
    const dictionary = deltaDictionary(inputs.map(baseContent));
    if (inputs.length > 1) allocated += dictionary.byteLength;
    const frame = encodeWithDictionary(data, dictionary, level, frameScratch);
    const bytes = deltaStoredSize(inputs.length, frame.byteLength);
    // The best so far is copied out of the scratch buffer before the next option overwrites it.
    if (!best || bytes < best.bytes) best = { frame: frame.slice(), option, bytes };
    allocated += frame.byteLength;
  }
  let limit = maxBytes;
  if (best && best.bytes <= limit && plainMargin !== undefined) {
    limit = Math.min(limit, Math.floor(plainMargin * encoder(level).encode(data).byteLength));
  }
  const encodeMs = performance.now() - started;
  if (!best || best.bytes > limit) return { stored, encodeMs };
  const delta = deltaStoredForm(
    options[best.option].map((base) => base.id),
    best.frame,
  );
  return { stored, delta, option: best.option, encodeMs };
}

function baseContent(base: DeltaBaseInput): Uint8Array {
  if (base.content) return base.content;
  const key = chunkHex(base.id);
  let content = bases.get(key);
  if (!content) {
    content = checked(base.id, base.stored!, undefined, baseScratch).slice();
    allocated += content.byteLength;
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
