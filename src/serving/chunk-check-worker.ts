/**
 * Worker of checkChunk (chunk-check.ts): decompresses a stored chunk and checks its size and hash.
 * It decompresses synchronously, through one kept context (zstd-frames.ts): Node's async call
 * builds a new context per call and runs markedly slower (measured: docs/benchmarks.md,
 * 'zstd contexts').
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { transferable, type WorkerReply } from '../runtime/worker-pool.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { decodeWithDictionary, ZstdFrameDecoder } from '../storage/zstd-frames.ts';
import { MAX_DELTA_DEPTH, parseStored, rawFrameSize, rawZstdFrame } from '../delta/stored-form.ts';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';
import { BoundedContents } from './bounded-contents.ts';
import { readFramesSync } from '../storage/pack-read.ts';
import type { PackLocation } from '../storage/pack-index.ts';

export interface CheckRequest {
  id: Uint8Array;
  stored: Uint8Array;
  /** The chunk's size; undefined when unknown (a base: its hash alone is checked). */
  size: number | undefined;
  /** Send the decompressed bytes back (else only the stored ones). */
  wantData: boolean;
  /** For a chunk stored as a delta: its bases' contents, checked, in dictionary order. */
  bases?: Uint8Array[];
  /**
   * With `bases`: their hex ids. A base sent empty is one this worker keeps (else the request fails
   * with the code 'bases-not-kept', and is sent again with it); the others are kept from now on.
   */
  baseIds?: string[];
  /** The frame is as its store wrote it (its CRC checks): with `size`, only the size is checked, not the hash. */
  trusted?: boolean;
}

/**
 * Chunks stored as deltas (a run of neighbouring chunks of a NAR, whose bases mostly are the same),
 * decoded here with their chains in one call: the stored frames of chunks below them, by hex id,
 * those this worker keeps (trusted) aside. A base neither kept nor sent is named in the result's
 * `missing`, and the chunks needing it are left `pending`. Only the chunks themselves are checked
 * (a wrong base cannot give their hash). Every frame lies in `frames`, the one buffer moved here:
 * each buffer moved costs a message more than its bytes copied.
 */
export interface DeltaRunRequest {
  frames: Uint8Array;
  /** The chunks: hex id, size, and where their stored frame lies in `frames`. */
  chunks: { id: string; size: number; at: number; length: number }[];
  /** The frames of bases sent: hex id and where in `frames`. */
  chain: { id: string; at: number; length: number }[];
  /**
   * Every frame has the CRC its store recorded, so the contents need no hash check (their sizes
   * are checked), and the bases decoded may be kept for later requests.
   */
  trusted: boolean;
  /** Give, for each chunk, the frame a `.nar.zst` serves for it (rawZstdFrame) rather than its content. */
  servedFrame: boolean;
}

/** Per chunk of a DeltaRunRequest: where its content (or served frame) lies in `data`, or an error, or pending on `missing`. */
export interface DeltaRunResult {
  data: Uint8Array;
  outcomes: ({ at: number; length: number } | { error: { message: string; code?: string } } | { pending: true })[];
  /** The hex ids of the bases this worker lacks (neither kept nor sent), once each. */
  missing: string[];
}

/** Stored frames to read from the packs of `dir` (readFramesSync): they come back in one buffer, back to back. */
export interface FramesReadRequest {
  dir: string;
  frames: PackLocation[];
}

/** The stored bytes, moved back, and the chunk's bytes when asked for. */
export interface CheckResult {
  stored: Uint8Array;
  data?: Uint8Array;
}

/** What the check workers are asked, and what they answer. */
export type WorkerRequest = CheckRequest | { run: DeltaRunRequest } | { read: FramesReadRequest };
export type WorkerResult = CheckResult | DeltaRunResult | Uint8Array;

const decoder = new ZstdFrameDecoder();
/** Where chunks are decoded when only their check is wanted, not their bytes. */
let scratch = new Uint8Array(0);
/** A full collection every 32 MB (docs/benchmarks.md, 'Serving delta chunks'). */
const scavenge = scavengerByVolume(undefined, 32 * 1024 * 1024);
/** Bytes a chain decode allocated for the message being answered (each base's content, and the chunk's). */
const volume = { bytes: 0 };

/** The largest chunk there is: the bound of a chunk of unknown size. */
const MAX_CHUNK = DEFAULT_CHUNKER_PARAMS.max;

/** Bytes of bases the workers keep, all together: the pool has a worker per core. */
const KEPT_BASE_BYTES = (32 * 1024 * 1024) / availableParallelism();
/**
 * Contents of bases decoded lately from trusted chains, by hex id (a chunk's content never
 * changes, whatever its stored frame becomes). Versions of a package fetched together share
 * bases: the chains of an old version's chunks run through the newer versions' chunks.
 */
