import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { parseStored } from '../delta/stored-form.ts';
import { NarwhalError } from '../errors.ts';
import { ExactReader } from '../runtime/exact-reader.ts';
import { encodeWantedChunks, readChunkFrame, type WantedChunk } from '../serving/chunk-frames-body.ts';
import { hintsAround, PlaceMap } from '../serving/place-hints.ts';
import type { CaibxChunk } from '../storage/caibx.ts';
import { decodeWithDictionary, ZstdFrameDecoder } from '../storage/zstd-frames.ts';
import type { ChunkCache } from './chunk-cache.ts';
import { fetchChunkList, type Upstream } from './chunk-list.ts';
import type { LocalChunkList } from './local-versions.ts';

/** The first batch is small, so that Nix gets bytes soon (and a failure there still falls back). */
const FIRST_BATCH = 8;
/** A batch: at most this many chunks and bytes of NAR, fetched in one request. */
const BATCH = 64;
const BATCH_BYTES = 4 << 20;
/** Batches being assembled at once (each its request to the server), at most. */
const AHEAD = 4;
/** Batches assembled or being assembled, not yet streamed out: bounds memory to about QUEUED x BATCH_BYTES. */
const QUEUED = 8;
const MAX_CHUNK = DEFAULT_CHUNKER_PARAMS.max;
/** Chunks of local versions read recently, kept for use as delta bases (neighbours share most of theirs). */
const RECENT_BASES = 32;

/** Set by bench/substituter-timeline.ts to see when each step of an assembly happens. */
export const assemblyTrace: { on?: (event: string) => void } = {};

/** A chunk asked of the server; `size` is its length in the NAR, what its answer must decode to. */
type Wanted = WantedChunk & { hex: string; size: number };
/** A stretch of the first local version, chunks [lo, hi] of its list, NAR offsets [start, end). */
type HintSpan = { lo: number; hi: number; start: number; end: number; data: Promise<Uint8Array | undefined> };

/** What assembling NARs took, for `GET /_narwhal/stats` and the bench. */
export interface AssemblyFigures {
  nars: number;
  /** Chunks taken from this machine: the chunk cache or a local version in the store. */
  chunksLocal: number;
  chunksFetched: number;
  deltasFetched: number;
  /** Response bytes from the server: chunk lists and chunk answers. */
  bytesFromServer: number;
  /** Answers that did not decode to the chunk they were for. */
  refused: number;
  /** Chunks of local versions whose bytes in the store no longer match their id (fetched instead). */
  localMismatches: number;
}

export function emptyFigures(): AssemblyFigures {
  return {
    nars: 0,
    chunksLocal: 0,
    chunksFetched: 0,
    deltasFetched: 0,
    bytesFromServer: 0,
    refused: 0,
    localMismatches: 0,
  };
}

/** Where a chunk lies in a local version's NAR. */
interface LocalPlace {
  version: LocalChunkList;
  start: number;
  end: number;
}

/**
 * The NAR with this hash (nix32), assembled from the chunk cache, the chunks of local versions of
 * the same package (read from the store), and the rest fetched from the server with
 * `chunk-frames`, giving it the local chunks at the same place as hints for deltas. Every chunk is
 * checked against its id before it is used; the NAR streams out in order while the next batches
 * are read and fetched (AHEAD of it, after the first).
 */
export async function* assembleNar(
  upstream: Upstream,
  cache: ChunkCache,
  narHash: string,
  localVersions: Promise<LocalChunkList[]>,
  figures: AssemblyFigures,
): AsyncGenerator<Uint8Array> {
  // The chunk list comes while the local versions are walked.
  const [chunks, versions] = await Promise.all([
    fetchChunkList(upstream, narHash).finally(() => assemblyTrace.on?.('chunk list')),
    localVersions.finally(() => assemblyTrace.on?.('local versions')),
  ]);
  figures.nars++;
  const assembly = new Assembly(upstream, cache, chunks, versions, figures);
  const batches = planBatches(chunks);
  // Batches are assembled in order of need, AHEAD at a time; one that is slow (the server's answer
  // late) does not hold back the start of the next ones, up to QUEUED assembled and waiting.
  const pending: Promise<Uint8Array[]>[] = [];
  let next = 0;
  let running = 0;
  const fill = (): void => {
    while (next < batches.length && running < AHEAD && pending.length < QUEUED && !assembly.abort.signal.aborted) {
      const { from, to } = batches[next++];
      const n = next - 1;
      assemblyTrace.on?.(`batch ${n} starts`);
      running++;
      const done = assembly.batch(from, to);
      pending.push(done);
      done.then(
        () => {
          assemblyTrace.on?.(`batch ${n} assembled`);
          running--;
          fill();
        },
        () => {
          running--;
        },
      );
    }
  };
  try {
    fill();
    while (pending.length > 0) {
      const data = await pending.shift()!;
      fill();
      yield* data;
    }
  } finally {
    assembly.abort.abort();
    assembly.close();
  }
}

