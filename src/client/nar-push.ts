import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { constants, zstdCompressSync } from 'node:zlib';
import type { EncodeAllRequest, EncodeAllResult, EncodeRequest, EncodeResult } from '../storage/zstd-encode-worker.ts';
import { transferable, WorkerPool } from '../runtime/worker-pool.ts';
import { chunkStream } from '../chunking/chunk-stream.ts';
import { NarwhalError } from '../errors.ts';
import {
  CHUNK_LIST_VERSION,
  CHUNK_LIST_VERSION_HEADER,
  chunkListEntryHead,
  encodeChunkListHeader,
  MAX_SENT_BASES,
} from '../push/chunk-list-body.ts';
import { asServerFailure, fetchAgainIfLost, isConnectionLost } from './connection-retry.ts';
import { type OldChunk, PlaceWindow, previousVersion, type StoreVersions } from './push-bases.ts';

/** Compresses the chunks sent, beside the main thread (a zstd context per call was most of the client's time). */
let encoders: WorkerPool<EncodeRequest | EncodeAllRequest, EncodeResult | EncodeAllResult> | undefined;
const encoderPool = () =>
  (encoders ??= new WorkerPool<EncodeRequest | EncodeAllRequest, EncodeResult | EncodeAllResult>(
    new URL('../storage/zstd-encode-worker.ts', import.meta.url),
  ));
/** Starts the workers that compress chunks, so that their start-up overlaps the push's first questions. */
export const startEncoders = (): void => encoderPool().start();
/**
 * `data` moves to the worker: it may not be used after. A small chunk (a small NAR's, or a NAR's
 * last) is compressed here: the worker's round trip, or its start-up, cost more.
 */
const compress = async (data: Uint8Array): Promise<Uint8Array> =>
  data.length <= INLINE_BYTES
    ? zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: PLAIN_LEVEL } })
    : ((await encoderPool().run({ data, level: PLAIN_LEVEL }, transferable(data))) as EncodeResult);
/** A frame for each of `all` with `dictionary`, built once; both move to the worker. */
const compressAll = async (all: Uint8Array[], dictionary: Uint8Array): Promise<Uint8Array[]> =>
  (await encoderPool().run({ all, level: DELTA_LEVEL, dictionary }, [
    ...all.flatMap(transferable),
    ...transferable(dictionary),
  ])) as EncodeAllResult;

/** Chunks sent plain up to this size are compressed on the main thread. */
const INLINE_BYTES = 16 * 1024;
/**
 * NARs smaller than this are sent without looking for a previous version: a delta saves them
 * little, and the look-up (the store listing, lookups on the server, a second dump) cost a small
 * path most of its push time.
 */
const MIN_DELTA_NAR_BYTES = 256 * 1024;
/** Chunks asked about per missing-chunks request, and held in memory while they are. */
const BATCH_CHUNKS = 64;
/**
 * zstd level of a chunk sent plain: the fastest, as the server stores a sent frame as it comes and
 * recompresses it in the background anyway (level 3 was most of the client's CPU on a fast link).
 */
const PLAIN_LEVEL = 1;
/** zstd level of a chunk sent as a delta: these are sent to save bytes on the wire. */
const DELTA_LEVEL = 3;
/** Batches prepared ahead of the one being sent. */
const BATCHES_AHEAD = 2;
/** Times a NAR is sent again after the server found a chunk gone that it had said it had, or the connection was lost. */
const RETRIES = 2;

export interface CacheEndpoint {
  /** `<server>/_api/v1/caches/<name>` */
  api: string;
  headers: Record<string, string>;
  /** The newest chunk-list version the server reads, once a missing-chunks answer told it (else 1). */
  chunkListVersion?: number;
  /** Bases (hex) the server refused a delta for: chunks are sent without them from then on. */
  refusedBases?: Set<string>;
  /** Whether the cache has a store path (a narinfo lookup), to find a previous version to send deltas of. */
  hasPath?: (path: string) => Promise<boolean>;
  /** The local store's listing by package, read once for the whole push. */
  storeVersions?: StoreVersions;
}

