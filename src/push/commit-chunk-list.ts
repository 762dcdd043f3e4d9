import { Readable } from 'node:stream';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import type { ChunkTableEntry } from '../chunking/chunk-table.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { isNarwhalError, NarwhalError } from '../errors.ts';
import { ingestNar } from '../ingest/ingest-nar.ts';
import type { CacheRecord, NarRecord, TokenRecord } from '../metadata/metadata-store.ts';
import { encodeNixBase32 } from '../nix/base32.ts';
import { parseSha256 } from '../nix/hash.ts';
import { ExactReader } from '../runtime/exact-reader.ts';
import { checkChunk } from '../serving/chunk-check.ts';
import { readCheckedChunks } from '../serving/chunk-damage.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { shownChunks } from '../tenancy/nar-visibility.ts';
import { type ChunkListEntry, readChunkListHead, readSentFrame } from './chunk-list-body.ts';

/** The largest frame of a chunk: zstd's worst case for the largest chunk is a few bytes a block above it. */
const MAX_FRAME_BYTES = DEFAULT_CHUNKER_PARAMS.max + 4096;
/** Chunks the server has, read together. */
const READ_BATCH = 16;

/** A chunk list named chunks the server cannot count on: the client sends them and tries again. */
export class MissingChunksError extends NarwhalError {
  readonly ids: Uint8Array[];
  constructor(ids: Uint8Array[]) {
    super('conflict', `${ids.length} chunk(s) of the list are not stored here: send them`);
    this.ids = ids;
  }
}

export interface ChunkListUpload {
  /** `sha256:<nix32>`, as in a narinfo. */
  narHash: string;
  narSize: number;
}

/**
 * Ingests a NAR given as a chunk list (chunk-list-body.ts): the chunks the client says the server
 * has must be ones it may count on through this cache (shownChunks), else MissingChunksError
 * before any frame is read; each chunk sent must hash to its id. The NAR assembled from both is
 * ingested as if uploaded whole (ingest-nar.ts: grammar, NarHash, size limit, chunking, dedup),
 * so nothing the client claims is trusted. It all runs under an ingest hold taken before the
 * check, so that GC keeps every chunk found there until the commit (gc.ts explains the hold).
 */
export async function commitChunkList(
  nw: Narwhal,
  cache: CacheRecord,
  token: TokenRecord | undefined,
  body: AsyncIterable<Uint8Array>,
  upload: ChunkListUpload,
): Promise<NarRecord> {
  const { narSize } = upload;
  const narHash = parseSha256(upload.narHash);
  if (!Number.isSafeInteger(narSize) || narSize <= 0) {
    throw new NarwhalError('bad-request', 'narSize must be a positive integer');
  }
  if (narSize > nw.options.maxNarSize) {
    throw new NarwhalError('too-large', `NAR exceeds the size limit of ${nw.options.maxNarSize} bytes`);
  }
  const release = await nw.holds.begin();
  try {
    const reader = new ExactReader(body);
    const entries = await readChunkListHead(reader, Math.ceil(narSize / DEFAULT_CHUNKER_PARAMS.min) + 1);
    const held = entries.filter((entry) => !entry.sent).map((entry) => entry.id);
    const shown = await shownChunks(nw, cache, token, held);
    const missing = held.filter((_, i) => !shown[i]);
    if (missing.length > 0) throw new MissingChunksError(distinct(missing));
    const nar = Readable.from(narContents(nw, reader, entries, narSize), { objectMode: false });
    return await ingestNar(nw, nar, {
      compression: 'none',
      upload: { fileHash: narHash, fileHashText: `sha256:${encodeNixBase32(narHash)}`, suffix: '' },
      uploadedTo: cache.id,
    });
  } finally {
    release();
  }
}

/** The NAR's bytes, chunk after chunk: read from the store, or from the frames in the body. */
async function* narContents(
  nw: Narwhal,
  reader: ExactReader,
  entries: ChunkListEntry[],
  narSize: number,
): AsyncGenerator<Uint8Array> {
  let produced = 0;
  const count = (data: Uint8Array): Uint8Array => {
    produced += data.length;
    if (produced > narSize)
      throw new NarwhalError('hash-mismatch', `the chunks add up to more than narSize ${narSize}`);
    return data;
  };
  for (let i = 0; i < entries.length; ) {
    if (entries[i].sent) {
      yield count(await sentChunk(reader, entries[i].id, i));
      i++;
      continue;
    }
    const batch: ChunkTableEntry[] = [];
    for (; i < entries.length && !entries[i].sent && batch.length < READ_BATCH; i++) {
      const record = await nw.meta.getChunk(entries[i].id);
      if (!record) throw new MissingChunksError([entries[i].id]);
      batch.push({ index: i, start: 0, end: record.size, id: entries[i].id });
    }
    for (const chunk of await storedChunks(nw, batch)) yield count(chunk);
  }
  if (!(await reader.atEnd())) throw new NarwhalError('bad-request', 'the body goes on after the last chunk sent');
  if (produced !== narSize)
    throw new NarwhalError('hash-mismatch', `the chunks add up to ${produced} bytes, not narSize ${narSize}`);
}

async function sentChunk(reader: ExactReader, id: Uint8Array, index: number): Promise<Uint8Array> {
  const frame = await readSentFrame(reader, MAX_FRAME_BYTES);
  try {
    return (await checkChunk(id, frame, undefined, true)).data!;
  } catch (err) {
    if (!isNarwhalError(err, 'chunk-corrupt')) throw err;
    throw new NarwhalError('bad-request', `chunk ${index} sent (${chunkHex(id)}) does not decode to its id`);
  }
}

async function storedChunks(nw: Narwhal, batch: ChunkTableEntry[]): Promise<Uint8Array[]> {
  try {
    return (await readCheckedChunks(nw, batch, true)).map((chunk) => chunk.data!);
  } catch (err) {
    if (isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt')) {
      throw new MissingChunksError(batch.map((entry) => entry.id));
    }
    throw err;
  }
}

function distinct(ids: Uint8Array[]): Uint8Array[] {
  const seen = new Map<string, Uint8Array>();
  for (const id of ids) seen.set(chunkHex(id), id);
  return [...seen.values()];
}
