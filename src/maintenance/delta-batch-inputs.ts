import { NarwhalError } from '../errors.ts';
import { claimsDelta } from '../delta/stored-form.ts';
import { decodeDeltasWithChains } from '../serving/chunk-content.ts';
import { isDamage, readFrame } from '../serving/chunk-damage.ts';
import { chunkHex, type StoredFrame } from '../storage/chunk-store.ts';
import { hasFrameReads } from '../storage/chunk-store-capabilities.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * What the delta pass (delta-encode.ts) hands its workers for one batch, read and decoded for the
 * whole batch at once: the stored frames of its chunks and of every base their options name, in one
 * read, and the contents of the bases stored as deltas themselves, decoded with their chains in one
 * call to a check worker (decodeDeltasWithChains, as a download decodes a run of deltas: the
 * worker keeps the bases it decoded, the frames go alone). Each base had been read and decoded
 * through its chain on its own, per chunk, every content posted to the workers with the whole
 * buffer it was a view of: on swc, whose older chunks have five bases by place that are deltas
 * too, the main thread spent half the pass posting 6 GB to the check workers (docs/benchmarks.md,
 * "Serving swc").
 *
 * Every frame and content is a copy of its own (not a Buffer's slice, which is a view), so that
 * posting one copies its bytes alone.
 */
export interface BatchInputs {
  /** Stored frames by hex id, or the damage that kept one from being read. */
  frames: Map<string, Uint8Array | NarwhalError>;
  /** Contents of the bases stored as deltas, by hex id, or the damage that kept one from being decoded. */
  contents: Map<string, Uint8Array | NarwhalError>;
}

/** Check worker the pass's chain decodes go to: one, so that the bases it keeps serve the next batches. */
const AFFINITY = 0;

export async function readBatchInputs(nw: Narwhal, chunks: Uint8Array[], bases: Uint8Array[]): Promise<BatchInputs> {
  const ids = distinct([...chunks, ...bases]);
  const read = await readAll(nw, ids);
  const byId = new Map(ids.map((id, i) => [chunkHex(id), read[i]]));
  const frames = new Map<string, Uint8Array | NarwhalError>();
  for (const [hex, frame] of byId)
    frames.set(hex, frame instanceof NarwhalError ? frame : new Uint8Array(frame.stored));
  const contents = new Map<string, Uint8Array | NarwhalError>();
  const deltas = [];
  for (const id of distinct(bases)) {
    const frame = byId.get(chunkHex(id))!;
    if (frame instanceof NarwhalError || !claimsDelta(frame.stored)) continue;
    const record = await nw.meta.getChunk(id);
    if (record === undefined) contents.set(chunkHex(id), missing(id));
    else deltas.push({ id, top: frame, size: record.size });
  }
  if (deltas.length === 0) return { frames, contents };
  const readChain = (more: Uint8Array[]): Promise<StoredFrame[]> =>
    hasFrameReads(nw.chunks) ? nw.chunks.getFrames(more) : Promise.all(more.map((id) => readFrame(nw, id)));
  const decoded = await decodeDeltasWithChains(deltas, readChain, true, AFFINITY);
  for (const [i, { id }] of deltas.entries()) {
    const result = decoded[i];
    contents.set(chunkHex(id), result instanceof NarwhalError ? result : new Uint8Array(result.data!));
  }
  return { frames, contents };
}

/** The frames of `ids`, in order: together where the store can, else (or when one is damaged) each on its own. */
async function readAll(nw: Narwhal, ids: Uint8Array[]): Promise<(StoredFrame | NarwhalError)[]> {
  if (hasFrameReads(nw.chunks)) {
    try {
      return await nw.chunks.getFrames(ids);
    } catch (err) {
      if (!isDamage(err)) throw err;
    }
  }
  return Promise.all(
    ids.map((id) =>
      readFrame(nw, id).catch((err: unknown) => {
        if (isDamage(err)) return err as NarwhalError;
        throw err;
      }),
    ),
  );
}

function distinct(ids: Uint8Array[]): Uint8Array[] {
  const seen = new Set<string>();
  return ids.filter((id) => {
    const hex = chunkHex(id);
    if (seen.has(hex)) return false;
    seen.add(hex);
    return true;
  });
}

function missing(id: Uint8Array): NarwhalError {
  return new NarwhalError('chunk-missing', `chunk ${chunkHex(id)} is not recorded`);
}
