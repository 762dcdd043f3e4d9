import { createHash } from 'node:crypto';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import type { ChunkTableEntry } from '../chunking/chunk-table.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { isNarwhalError, NarwhalError } from '../errors.ts';
import { NarChunkWriter } from '../ingest/nar-chunk-writer.ts';
import { commitIngestedNar, IngestedChunks } from '../ingest/nar-commit.ts';
import type { CacheRecord, NarRecord, TokenRecord } from '../metadata/metadata-store.ts';
import { encodeNixBase32 } from '../nix/base32.ts';
import { formatSha256Nix32, parseSha256 } from '../nix/hash.ts';
import { NarValidator } from '../nix/nar-validator.ts';
import { ExactReader } from '../runtime/exact-reader.ts';
import { checkChunk, checkDeltaKeepingBases } from '../serving/chunk-check.ts';
import { readCheckedChunks } from '../serving/chunk-damage.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { deltaStoredForm } from '../delta/stored-form.ts';
import { chunkVisibility } from '../tenancy/nar-visibility.ts';
import { readChunkListEntry, readChunkListHeader } from './chunk-list-body.ts';
import { frameContentSize, isSinglePlainFrame } from './sent-frame.ts';

/** The largest chunk: what the chunker cuts at most, so that a commit's memory stays bounded. */
const MAX_CHUNK_BYTES = DEFAULT_CHUNKER_PARAMS.max;
/** The largest frame of a chunk: zstd's worst case for the largest chunk is a few bytes a block above it. */
const MAX_FRAME_BYTES = MAX_CHUNK_BYTES + 4096;
/** Chunks the server has, read together. */
const READ_BATCH = 16;
/** Reads and decodes of chunks under way while the body is read on. */
const DECODES_AHEAD = 8;

/**
 * A delta in a chunk list named bases the server cannot count on (gone since the client asked, or
 * never shown to it: the answer is the same): the client sends those chunks plain and tries again.
 */
export class MissingBasesError extends NarwhalError {
  readonly ids: Uint8Array[];
  constructor(ids: Uint8Array[]) {
    super('conflict', `${ids.length} delta base(s) of the list are not stored here: send those chunks plain`);
    this.ids = ids;
  }
}

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
 * Commits a NAR given as a chunk list (chunk-list-body.ts) without chunking it again: the NAR is
 * the list's chunks, concatenated. Each chunk the client says the server has must be one it may
 * count on through this cache (chunkVisibility), else MissingChunksError; each chunk sent must
 * decode to its id. The concatenation is checked as a NAR uploaded whole is (grammar, NarHash,
 * NarSize, the size limit), each chunk is at most the chunker's largest, and only then is the NAR
 * recorded by the client's chunk list. A chunk sent as one plain zstd frame is stored as it came;
 * one sent as a delta, compressed as ingest compresses (ingest's NarChunkWriter writes both, and
 * reuses a chunk stored meanwhile). Chunks are durable before the record (nar-commit.ts). It runs
 * under an ingest hold taken before any check, so that GC keeps every chunk found reusable until
 * the commit (gc.ts explains the hold).
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
  const startedAt = Date.now();
  const release = await nw.holds.begin();
  try {
    const reader = new ExactReader(body);
    const version = await readChunkListHeader(reader);
    const chunks = new IngestedChunks();
    const writer = new NarChunkWriter(nw);
    const validator = new NarValidator();
    const hasher = createHash('sha256');
    try {
      for await (const listed of listedChunks(nw, cache, token, reader, narSize, version)) {
        const size = listed.data.length;
        if (size === 0 || size > MAX_CHUNK_BYTES) {
          throw new NarwhalError('bad-request', `a chunk is 1 to ${MAX_CHUNK_BYTES} bytes, not ${size}`);
        }
        validator.push(listed.data);
        hasher.update(listed.data);
        const { chunk, first } = chunks.add(listed.id, size);
        if (!first) continue;
        if (listed.storedSize !== undefined) chunk.storedSize = listed.storedSize;
        else if (listed.frame) await writer.writeFrame(chunk, listed.frame);
        else await writer.write(chunk, listed.data);
      }
      validator.end();
      await writer.finish();
    } catch (err) {
      await writer.abandon();
      throw err;
    }
    const narHashText = `sha256:${encodeNixBase32(narHash)}`;
    if (chunks.narSize !== narSize || !hasher.digest().equals(narHash)) {
      throw new NarwhalError('hash-mismatch', `the chunks are not the NAR with NarHash ${narHashText}`);
    }
    return await commitIngestedNar(nw, chunks, {
      narHash: formatSha256Nix32(narHash),
      narSize,
      upload: { fileHash: narHashText, suffix: '', fileSize: narSize },
      uploadedTo: cache.id,
      ingestStartedAt: startedAt,
    });
  } finally {
    release();
  }
}