function planBatches(chunks: CaibxChunk[]): { from: number; to: number }[] {
  const batches = [];
  for (let from = 0; from < chunks.length; ) {
    const limit = from === 0 ? FIRST_BATCH : BATCH;
    const base = from === 0 ? 0 : chunks[from - 1].end;
    let to = from + 1;
    while (to < chunks.length && to - from < limit && chunks[to].end - base <= BATCH_BYTES) to++;
    batches.push({ from, to });
    from = to;
  }
  return batches;
}

/** One NAR's assembly: its chunk list, the local chunks it may use, and its requests to the server. */
class Assembly {
  readonly abort = new AbortController();
  readonly #upstream: Upstream;
  readonly #cache: ChunkCache;
  readonly #chunks: CaibxChunk[];
  readonly #versions: LocalChunkList[];
  readonly #figures: AssemblyFigures;
  /** Where this NAR's offsets lie in the first local version (the one hints come from). */
  readonly #placeMap: PlaceMap;
  /** Chunks of the local versions, by id (hex). */
  readonly #places = new Map<string, LocalPlace>();
  readonly #recent = new Map<string, Promise<Uint8Array | undefined>>();
  /** Where each chunk of the first local version (the one hints come from) lies in its list. */
  readonly #hinted = new Map<string, number>();
  /**
   * Plain frames decode through one kept context, deltas through one freed at once: a one-shot
   * zstdDecompressSync per chunk left a context and its output per chunk to the collector.
   */
  readonly #frames = new ZstdFrameDecoder();