const keptBases = new BoundedContents(KEPT_BASE_BYTES);

parentPort!.on('message', (request: WorkerRequest & { seq: number }) => {
  const transfer: ArrayBuffer[] = [];
  let reply: WorkerReply<WorkerResult>;
  let size: number | undefined = MAX_CHUNK;
  try {
    if ('read' in request) {
      const frames = readFramesSync(request.read.dir, request.read.frames);
      size = frames.length;
      transfer.push(frames.buffer as ArrayBuffer);
      reply = { seq: request.seq, result: frames };
    } else if ('run' in request) {
      size = request.run.chunks.reduce((sum, chunk) => sum + chunk.size, 0);
      reply = { seq: request.seq, result: decodeRun(request.run, transfer) };
    } else {
      // The bases came in copies, and a delta's dictionary is another: garbage as much as the chunk.
      const baseBytes = request.bases?.reduce((sum, base) => sum + base.byteLength, 0) ?? 0;
      size = (request.size ?? MAX_CHUNK) + 2 * baseBytes;
      reply = { seq: request.seq, result: check(request, transfer) };
    }
  } catch (err) {
    reply = { seq: request.seq, error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } };
  }
  parentPort!.postMessage(reply, transfer);
  scavenge(Math.max(size ?? MAX_CHUNK, volume.bytes));
  volume.bytes = 0;
});

function check(request: CheckRequest, transfer: ArrayBuffer[]): CheckResult {
  const { id, stored, size, wantData } = request;
  const bases = request.baseIds && request.bases ? withKeptBases(request.bases, request.baseIds) : request.bases;
  let data: Uint8Array;
  try {
    data = bases ? decodeDeltaChunk(stored, bases, size) : decodePlain(stored, size, wantData);
  } catch {
    throw corrupt(`chunk ${chunkHex(id)} does not decompress`);
  }
  if (
    (size !== undefined && data.length !== size) ||
    (!(request.trusted && size !== undefined) && !createHash('sha256').update(data).digest().equals(id))
  )
    throw corrupt(`chunk ${chunkHex(id)} does not match its hash`);
  transfer.push(...transferable(stored));
  if (!wantData) return { stored };
  // The decoder gives each chunk a buffer of its own, which moves along rather than being copied.
  transfer.push(data.buffer as ArrayBuffer);
  return { stored, data };
}

/**
 * The chunks of a run, decoded in turn: a base decoded for one is there for the next (from the
 * kept bases when trusted, else for this call only). Each chunk is decoded into the scratch buffer
 * and copied out, as its content or framed, into one buffer for them all.
 */
function decodeRun(run: DeltaRunRequest, transfer: ArrayBuffer[]): DeltaRunResult {
  const frames = new Map(run.chain.map((frame) => [frame.id, run.frames.subarray(frame.at, frame.at + frame.length)]));
  const missing = new Set<string>();
  const how = { volume, keep: run.trusted, missing, decoded: new Map<string, Uint8Array>() };
  const room = (size: number): number => (run.servedFrame ? rawFrameSize(size) : size);
  // Made at the first chunk decoded, with room for it and those after it: in a first call, every
  // chunk of a run often lacks a base, and then none is made.
  let data: Buffer | undefined;
  let filled = 0;
  const outcomes = run.chunks.map(({ id, size, at, length: storedLength }, k): DeltaRunResult['outcomes'][number] => {
    try {
      let decoded: Uint8Array | undefined;
      try {
        decoded = decodeChain(run.frames.subarray(at, at + storedLength), frames, size, 0, how);
      } catch {
        throw corrupt(`chunk ${id} does not decompress`);
      }
      if (decoded === undefined) return { pending: true };
      if (decoded.length !== size || (!run.trusted && createHash('sha256').update(decoded).digest('hex') !== id))
        throw corrupt(`chunk ${id} does not match its hash`);
      data ??= Buffer.allocUnsafeSlow(run.chunks.slice(k).reduce((sum, chunk) => sum + room(chunk.size), 0));
      const into = data.subarray(filled);
      if (!run.servedFrame) into.set(decoded);
      const length = run.servedFrame ? rawZstdFrame(decoded, into).length : decoded.length;
      volume.bytes += length;
      filled += length;
      return { at: filled - length, length };
    } catch (err) {
      return { error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } };
    }
  });
  if (data) transfer.push(data.buffer as ArrayBuffer);
  return { data: data ?? new Uint8Array(0), outcomes, missing: [...missing] };
}

function corrupt(message: string): Error {
  return Object.assign(new Error(message), { code: 'chunk-corrupt' });
}

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
  return ownBuffer(decodeDeltaFrame(form.frame, bases, size));
}