/** A chunk of the list, checked, and how it comes to be stored. */
interface ListedChunk {
  id: Uint8Array;
  /** Its content (which hashes to `id`, or was read from a frame as its store wrote it). */
  data: Uint8Array;
  /** A chunk the server has: its stored size. */
  storedSize?: number;
  /** A chunk sent as one plain frame (sent-frame.ts): the frame, to be stored as it came. */
  frame?: Uint8Array;
}

/** The list's chunks in NAR order: read from the store, or from the frames in the body. */
async function* listedChunks(
  nw: Narwhal,
  cache: CacheRecord,
  token: TokenRecord | undefined,
  reader: ExactReader,
  narSize: number,
  version: number,
): AsyncGenerator<ListedChunk> {
  // Chunks are at least the chunker's minimum but the NAR's last: this bounds the lookups a body costs.
  const maxEntries = Math.ceil(narSize / DEFAULT_CHUNKER_PARAMS.min) + 1;
  const shown = chunkVisibility(nw, cache, token);
  const recentBases = new RecentBases();
  let entries = 0;
  let produced = 0;
  let held: ChunkTableEntry[] = [];
  // Chunks being read or decoded, in NAR order: up to DECODES_AHEAD at once, so that a slow worker
  // round trip per sent chunk does not set the pace. Each failure surfaces when its turn comes.
  const pending: Promise<ListedChunk[]>[] = [];
  const queue = (work: Promise<ListedChunk[]>): void => {
    work.catch(() => undefined);
    pending.push(work);
  };
  const flush = (): void => {
    if (held.length > 0) queue(storedChunks(nw, held));
    held = [];
  };
  while (produced < narSize) {
    if (++entries > maxEntries) throw new NarwhalError('bad-request', `more chunks than a NAR of ${narSize} bytes has`);
    const entry = await readChunkListEntry(reader, MAX_FRAME_BYTES, version);
    let size: number;
    if (entry.frame) {
      flush();
      // The size the frame declares lets the next entries be read before it is decoded; it is checked after.
      const declared = frameContentSize(entry.frame);
      if (declared !== undefined && (declared === 0 || declared > MAX_CHUNK_BYTES)) {
        throw new NarwhalError('bad-request', `a chunk is 1 to ${MAX_CHUNK_BYTES} bytes, not ${declared}`);
      }
      const work: Promise<ListedChunk> = entry.bases
        ? sentDelta(nw, shown, recentBases, entry.id, entry.bases, entry.frame).then((data) => ({ id: entry.id, data }))
        : sentChunk(entry.id, entry.frame, declared);
      size = declared ?? (await work).data.length;
      queue(
        work.then((chunk) => {
          if (chunk.data.length !== size) {
            throw new NarwhalError('bad-request', `a frame sent as ${chunkHex(entry.id)} declares another size`);
          }
          return [chunk];
        }),
      );
    } else {
      const record = await nw.meta.getChunk(entry.id);
      if (!record || !(await shown(entry.id))) {
        // A failure of an earlier chunk is the one to answer: the answers stay in NAR order.
        for (const work of pending) await work;
        throw new MissingChunksError([entry.id]);
      }
      size = record.size;
      held.push({ index: entries - 1, start: 0, end: size, id: entry.id });
      if (held.length === READ_BATCH) flush();
    }
    produced += size;
    if (produced > narSize)
      throw new NarwhalError('hash-mismatch', `the chunks add up to more than narSize ${narSize}`);
    while (pending.length > DECODES_AHEAD) yield* await pending.shift()!;
  }
  flush();
  while (pending.length > 0) yield* await pending.shift()!;
  if (!(await reader.atEnd())) throw new NarwhalError('bad-request', 'the body goes on after the NAR ends');
}

