import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { zstdDecompressSync } from 'node:zlib';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { decodeDelta, parseStored } from '../delta/stored-form.ts';
import { NarwhalError } from '../errors.ts';
import { ExactReader } from '../runtime/exact-reader.ts';
import { encodeWantedChunks, readChunkFrame, type WantedChunk } from '../serving/chunk-frames-body.ts';
import { type CaibxChunk, decodeCaibx } from '../storage/caibx.ts';
import type { ChunkCache } from './chunk-cache.ts';
import type { LocalChunkList } from './local-versions.ts';

/** Chunks fetched per request (and held in memory while a batch is streamed); the first batch is small, so that Nix gets bytes soon. */
const FIRST_BATCH = 8;
const BATCH = 64;
/** Positional hints per chunk: the chunk at the same place in a local version and its neighbours. */
const NEIGHBOURS = [0, 1, -1, 2, -2];
const MAX_CHUNK = DEFAULT_CHUNKER_PARAMS.max;

export interface Upstream {
  /** The cache's URL on the server, `<server>/<cache>`. */
  cacheUrl: string;
  headers: Record<string, string>;
}

/** What assembling NARs took, for `GET /_narwhal/stats` and the bench. */
export interface AssemblyFigures {
  nars: number;
  chunksLocal: number;
  chunksFetched: number;
  deltasFetched: number;
  /** Response bytes from the server: chunk lists and chunk answers. */
  bytesFromServer: number;
  /** Answers that did not decode to the chunk they were for. */
  refused: number;
}

export function emptyFigures(): AssemblyFigures {
  return { nars: 0, chunksLocal: 0, chunksFetched: 0, deltasFetched: 0, bytesFromServer: 0, refused: 0 };
}

/**
 * The NAR with this hash (nix32), assembled from the chunk cache, the chunks of local versions of
 * the same package (put in the cache by LocalVersions), and the rest fetched from the server with
 * `chunk-frames`, giving it the local chunks at the same place as hints for deltas. Every chunk is
 * checked against its id before it is used; the NAR streams out in order, a batch at a time.
 */
export async function* assembleNar(
  upstream: Upstream,
  cache: ChunkCache,
  narHash: string,
  versions: LocalChunkList[],
  figures: AssemblyFigures,
): AsyncGenerator<Uint8Array> {
  const chunks = await chunkList(upstream, narHash, figures);
  const narSize = chunks.at(-1)?.end ?? 0;
  figures.nars++;
  for (let at = 0; at < chunks.length; ) {
    const batch = chunks.slice(at, at + (at === 0 ? FIRST_BATCH : BATCH));
    const fetched = new Map<string, Uint8Array>();
    const wanted: WantedChunk[] = [];
    const asked = new Set<string>();
    for (const [i, chunk] of batch.entries()) {
      const hex = Buffer.from(chunk.id).toString('hex');
      if (cache.has(hex) || asked.has(hex)) continue;
      asked.add(hex);
      const start = at + i === 0 ? 0 : chunks[at + i - 1].end;
      wanted.push({ id: chunk.id, hints: hintsFor(start, narSize, versions, cache) });
    }
    if (wanted.length > 0) await fetchChunks(upstream, cache, wanted, fetched, figures);
    for (const chunk of batch) {
      const hex = Buffer.from(chunk.id).toString('hex');
      let data = fetched.get(hex);
      if (data === undefined) {
        data = await cache.get(hex);
        if (data === undefined || !matches(data, chunk.id)) {
          throw new NarwhalError('chunk-missing', `chunk ${hex} left the cache before it was used`);
        }
        figures.chunksLocal++;
      }
      yield data;
    }
    at += batch.length;
  }
}

async function chunkList(upstream: Upstream, narHash: string, figures: AssemblyFigures): Promise<CaibxChunk[]> {
  const res = await fetch(`${upstream.cacheUrl}/nar/${narHash}.caibx`, { headers: upstream.headers });
  if (!res.ok) throw new NarwhalError('unavailable', `the server has no chunk list of ${narHash}: ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  figures.bytesFromServer += bytes.length;
  return decodeCaibx(bytes).chunks;
}

/** The chunks of local versions at the same relative place, and their neighbours, that the cache holds. */
function hintsFor(start: number, narSize: number, versions: LocalChunkList[], cache: ChunkCache): Uint8Array[] {
  const hints: Uint8Array[] = [];
  for (const version of versions.slice(0, 1)) {
    const size = version.chunks.at(-1)!.end;
    const place = Math.floor((start / Math.max(1, narSize)) * size);
    let lo = 0;
    let hi = version.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (version.chunks[mid].end <= place) lo = mid + 1;
      else hi = mid;
    }
    for (const offset of NEIGHBOURS) {
      const near = version.chunks[lo + offset];
      if (near && cache.has(near.hex)) hints.push(Buffer.from(near.hex, 'hex'));
    }
  }
  return hints;
}

async function fetchChunks(
  upstream: Upstream,
  cache: ChunkCache,
  wanted: WantedChunk[],
  fetched: Map<string, Uint8Array>,
  figures: AssemblyFigures,
): Promise<void> {
  const res = await fetch(`${upstream.cacheUrl}/chunk-frames`, {
    method: 'POST',
    headers: { ...upstream.headers, 'Content-Type': 'application/octet-stream' },
    body: encodeWantedChunks(wanted),
  });
  if (!res.ok || !res.body) throw new NarwhalError('unavailable', `the server answered ${res.status} for chunks`);
  const counted = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  counted.on('data', (d: Uint8Array) => {
    figures.bytesFromServer += d.length;
  });
  const reader = new ExactReader(counted);
  for (const w of wanted) {
    const answer = await readChunkFrame(reader, MAX_CHUNK * 2);
    const hex = Buffer.from(w.id).toString('hex');
    if (!answer || Buffer.from(answer.id).toString('hex') !== hex || answer.kind === 'absent') {
      throw new NarwhalError('unavailable', `the server did not give chunk ${hex}`);
    }
    const data = await decodeAnswer(cache, answer.kind, answer.payload);
    if (data === undefined || !matches(data, w.id)) {
      figures.refused++;
      throw new NarwhalError('chunk-corrupt', `the server's answer for chunk ${hex} is not that chunk`);
    }
    figures.chunksFetched++;
    if (answer.kind === 'delta') figures.deltasFetched++;
    await cache.put(hex, data);
    fetched.set(hex, data);
  }
}

async function decodeAnswer(cache: ChunkCache, kind: string, payload: Uint8Array): Promise<Uint8Array | undefined> {
  try {
    if (kind === 'frame') return zstdDecompressSync(payload, { maxOutputLength: MAX_CHUNK });
    const form = parseStored(payload);
    if (form.kind !== 'delta') return undefined;
    const bases = [];
    for (const base of form.bases) {
      const content = await cache.get(Buffer.from(base).toString('hex'));
      if (content === undefined) return undefined;
      bases.push(content);
    }
    return decodeDelta(form.frame, bases, MAX_CHUNK + 1);
  } catch {
    return undefined;
  }
}

function matches(data: Uint8Array, id: Uint8Array): boolean {
  return createHash('sha256').update(data).digest().equals(id);
}