/** Its own buffer, which can move to the main thread (a copy unless it fills one: a Buffer's slice would be a view). */
function ownBuffer(data: Uint8Array): Uint8Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength
    ? data
    : Uint8Array.prototype.slice.call(data);
}

/**
 * The content of a stored chunk at `depth` in a chain whose frames below it are in `frames`;
 * `volume` counts the bytes decoded. A base is taken from the kept bases, and put into them from
 * a trusted chain (`keep`). Undefined when a base is neither kept nor in `frames`: every such base
 * is added to `missing` (by hex id), so that one more call brings all of them.
 */
function decodeChain(
  stored: Uint8Array,
  frames: Map<string, Uint8Array>,
  size: number | undefined,
  depth: number,
  how: {
    volume: { bytes: number };
    keep: boolean;
    missing: Set<string>;
    /** Bases decoded during this call, trusted or not (an untrusted chain's chunks are hashed). */
    decoded: Map<string, Uint8Array>;
  },
): Uint8Array | undefined {
  const form = parseStored(stored);
  if (form.kind === 'plain') {
    // A base, of unknown size: decoded into the scratch buffer, kept in a copy of its length.
    if (scratch.length <= MAX_CHUNK) scratch = new Uint8Array(MAX_CHUNK + 1);
    const content = Uint8Array.prototype.slice.call(decoder.decode(stored, MAX_CHUNK, scratch));
    how.volume.bytes += content.length;
    return content;
  }
  if (depth >= MAX_DELTA_DEPTH) throw new Error('chain of deltas too long');
  const bases: Uint8Array[] = [];
  for (const id of form.bases) {
    const key = chunkHex(id);
    // Kept bases came from trusted chains: right for any chain (an untrusted one's chunk is hashed).
    const kept = how.decoded.get(key) ?? keptBases.get(key);
    if (kept) {
      bases.push(kept);
      continue;
    }
    const frame = frames.get(key);
    if (frame === undefined) {
      how.missing.add(key);
      continue;
    }
    const content = decodeChain(frame, frames, undefined, depth + 1, how);
    if (content === undefined) continue;
    how.decoded.set(key, content);
    if (how.keep) keptBases.set(key, content);
    bases.push(content);
  }
  if (bases.length < form.bases.length) return undefined;
  const content = decodeDeltaFrame(form.frame, bases, size);
  how.volume.bytes += content.length;
  return content;
}

/** The bases' contents, those sent empty taken from the kept ones, the others kept. */
function withKeptBases(bases: Uint8Array[], ids: string[]): Uint8Array[] {
  return bases.map((content, i) => {
    if (content.length > 0) {
      keptBases.set(ids[i], content);
      return content;
    }
    const kept = keptBases.get(ids[i]);
    if (!kept) throw Object.assign(new Error(`base ${ids[i]} is not kept here`), { code: 'bases-not-kept' });
    return kept;
  });
}

/**
 * Where several bases are concatenated as a dictionary, written over for each delta: zstd copies
 * the dictionary into its context, and a buffer of a few hundred KB made per delta (Buffer.concat)
 * cost about a sixth of the workers' time serving swc's old releases, whose deltas have five bases
 * (docs/benchmarks.md, "Serving swc").
 */
let dictionaryScratch = new Uint8Array(0);

function concatenated(bases: Uint8Array[]): Uint8Array {
  const length = bases.reduce((sum, base) => sum + base.length, 0);
  if (dictionaryScratch.length < length) dictionaryScratch = new Uint8Array(length);
  let at = 0;
  for (const base of bases) {
    dictionaryScratch.set(base, at);
    at += base.length;
  }
  return dictionaryScratch.subarray(0, length);
}

/** The dictionary made last, and of what: deltas sent together often share their bases. */
let lastDictionary: { bases: Uint8Array[]; dictionary: Uint8Array } | undefined;

/**
 * A delta's frame decoded with its bases' contents, concatenated, as dictionary: a base (of
 * unknown size) in a buffer of its own, the chunk read as a view of the scratch buffer.
 */
function decodeDeltaFrame(frame: Uint8Array, bases: Uint8Array[], size: number | undefined): Uint8Array {
  const same =
    lastDictionary?.bases.length === bases.length && lastDictionary.bases.every((base, i) => base === bases[i]);
  const dictionary = same ? lastDictionary!.dictionary : bases.length === 1 ? bases[0] : concatenated(bases);
  lastDictionary = { bases, dictionary };
  if (scratch.length <= MAX_CHUNK) scratch = new Uint8Array(MAX_CHUNK + 1);
  const content = decodeWithDictionary(frame, dictionary, size ?? MAX_CHUNK, scratch);
  return size === undefined ? Uint8Array.prototype.slice.call(content) : content;
}