export interface NarPushFigures {
  chunks: number;
  chunksSent: number;
  /** Of the chunks sent, those sent as deltas of chunks the server has. */
  deltasSent: number;
  /** Request bytes: chunk lists, frames and the chunk ids asked about. */
  bytesSent: number;
}

/**
 * Uploads the NAR of a valid store path as a chunk list (src/push/chunk-list-body.ts): `nix-store
 * --dump` is cut into chunks as the server cuts them, the server is asked a batch at a time which
 * it lacks, and only those are sent, each one zstd frame. One pass, memory of one batch.
 */
export async function pushNar(
  cache: CacheEndpoint,
  path: string,
  narHash: string,
  narSize: number,
  progress: (bytes: number) => void = () => undefined,
): Promise<NarPushFigures> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await pushNarOnce(cache, path, narHash, narSize, progress);
    } catch (err) {
      if (err instanceof BasesRefused) {
        cache.refusedBases ??= new Set();
        for (const hex of err.bases) cache.refusedBases.add(hex);
      }
      // A connection lost under the upload is sent again whole: the server commits nothing of a cut body.
      const again = (err instanceof NarwhalError && err.code === 'conflict') || isConnectionLost(err);
      if (attempt >= RETRIES || !again) throw asServerFailure(err, `uploading the NAR of ${path} (try ${attempt + 1})`);
    }
  }
}

/** The server refused deltas naming these bases (hex): it no longer has them, or never showed them. */
class BasesRefused extends NarwhalError {
  readonly bases: string[];
  constructor(bases: string[], message: string) {
    super('conflict', message);
    this.bases = bases;
  }
}

/** A chunk of the NAR pushed, with where it starts and the previous version's chunks at its place. */
interface NewChunk {
  data: Uint8Array;
  start: number;
  place: OldChunk[];
}

