import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { EncodeRequest, EncodeResult } from '../storage/zstd-encode-worker.ts';
import { WorkerPool } from '../runtime/worker-pool.ts';
import { chunkStream } from '../chunking/chunk-stream.ts';
import { NarwhalError } from '../errors.ts';
import { encodeChunkListEntry, encodeChunkListHeader } from '../push/chunk-list-body.ts';

/** Compresses the chunks sent, beside the main thread (a zstd context per call was most of the client's time). */
let encoders: WorkerPool<EncodeRequest, EncodeResult> | undefined;
const compress = (data: Uint8Array): Promise<Uint8Array> => {
  encoders ??= new WorkerPool<EncodeRequest, EncodeResult>(
    new URL('../storage/zstd-encode-worker.ts', import.meta.url),
  );
  return encoders.run({ data, level: SEND_LEVEL });
};

/** Chunks asked about per missing-chunks request, and held in memory while they are. */
const BATCH_CHUNKS = 64;
/** zstd level of the chunks sent: fast, the server recompresses in the background anyway. */
const SEND_LEVEL = 3;
/** Batches prepared ahead of the one being sent. */
const BATCHES_AHEAD = 2;
/** Times a NAR is sent again after the server found a chunk gone that it had said it had. */
const RETRIES = 2;

export interface CacheEndpoint {
  /** `<server>/_api/v1/caches/<name>` */
  api: string;
  headers: Record<string, string>;
}

export interface NarPushFigures {
  chunks: number;
  chunksSent: number;
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
      if (attempt >= RETRIES || !(err instanceof NarwhalError && err.code === 'conflict')) throw err;
    }
  }
}

async function pushNarOnce(
  cache: CacheEndpoint,
  path: string,
  narHash: string,
  narSize: number,
  progress: (bytes: number) => void,
): Promise<NarPushFigures> {
  const figures: NarPushFigures = { chunks: 0, chunksSent: 0, bytesSent: 0 };
  const count = (bytes: number): void => {
    figures.bytesSent += bytes;
    progress(bytes);
  };
  const dump = spawn('nix-store', ['--dump', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const dumpErrors: Buffer[] = [];
  dump.stderr.on('data', (d: Buffer) => dumpErrors.push(d));
  const exited = new Promise<number | null>((resolve) => dump.once('close', resolve));

  /** A batch's entries: its ids hashed, the server asked which to send, those compressed. */
  const prepare = async (batch: Uint8Array[]): Promise<Uint8Array[]> => {
    const ids = batch.map((data) => new Uint8Array(createHash('sha256').update(data).digest()));
    const lacking = await missingChunks(cache, ids, count);
    const frames = await Promise.all(
      batch.map(async (data, i) =>
        lacking.has(Buffer.from(ids[i]).toString('hex')) ? await compress(data) : undefined,
      ),
    );
    return frames.map((frame, i) => {
      figures.chunks++;
      if (frame) figures.chunksSent++;
      return encodeChunkListEntry(ids[i], frame);
    });
  };

  async function* body(): AsyncGenerator<Uint8Array> {
    const header = encodeChunkListHeader();
    count(header.length);
    yield header;
    // The next batches are prepared while one is sent: the question, and compression, overlap the upload.
    for await (const entries of mapAhead(batches(chunkStream(dump.stdout), BATCH_CHUNKS), BATCHES_AHEAD, prepare)) {
      for (const entry of entries) {
        count(entry.length);
        yield entry;
      }
    }
    const code = await exited;
    if (code !== 0) {
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
    if (res.status === 409) throw new NarwhalError('conflict', `the server lacks chunks it had: ${text.trim()}`);
    if (!res.ok) throw new NarwhalError('bad-request', `uploading the NAR of ${path}: ${res.status} ${text.trim()}`);
    return figures;
  } finally {
    dump.kill();
  }
}

/** The ids (hex) of the chunks the server asks to be sent. */
async function missingChunks(
  cache: CacheEndpoint,
  ids: Uint8Array[],
  count: (bytes: number) => void,
): Promise<Set<string>> {
  const asked = Buffer.concat(ids);
  count(asked.length);
  const res = await fetch(`${cache.api}/missing-chunks`, {
    method: 'POST',
    headers: { ...cache.headers, 'Content-Type': 'application/octet-stream' },
    body: asked,
  });
  if (!res.ok) {
    throw new NarwhalError('bad-request', `asking which chunks to send: ${res.status} ${(await res.text()).trim()}`);
  }
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
