import { NarwhalError, isNarwhalError } from '../errors.ts';
import { MAX_DELTA_DEPTH, parseStored } from '../delta/stored-form.ts';
import { chunkHex, frameCrc, type StoredFrame } from '../storage/chunk-store.ts';
import { checkChunk, decodeDeltaRun } from './chunk-check.ts';

/**
 * A chunk's content whatever its stored form: a plain zstd frame is checked as it always was
 * (chunk-check.ts); a delta (src/delta/stored-form.ts) is decoded with its bases, each read the
 * same way (a base may be a delta itself, up to MAX_DELTA_DEPTH deltas in a chain) and checked
 * against its own id, and the decoded content is checked against the chunk's id. Decoding and
 * checks run on the check workers.
 */

export { MAX_DELTA_DEPTH };

/** Where stored frames come from (the Narwhal's chunk store, or a store being migrated). */
export type FrameSource = (id: Uint8Array) => Promise<StoredFrame>;
/** Stored frames of several chunks, in order, read together where the store can. */
export type FramesSource = (ids: Uint8Array[]) => Promise<StoredFrame[]>;

/** A chunk that cannot be read because one of its bases (at some depth) is missing or corrupt. */
export class DamagedBaseError extends NarwhalError {
  /** The base found missing or corrupt. */
  readonly baseId: Uint8Array;
  constructor(code: 'chunk-missing' | 'chunk-corrupt', id: Uint8Array, baseId: Uint8Array, cause: unknown) {
    super(code, `chunk ${chunkHex(id)} cannot be decoded: its base ${chunkHex(baseId)} is damaged`, { cause });
    this.baseId = baseId;
  }
}

export interface CheckedContent {
  stored: Uint8Array;
  /** The content: when asked for, and for a delta unless `served` is given. */
  data?: Uint8Array;
  delta: boolean;
  /** For a delta: the frame a `.nar.zst` sends in its place (from decodeDeltaWithChain without `wantData`). */
  served?: Uint8Array;
}

/**
 * The contents of bases, read and checked once per reader: a batch of chunks shares one, so that a
 * base several of them use is read once, and memory stays that of one batch and its bases.
 */
export class BaseReader {
  readonly #source: FrameSource;
  readonly #contents = new Map<string, Promise<Uint8Array>>();

  constructor(source: FrameSource) {
    this.#source = source;
  }

  /** The checked content of base `id`, read at chain depth `depth` (keyed by it, so that a cycle ends at the depth limit). */
  content(id: Uint8Array, depth: number): Promise<Uint8Array> {
    const key = `${chunkHex(id)}:${depth}`;
    let content = this.#contents.get(key);
    if (!content) {
      content = this.#read(id, depth);
      content.catch(() => undefined); // awaited by every dependant
      this.#contents.set(key, content);
    }
    return content;
  }

  async #read(id: Uint8Array, depth: number): Promise<Uint8Array> {
    const { stored } = await this.#source(id);
    return (await checkStoredChunk(id, stored, undefined, true, this, depth)).data!;
  }
}

/**
 * Checks stored bytes against the chunk's id (and size, when known), decoding a delta with its
 * bases read through `bases`. `depth` is the chunk's place in a chain (0 for the chunk read).
 * Throws 'chunk-corrupt' for bytes that are not the chunk, DamagedBaseError when a base is.
 */