  constructor(
    upstream: Upstream,
    cache: ChunkCache,
    chunks: CaibxChunk[],
    versions: LocalChunkList[],
    figures: AssemblyFigures,
  ) {
    this.#upstream = upstream;
    this.#cache = cache;
    this.#chunks = chunks;
    this.#versions = versions;
    this.#figures = figures;
    this.#placeMap = new PlaceMap(
      (versions[0]?.chunks ?? []).map((c) => ({ key: c.hex, end: c.end })),
      chunks.map((c) => ({ key: Buffer.from(c.id).toString('hex'), end: c.end })),
    );
    for (const version of versions) {
      let start = 0;
      for (const { hex, end } of version.chunks) {
        if (!this.#places.has(hex)) this.#places.set(hex, { version, start, end });
        start = end;
      }
    }
    for (const [i, { hex }] of (versions[0]?.chunks ?? []).entries())
      if (!this.#hinted.has(hex)) this.#hinted.set(hex, i);
  }

  close(): void {
    this.#frames.close();
  }

  /** The chunks [from, to) of the NAR, each checked against its id. */
  async batch(from: number, to: number): Promise<Uint8Array[]> {
    const ids = this.#chunks.slice(from, to).map((c) => Buffer.from(c.id).toString('hex'));
    const hintsAt = (i: number): Uint8Array[] => this.#hints(from + i === 0 ? 0 : this.#chunks[from + i - 1].end);
    // What the batch reads of the first local version (its chunks here, the hints of the others), in one go.
    const lacking = ids.flatMap((hex, i) => (this.#cache.has(hex) || this.#places.has(hex) ? [] : [hintsAt(i)]));
    const span = this.#batchSpan(ids, lacking);
    const found = this.#localAll(ids, span);
    const wanted: Wanted[] = [];
    const asked = new Set<string>();
    for (const [i, hex] of ids.entries()) {
      if ((await found.get(hex)) !== undefined || asked.has(hex)) continue;
      asked.add(hex);
      const size = this.#chunks[from + i].end - (from + i === 0 ? 0 : this.#chunks[from + i - 1].end);
      wanted.push({ id: this.#chunks[from + i].id, hex, size, hints: hintsAt(i) });
    }
    assemblyTrace.on?.(`batch from ${from}: ${wanted.length} of ${ids.length} wanted`);
    const fetched = wanted.length > 0 ? await this.#fetch(wanted, span) : new Map<string, Uint8Array>();
    const out: Uint8Array[] = [];
    for (const hex of ids) {
      const local = await found.get(hex);
      if (local !== undefined) this.#figures.chunksLocal++;
      out.push(local ?? fetched.get(hex)!);
    }
    return out;
  }

  /**
   * The chunks of `ids` this machine holds, as #local finds them, except that chunks lying side by
   * side in a local version (an unchanged stretch) are read from it in one go.
   */
  #localAll(ids: string[], batchSpan?: HintSpan): Map<string, Promise<Uint8Array | undefined>> {
    const found = new Map<string, Promise<Uint8Array | undefined>>();
    const first = this.#versions[0];
    let span: { place: LocalPlace; members: { hex: string; place: LocalPlace }[] } | undefined;
    const readSpan = (): void => {
      if (!span) return;
      const { version, start } = span.place;
      const read = version.read(start, span.place.end).catch(() => undefined);
      for (const member of span.members) {
        const at = member.place.start - start;
        found.set(
          member.hex,
          read.then((data) =>
            this.#checked(member.hex, data?.subarray(at, at + member.place.end - member.place.start)),
          ),
        );
      }
      span = undefined;
    };
    for (const hex of ids) {
      if (found.has(hex) || span?.members.some((m) => m.hex === hex)) continue;
      const place = this.#cache.has(hex) ? undefined : this.#places.get(hex);
      if (
        place &&
        batchSpan &&
        place.version === first &&
        place.start >= batchSpan.start &&
        place.end <= batchSpan.end
      ) {
        readSpan();
        const at = place.start - batchSpan.start;
        found.set(
          hex,
          batchSpan.data.then((data) => this.#checked(hex, data?.subarray(at, at + place.end - place.start))),
        );
        continue;
      }
      if (!place) {
        readSpan();
        found.set(hex, this.#local(hex));
        continue;
      }
      if (
        span &&
        span.place.version === place.version &&
        span.place.end === place.start &&
        place.end - span.place.start <= BATCH_BYTES
      ) {
        span.place = { ...span.place, end: place.end };
        span.members.push({ hex, place });
        continue;
      }
      readSpan();
      span = { place, members: [{ hex, place }] };
    }
    readSpan();
    return found;
  }

  /** A local version's chunk as read, if it matches its id; one that does not is not taken from there again. */
  #checked(hex: string, data: Uint8Array | undefined): Uint8Array | undefined {
    if (data !== undefined && matches(data, hex)) return data;
    this.#figures.localMismatches++;
    this.#places.delete(hex);
    return undefined;
  }

  /** The chunk from the cache or a local version, when one holds it and its bytes match the id. */
  async #local(hex: string): Promise<Uint8Array | undefined> {
    if (this.#cache.has(hex)) {
      const data = await this.#cache.get(hex);
      if (data !== undefined && matches(data, hex)) return data;
    }
    const place = this.#places.get(hex);
    if (!place) return undefined;
    return this.#checked(hex, await place.version.read(place.start, place.end).catch(() => undefined));
  }

  /**
   * The chunks of the first local version at the same place (PlaceMap) and their neighbours, in NAR
   * order (place-hints.ts: the server has deltas against these ready for the common upgrade).
   */
  #hints(start: number): Uint8Array[] {
    const version = this.#versions[0];
    if (!version) return [];
    const chunks = version.chunks;
    const hints: Uint8Array[] = [];
    for (const i of hintsAround(chunks.length, (j) => chunks[j].end, this.#placeMap.place(start))) {
      const near = chunks[i];
      if (this.#places.has(near.hex) || this.#cache.has(near.hex)) hints.push(Buffer.from(near.hex, 'hex'));
    }
    return hints;
  }

  /**
   * The stretch of the first local version that a batch uses, read in one go: its chunks found
   * there, and the hints of those it lacks (hints are in NAR order, so a delta against consecutive
   * chunks takes its dictionary from this read without a copy). None when it would be large.
   */
  #batchSpan(ids: string[], lacking: Uint8Array[][]): HintSpan | undefined {
    const version = this.#versions[0];
    if (!version || lacking.length === 0) return undefined;
    let lo = Number.POSITIVE_INFINITY;
    let hi = -1;
    const include = (hex: string): void => {
      const i = this.#hinted.get(hex);
      if (i === undefined) return;
      lo = Math.min(lo, i);
      hi = Math.max(hi, i);
    };
    for (const hints of lacking) for (const hint of hints) include(Buffer.from(hint).toString('hex'));
    if (hi < 0) return undefined;
    for (const hex of ids) if (!this.#cache.has(hex) && this.#places.get(hex)?.version === version) include(hex);
    const start = lo === 0 ? 0 : version.chunks[lo - 1].end;
    const end = version.chunks[hi].end;
    if (end - start > 2 * BATCH_BYTES) return undefined;
    const data = version.read(start, end).catch(() => undefined);
    return { lo, hi, start, end, data };
  }

  /** The dictionary of a delta whose bases are consecutive chunks in `span`, as part of it. */
  async #spanDictionary(span: HintSpan | undefined, bases: Uint8Array[]): Promise<Uint8Array | undefined> {
    if (!span) return undefined;
    const first = this.#hinted.get(Buffer.from(bases[0]).toString('hex'));
    if (first === undefined || first < span.lo || first + bases.length - 1 > span.hi) return undefined;
    const chunks = this.#versions[0].chunks;
    if (bases.some((base, k) => chunks[first + k].hex !== Buffer.from(base).toString('hex'))) return undefined;
    const data = await span.data;
    const from = (first === 0 ? 0 : chunks[first - 1].end) - span.start;
    return data?.subarray(from, chunks[first + bases.length - 1].end - span.start);
  }

  async #fetch(wanted: Wanted[], span?: HintSpan): Promise<Map<string, Uint8Array>> {
    const res = await fetch(`${this.#upstream.cacheUrl}/chunk-frames`, {
      method: 'POST',
      headers: { ...this.#upstream.headers, 'Content-Type': 'application/octet-stream' },
      body: encodeWantedChunks(wanted),
      signal: this.abort.signal,
    });
    if (!res.ok || !res.body) throw new NarwhalError('unavailable', `the server answered ${res.status} for chunks`);
    assemblyTrace.on?.(`answer to ${wanted.length} starts`);
    const counted = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    counted.on('data', (d: Uint8Array) => this.#upstream.received?.(d.length));
    const reader = new ExactReader(counted);
    const fetched = new Map<string, Uint8Array>();
    try {
      for (const w of wanted) {
        const answer = await readChunkFrame(reader, MAX_CHUNK * 2);
        if (!answer || Buffer.from(answer.id).toString('hex') !== w.hex || answer.kind === 'absent') {
          throw new NarwhalError('unavailable', `the server did not give chunk ${w.hex}`);
        }
        const data = await this.#decode(answer.kind, answer.payload, Math.min(w.size, MAX_CHUNK), span);
        if (data === undefined || !matches(data, w.hex)) {
          this.#figures.refused++;
          throw new NarwhalError('chunk-corrupt', `the server's answer for chunk ${w.hex} is not that chunk`);
        }
        this.#figures.chunksFetched++;
        if (answer.kind === 'delta') this.#figures.deltasFetched++;
        fetched.set(w.hex, data);
      }
    } finally {
      counted.destroy();
      this.#cache.keep([...fetched].map(([hex, data]) => ({ hex, data })));
    }
    return fetched;
  }

  /**
   * The chunk an answer gives. A delta's bases are not checked against their ids here: the chunk
   * decoded is, and bases that are not what they claim cannot decode to it.
   */
  async #decode(kind: string, payload: Uint8Array, size: number, span?: HintSpan): Promise<Uint8Array | undefined> {
    try {
      if (kind === 'frame') return this.#frames.decode(payload, size);
      const form = parseStored(payload);
      if (form.kind !== 'delta') return undefined;
      const dictionary = await this.#spanDictionary(span, form.bases);
      if (dictionary) return decodeWithDictionary(form.frame, dictionary, size);
      const bases = [];
      for (const base of form.bases) {
        const content = await this.#base(Buffer.from(base).toString('hex'));
        if (content === undefined) return undefined;
        bases.push(content);
      }
      return decodeWithDictionary(form.frame, bases.length === 1 ? bases[0] : Buffer.concat(bases), size);
    } catch {
      return undefined;
    }
  }

  /** A base of a delta, from the few read last (neighbouring chunks share most of their bases). */
  #base(hex: string): Promise<Uint8Array | undefined> {
    let known = this.#recent.get(hex);
    if (known) {
      this.#recent.delete(hex);
    } else {
      known = this.#local(hex);
      if (this.#recent.size >= RECENT_BASES) this.#recent.delete(this.#recent.keys().next().value!);
    }
    this.#recent.set(hex, known);
    return known;
  }
}

function matches(data: Uint8Array, hex: string): boolean {
  return createHash('sha256').update(data).digest('hex') === hex;
}
