import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { constants, zstdCompress } from 'node:zlib';
import { chunkStream } from '../chunking/chunk-stream.ts';
import { NarwhalError } from '../errors.ts';
import { encodeChunkListEntry, encodeChunkListHeader } from '../push/chunk-list-body.ts';

const compress = promisify(zstdCompress);

/** Chunks asked about per missing-chunks request, and held in memory while they are. */
const BATCH_CHUNKS = 64;
/** zstd level of the chunks sent: fast, the server recompresses in the background anyway. */
const SEND_LEVEL = 3;
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

  async function* body(): AsyncGenerator<Uint8Array> {
    const header = encodeChunkListHeader();
    count(header.length);
    yield header;
    let batch: Uint8Array[] = [];
    const send = async function* (): AsyncGenerator<Uint8Array> {
      const ids = batch.map((data) => new Uint8Array(createHash('sha256').update(data).digest()));
      const lacking = await missingChunks(cache, ids, count);
      // Compressed together, on libuv's threads.
      const frames = await Promise.all(
        batch.map(async (data, i) =>
          lacking.has(Buffer.from(ids[i]).toString('hex'))
            ? new Uint8Array(await compress(data, { params: { [constants.ZSTD_c_compressionLevel]: SEND_LEVEL } }))
            : undefined,
        ),
      );
      for (const [i, frame] of frames.entries()) {
        const entry = encodeChunkListEntry(ids[i], frame);
        figures.chunks++;
        if (frame) figures.chunksSent++;
        count(entry.length);
        yield entry;
      }
      batch = [];
    };
    for await (const chunk of chunkStream(dump.stdout)) {
      batch.push(chunk);
      if (batch.length === BATCH_CHUNKS) yield* send();
    }
    if (batch.length > 0) yield* send();
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