export async function checkStoredChunk(
  id: Uint8Array,
  stored: Uint8Array,
  size: number | undefined,
  wantData: boolean,
  bases: BaseReader,
  depth = 0,
): Promise<CheckedContent> {
  const form = parsedOrCorrupt(id, stored);
  if (form.kind === 'plain') return { ...(await checkChunk(id, stored, size, wantData)), delta: false };
  if (depth >= MAX_DELTA_DEPTH)
    throw new NarwhalError(
      'chunk-corrupt',
      `chunk ${chunkHex(id)} ends a chain of deltas longer than ${MAX_DELTA_DEPTH}`,
    );
  const contents = await Promise.all(
    form.bases.map((baseId) =>
      bases.content(baseId, depth + 1).catch((err: unknown) => {
        if (err instanceof DamagedBaseError) throw new DamagedBaseError(err.code as never, id, err.baseId, err);
        if (isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt'))
          throw new DamagedBaseError(err.code as never, id, baseId.slice(), err);
        throw err;
      }),
    ),
  );
  return { ...(await checkChunk(id, stored, size, true, contents)), delta: true };
}

/** A chunk stored as a delta, to decode: its id, stored frame and size. */
export interface DeltaToDecode {
  id: Uint8Array;
  top: StoredFrame;
  size: number;
}

/**
 * The contents of chunks stored as deltas, decoded on one check worker in one call per level of
 * their chains: give it neighbouring chunks of a NAR, whose bases mostly are the same. The
 * workers keep the contents of bases they decoded lately from trusted chains, so the chunks'
 * frames go alone at first; the worker names the bases it lacks, whose frames are then read
 * (`read`, all of them together) and sent along, a level of the chains per call. Posting every
 * frame of the chain for every chunk had bound the main thread while serving deltas, and so did
 * a call and a read per chunk and level (docs/benchmarks.md, "Serving old versions"). Bases are
 * not checked one by one: a wrong base cannot give content with the chunk's hash. So a failure
 * names no base; checkStoredChunk, which checks each, is the one to tell which is damaged. When
 * every frame read has the CRC its store recorded when writing it (and a kept base came from
 * such frames), the contents are trusted without their hash, as a plain frame with its CRC is
 * (chunk-damage.ts): the frames are those written, each from checked content. Without
 * `wantData` a content stays on the worker, which gives the frame served in its place
 * (`served`). Per chunk: its checked content, or the error that stopped it.
 */
export async function decodeDeltasWithChains(
  chunks: DeltaToDecode[],
  read: FramesSource,
  wantData: boolean,
  affinity: number,
): Promise<(CheckedContent | NarwhalError)[]> {
  const done: (CheckedContent | NarwhalError | undefined)[] = chunks.map(() => undefined);
  let pending = chunks.map((_, i) => i);
  const sent = new Map<string, Uint8Array>();
  let trusted = chunks.every((chunk) => asWritten(chunk.top));
  // The chunks, then each level of their chains: one more call than the deepest chain allowed.
  for (let call = 0; call <= MAX_DELTA_DEPTH + 1 && pending.length > 0; call++) {
    const run = pending.map((i) => ({ id: chunks[i].id, stored: chunks[i].top.stored, size: chunks[i].size }));
    const { outcomes, missing } = await decodeDeltaRun(run, sent, { trusted, served: !wantData, affinity });
    pending = pending.filter((i, k) => {
      const outcome = outcomes[k];
      if ('pending' in outcome) return true;
      const { stored } = chunks[i].top;
      done[i] =
        'error' in outcome
          ? new NarwhalError(
              outcome.error.code === 'chunk-corrupt' ? 'chunk-corrupt' : 'internal',
              outcome.error.message,
            )
          : wantData
            ? { stored, data: outcome.data, delta: true }
            : { stored, served: outcome.data, delta: true };
      return false;
    });
    if (pending.length === 0 || missing.length === 0) break;
    let frames: StoredFrame[];
    try {
      frames = await read(missing);
    } catch (err) {
      // A base missing (or a header naming one that is not there): each chunk still waiting fails with it.
      if (!isNarwhalError(err, 'chunk-missing') && !isNarwhalError(err, 'chunk-corrupt')) throw err;
      for (const i of pending) done[i] = err;
      break;
    }
    for (const [i, baseId] of missing.entries()) {
      sent.set(chunkHex(baseId), frames[i].stored);
      trusted &&= asWritten(frames[i]);
    }
  }
  return done.map(
    (result, i) =>
      result ??
      new NarwhalError(
        'chunk-corrupt',
        `chunk ${chunkHex(chunks[i].id)} ends a chain of deltas longer than ${MAX_DELTA_DEPTH}`,
      ),
  );
}

/** decodeDeltasWithChains of one chunk: its checked content, or throws. */
export async function decodeDeltaWithChain(
  chunk: DeltaToDecode,
  read: FramesSource,
  wantData: boolean,
  affinity: number,
): Promise<CheckedContent> {
  const [result] = await decodeDeltasWithChains([chunk], read, wantData, affinity);
  if (result instanceof NarwhalError) throw result;
  return result;
}

/**
 * True when the frame has the CRC-32 its store recorded when writing it. Every frame is written
 * from bytes that hash to its id (compressed at ingest, a delta of checked content, or checked
 * before a copy), so a frame read back unchanged needs no decompression to be trusted; one that
 * changed is checked in full.
 */
export function asWritten({ stored, crc }: StoredFrame): boolean {
  return crc !== undefined && frameCrc(stored) === crc;
}

function parsedOrCorrupt(id: Uint8Array, stored: Uint8Array): ReturnType<typeof parseStored> {
  try {
    return parseStored(stored);
  } catch {
    throw new NarwhalError('chunk-corrupt', `chunk ${chunkHex(id)} has a malformed delta header`);
  }
}
