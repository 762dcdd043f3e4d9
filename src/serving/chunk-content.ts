import { NarwhalError, isNarwhalError } from '../errors.ts';
import { parseStored } from '../delta/stored-form.ts';
import { chunkHex, type StoredFrame } from '../storage/chunk-store.ts';
import { checkChunk } from './chunk-check.ts';

/**
 * A chunk's content whatever its stored form: a plain zstd frame is checked as it always was
 * (chunk-check.ts); a delta (src/delta/stored-form.ts) is decoded with its bases, each read the
 * same way (a base may be a delta itself, up to MAX_DELTA_DEPTH deltas in a chain) and checked
 * against its own id, and the decoded content is checked against the chunk's id. Decoding and
 * checks run on the check workers.
 */

/** The longest chain of deltas read: a chunk, its base and its base's base may be deltas, no more. */
export const MAX_DELTA_DEPTH = 3;

/** Where stored frames come from (the Narwhal's chunk store, or a store being migrated). */
export type FrameSource = (id: Uint8Array) => Promise<StoredFrame>;

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
  /** The content (always for a delta, else when asked for). */
  data?: Uint8Array;
  delta: boolean;
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

function parsedOrCorrupt(id: Uint8Array, stored: Uint8Array): ReturnType<typeof parseStored> {
  try {
    return parseStored(stored);
  } catch {
    throw new NarwhalError('chunk-corrupt', `chunk ${chunkHex(id)} has a malformed delta header`);
  }
}