async function pushNarOnce(
  cache: CacheEndpoint,
  path: string,
  narHash: string,
  narSize: number,
  progress: (bytes: number) => void,
): Promise<NarPushFigures> {
  const figures: NarPushFigures = { chunks: 0, chunksSent: 0, deltasSent: 0, bytesSent: 0 };
  const count = (bytes: number): void => {
    figures.bytesSent += bytes;
    progress(bytes);
  };
  // Started first, while the previous version is looked for: its output waits in the pipe.
  const dump = spawn('nix-store', ['--dump', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const dumpErrors: Buffer[] = [];
  dump.stderr.on('data', (d: Buffer) => dumpErrors.push(d));
  const exited = new Promise<number | null>((resolve) => dump.once('close', resolve));
  // Read from now on: Node drops what a child wrote to a pipe nobody reads when it exits.
  const nar = dump.stdout.pipe(new PassThrough());
  // The previous version is looked for unless the server said it reads no deltas. Whether it
  // does comes with the first batch's answer, before the list's header is written: a server that
  // does not gets plain frames, though the first NARs sent to it had a previous version dumped.
  let previous: Awaited<ReturnType<typeof previousVersion>>;
  try {
    previous =
      cache.hasPath && narSize >= MIN_DELTA_NAR_BYTES && (cache.chunkListVersion ?? CHUNK_LIST_VERSION) >= 2
        ? await previousVersion(path, cache.hasPath, cache.storeVersions)
        : undefined;
  } catch (err) {
    dump.kill();
    throw err;
  }
  const window = previous && new PlaceWindow(previous, narSize);

  /** The chunks in order, each with its place in the previous version (asked in order: the window only moves on). */
  async function* placed(): AsyncGenerator<NewChunk> {
    let start = 0;
    for await (const data of chunkStream(nar)) {
      yield { data, start, place: window ? await window.around(start, data) : [] };
      start += data.length;
    }
  }

  /** A batch's entries (heads and frames in order): its ids hashed, the server asked which to send and which bases it has, those compressed. */
  const prepare = async (batch: NewChunk[]): Promise<Uint8Array[]> => {
    const ids = batch.map(({ data }) => new Uint8Array(createHash('sha256').update(data).digest()));
    const refused = cache.refusedBases ?? new Set<string>();
    const asked = new Map<string, Uint8Array>(ids.map((id) => [hexOf(id), id]));
    for (const chunk of batch)
      for (const old of chunk.place) if (!refused.has(hexOf(old.id))) asked.set(hexOf(old.id), old.id);
    const lacking = await missingChunks(cache, [...asked.values()], count);
    const deltas = (cache.chunkListVersion ?? 1) >= 2;
    const sending = batch.flatMap(({ data, place }, i) =>
      lacking.has(hexOf(ids[i]))
        ? [
            {
              at: i,
              data,
              bases: deltas ? place.filter((old) => asked.has(hexOf(old.id)) && !lacking.has(hexOf(old.id))) : [],
            },
          ]
        : [],
    );
    const sent: ({ frame: Uint8Array; bases?: Uint8Array[] } | undefined)[] = new Array(batch.length);
    await Promise.all(
      sharingBases(sending).map(async ({ members, bases }) => {
        if (bases.length === 0) {
          for (const { at, data } of members) sent[at] = { frame: await compress(data) };
          return;
        }
        // A buffer of its own, which moves to the worker, as the chunks do.
        const frames = await compressAll(
          members.map(({ data }) => data),
          Buffer.concat(bases.map((base) => base.data)),
        );
        for (const [i, { at }] of members.entries()) sent[at] = { frame: frames[i], bases: bases.map((b) => b.id) };
      }),
    );
    // Each entry's head, then its frame as the worker gave it: the frame is not copied again.
    return batch.flatMap((_, i) => {
      const entry = sent[i];
      figures.chunks++;
      if (entry) figures.chunksSent++;
      if (entry?.bases) figures.deltasSent++;
      const head = chunkListEntryHead(ids[i], entry?.frame.length, entry?.bases);
      return entry ? [head, entry.frame] : [head];
    });
  };

  async function* body(): AsyncGenerator<Uint8Array> {
    // The next batches are prepared while one is sent: the question, and compression, overlap the upload.
    let headed = false;
    for await (const entries of mapAhead(batches(placed(), BATCH_CHUNKS), BATCHES_AHEAD, prepare)) {
      if (!headed) {
        // After the first answer: the server has said by now which version it reads.
        const header = encodeChunkListHeader((cache.chunkListVersion ?? 1) >= 2 ? 2 : 1);
        count(header.length);
        yield header;
        headed = true;
      }
      for (const entry of entries) {
        count(entry.length);
        yield entry;
      }
    }
    const code = await exited;
    if (code !== 0 || !headed) {
      throw new NarwhalError(
        'bad-request',
        `nix-store --dump ${path} failed: ${Buffer.concat(dumpErrors).toString().trim()}`,
      );
    }
  }

  try {
    const res = await fetch(`${cache.api}/nars?narHash=${encodeURIComponent(narHash)}&narSize=${narSize}`, {
      method: 'POST',
      headers: { ...cache.headers, 'Content-Type': 'application/octet-stream' },
      body: ReadableStream.from(body()),
      duplex: 'half',
    } as RequestInit);
    const text = await res.text();
    if (res.status === 409) {
      const refused = missingBasesOf(text);
      if (refused) throw new BasesRefused(refused, `the server refused delta bases: ${text.trim()}`);
      throw new NarwhalError('conflict', `the server lacks chunks it had: ${text.trim()}`);
    }
    if (!res.ok) throw new NarwhalError('bad-request', `uploading the NAR of ${path}: ${res.status} ${text.trim()}`);
    return figures;
  } finally {
    dump.kill();
    window?.close();
  }
}

/** The bases a 409 answer names as refused (docs/http-api.md), if it is that answer. */
function missingBasesOf(text: string): string[] | undefined {
  try {
    const bases = (JSON.parse(text) as { missingBases?: unknown }).missingBases;
    return Array.isArray(bases) ? bases.map(String) : undefined;
  } catch {
    return undefined;
  }
}

const hexOf = (id: Uint8Array): string => Buffer.from(id).toString('hex');

/** The ids (hex) of the chunks the server asks to be sent; notes the chunk-list version it reads. */
async function missingChunks(
  cache: CacheEndpoint,
  ids: Uint8Array[],
  count: (bytes: number) => void,
): Promise<Set<string>> {
  const asked = Buffer.concat(ids);
  count(asked.length);
  const res = await fetchAgainIfLost(
    `${cache.api}/missing-chunks`,
    {
      method: 'POST',
      headers: { ...cache.headers, 'Content-Type': 'application/octet-stream' },
      body: asked,
    },
    'asking which chunks to send',
  );
  if (!res.ok) {
    throw new NarwhalError('bad-request', `asking which chunks to send: ${res.status} ${(await res.text()).trim()}`);
  }
  const version = Number(res.headers.get(CHUNK_LIST_VERSION_HEADER) ?? '1');
  cache.chunkListVersion = Number.isInteger(version) && version >= 1 ? Math.min(version, CHUNK_LIST_VERSION) : 1;
  const answer = Buffer.from(await res.arrayBuffer());
  const lacking = new Set<string>();
  for (let at = 0; at + 32 <= answer.length; at += 32) lacking.add(answer.subarray(at, at + 32).toString('hex'));
  return lacking;
}

async function* batches<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** `work` on each item in order, up to `ahead` items being worked on beyond the one taken. */
async function* mapAhead<T, R>(
  items: AsyncIterable<T>,
  ahead: number,
  work: (item: T) => Promise<R>,
): AsyncGenerator<R> {
  const running: Promise<R>[] = [];
  const source = items[Symbol.asyncIterator]();
  let done = false;
  const fill = async (): Promise<void> => {
    while (!done && running.length <= ahead) {
      const next = await source.next();
      if (next.done) done = true;
      else {
        const result = work(next.value);
        result.catch(() => undefined); // awaited in turn below
        running.push(result);
      }
    }
  };
  await fill();
  while (running.length > 0) {
    const result = await running.shift()!;
    await fill();
    yield result;
  }
}

/** A chunk to send, at index `at` of its batch, with the bases it may be sent as a delta of. */
interface Sending {
  at: number;
  data: Uint8Array;
  bases: OldChunk[];
}

/**
 * The chunks to send in groups sharing one dictionary, each group's the union of its members'
 * bases in old-NAR order (MAX_SENT_BASES at most): neighbouring chunks have most of their bases in
 * common, and building a dictionary's tables cost more than compressing a chunk with them. Chunks
 * without bases each go alone and plain.
 */
export function sharingBases(sending: readonly Sending[]): { members: Sending[]; bases: OldChunk[] }[] {
  const groups: { members: Sending[]; bases: OldChunk[] }[] = [];
  let current: { members: Sending[]; bases: OldChunk[] } | undefined;
  for (const chunk of sending) {
    if (chunk.bases.length === 0) {
      groups.push({ members: [chunk], bases: [] });
      continue;
    }
    const union = current && unionOf(current.bases, chunk.bases);
    if (current && union && union.length <= MAX_SENT_BASES) {
      current.members.push(chunk);
      current.bases = union;
    } else {
      current = { members: [chunk], bases: unionOf([], chunk.bases) };
      groups.push(current);
    }
  }
  for (const group of groups) group.bases.sort((a, b) => a.start - b.start);
  return groups;
}

/** `a` and the chunks of `b` not in it (by id). */
function unionOf(a: readonly OldChunk[], b: readonly OldChunk[]): OldChunk[] {
  const union = [...a];
  for (const chunk of b) if (!union.some((held) => sameId(held.id, chunk.id))) union.push(chunk);
  return union;
}

const sameId = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
