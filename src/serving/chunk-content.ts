import { NarwhalError, isNarwhalError } from '../errors.ts';
import { MAX_DELTA_DEPTH, parseStored } from '../delta/stored-form.ts';
import { chunkHex, frameCrc, type StoredFrame } from '../storage/chunk-store.ts';
import { checkChunk, decodeDeltaChain } from './chunk-check.ts';

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

/**
 * The content of a chunk stored as a delta, decoded on a check worker. The workers keep the
 * contents of bases they decoded lately from trusted chains, so the chunk's frame goes alone at
 * first; the worker names the bases it lacks, whose frames are then read (`read`) and sent along
 * with it, a level of the chain per call. Reading and posting every frame of the chain for every
 * chunk had bound the main thread while serving deltas (docs/benchmarks.md, "Delta memory and
 * serving speed"). Bases are not checked one by one: a wrong base cannot give content with the
 * chunk's hash. So a failure names no base; checkStoredChunk, which checks each, is the one to
 * tell which is damaged. When every frame read has the CRC its store recorded when writing it
 * (and a kept base came from such frames), the content is trusted without its hash, as a plain
 * frame with its CRC is (chunk-damage.ts): the frames are those written, each from checked
 * content. Without `wantData` the content stays on the worker, which gives the frame served in
 * its place (`served`). `affinity` picks the worker: give chunks that share bases the same one.
 */
export async function decodeDeltaWithChain(
  id: Uint8Array,
  top: StoredFrame,
  size: number,
  read: FramesSource,
  wantData: boolean,
  affinity: number,
): Promise<CheckedContent> {
  const sent = new Map<string, Uint8Array>();
  let trusted = asWritten(top);
  // The chunk, then each level of its chain: one more call than the deepest chain allowed.
  for (let call = 0; call <= MAX_DELTA_DEPTH + 1; call++) {
    const decoded = await decodeDeltaChain(id, top.stored, size, sent, { trusted, served: !wantData, affinity });
    if (decoded.missing === undefined)
      return wantData ? { ...decoded, delta: true } : { stored: decoded.stored, served: decoded.data, delta: true };
    const frames = await read(decoded.missing);
    for (const [i, baseId] of decoded.missing.entries()) {
      sent.set(chunkHex(baseId), frames[i].stored);
      trusted &&= asWritten(frames[i]);
    }
  }
  throw new NarwhalError(
    'chunk-corrupt',
    `chunk ${chunkHex(id)} ends a chain of deltas longer than ${MAX_DELTA_DEPTH}`,
  );
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