/** A chunk sent plain: its frame decoded (to at most `declared` bytes, when declared) and checked against its id. */
async function sentChunk(id: Uint8Array, frame: Uint8Array, declared: number | undefined): Promise<ListedChunk> {
  try {
    const checked = await checkChunk(id, frame, declared, true);
    const data = checked.data!;
    return isSinglePlainFrame(checked.stored, data.length) ? { id, data, frame: checked.stored } : { id, data };
  } catch (err) {
    if (!isNarwhalError(err, 'chunk-corrupt')) throw err;
    throw new NarwhalError('bad-request', `a chunk sent as ${chunkHex(id)} does not decode to that id`);
  }
}

/**
 * Bases read lately, checked and found countable, by hex id: neighbouring chunks share most of
 * their bases (a client sends a group of them with the same ones), and are decoded several at a
 * time, so a base being read is waited for rather than read again.
 */
class RecentBases {
  static readonly SIZE = 16;
  /** Which bases the check workers were sent (checkDeltaKeepingBases). */
  readonly sentToWorkers = new Set<string>();
  readonly #contents = new Map<string, Promise<Uint8Array>>();

  get(id: Uint8Array): Promise<Uint8Array> | undefined {
    return this.#contents.get(chunkHex(id));
  }

  set(id: Uint8Array, content: Promise<Uint8Array>): void {
    const key = chunkHex(id);
    this.#contents.set(key, content);
    // A base that could not be read is read again by the next delta that names it.
    content.catch(() => this.#contents.get(key) === content && this.#contents.delete(key));
    if (this.#contents.size > RecentBases.SIZE) this.#contents.delete(this.#contents.keys().next().value!);
  }
}

/**
 * A chunk sent as a delta: its bases read from the store, each one a chunk the pusher may count on
 * as for a named chunk (else MissingBasesError, the same whether a base is absent or only another
 * cache's), and the frame decoded with their contents and checked against the chunk's id. Under
 * the commit's ingest hold, a base once found countable stays so until the commit ends.
 */
async function sentDelta(
  nw: Narwhal,
  shown: (id: Uint8Array) => Promise<boolean>,
  recent: RecentBases,
  id: Uint8Array,
  bases: Uint8Array[],
  frame: Uint8Array,
): Promise<Uint8Array> {
  // Each base not read lately is read now, before any wait, so that the deltas after this one find it.
  const reading = bases.map((base) => {
    let content = recent.get(base);
    if (!content) recent.set(base, (content = countableBase(nw, shown, base)));
    return content;
  });
  const outcomes = await Promise.allSettled(reading);
  const absent = outcomes.flatMap((outcome, i) => (outcome.status === 'rejected' ? [bases[i]] : []));
  for (const outcome of outcomes) {
    if (outcome.status === 'fulfilled') continue;
    const err = outcome.reason as unknown;
    if (
      !(
        err instanceof MissingBasesError ||
        isNarwhalError(err, 'chunk-missing') ||
        isNarwhalError(err, 'chunk-corrupt')
      )
    )
      throw err;
  }
  if (absent.length > 0) throw new MissingBasesError(absent);
  const contents = outcomes.map((outcome) => (outcome as PromiseFulfilledResult<Uint8Array>).value);
  try {
    return await checkDeltaKeepingBases(
      id,
      deltaStoredForm(bases, frame),
      bases.map((base, i) => ({ id: base, content: contents[i] })),
      recent.sentToWorkers,
    );
  } catch (err) {
    if (!isNarwhalError(err, 'chunk-corrupt')) throw err;
    throw new NarwhalError('bad-request', `a delta sent as ${chunkHex(id)} does not decode to that id with its bases`);
  }
}

/** The content of a base the pusher may count on, checked; else MissingBasesError naming it. */
async function countableBase(
  nw: Narwhal,
  shown: (id: Uint8Array) => Promise<boolean>,
  base: Uint8Array,
): Promise<Uint8Array> {
  const record = await nw.meta.getChunk(base);
  if (!record || !(await shown(base))) throw new MissingBasesError([base]);
  const [chunk] = await readCheckedChunks(nw, [{ index: 0, start: 0, end: record.size, id: base }], true);
  return chunk.data!;
}

async function storedChunks(nw: Narwhal, batch: ChunkTableEntry[]): Promise<ListedChunk[]> {
  try {
    return (await readCheckedChunks(nw, batch, true)).map((chunk) => ({
      id: chunk.entry.id,
      data: chunk.data!,
      storedSize: chunk.stored.length,
    }));
  } catch (err) {
    if (isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt')) {
      throw new MissingChunksError(batch.map((entry) => entry.id));
    }
    throw err;
  }
}
