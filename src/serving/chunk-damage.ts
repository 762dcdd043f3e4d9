import { setTimeout as delay } from 'node:timers/promises';
import { NarwhalError, isNarwhalError } from '../errors.ts';
import {
  asWritten,
  BaseReader,
  checkStoredChunk,
  DamagedBaseError,
  decodeDeltasWithChains,
  decodeDeltaWithChain,
} from './chunk-content.ts';
import { checkChunk, readFramesOnWorker } from './chunk-check.ts';
import { claimsDelta } from '../delta/stored-form.ts';
import type { ChunkTableEntry } from '../chunking/chunk-table.ts';
import type { Narwhal } from '../context/narwhal.ts';
import type { StoredFrame } from '../storage/chunk-store.ts';
import { hasFramePlaces, hasFrameReads } from '../storage/chunk-store-capabilities.ts';

/**
 * Neighbouring chunks of a NAR sent to the same check worker when stored as deltas, together:
 * their bases by place mostly are the same.
 */
const AFFINITY_RUN = 16;
/** Pause before a chunk that failed is tried a second time. */
const RECHECK_DELAY_MS = 50;

export interface CheckedChunk {
  entry: ChunkTableEntry;
  /** The chunk as stored (a zstd frame). */
  stored: Uint8Array;
  /** The chunk's bytes, which hash to its id (when asked for, and for a delta unless `served` is given). */
  data?: Uint8Array;
  /** Stored as a delta (src/delta/stored-form.ts): `stored` is for no client, `data` (or `served`) is. */
  delta: boolean;
  /** For a delta read without its data wanted: the frame a `.nar.zst` sends in its place. */
  served?: Uint8Array;
}

/**
 * Reads a chunk and checks it (checkFrame). A chunk that is missing or corrupt is tried once more
 * after a short pause (GC may have moved a file aside for an instant, see
 * LocalChunkStore.deleteUnlessNewer); if it fails again, the chunk and every NAR using it are
 * flagged damaged before the error is thrown, so their narinfos answer 404 from then on.
 * `read`, when given, is the chunk's frame as read already. A delta is first decoded on a check
 * worker with the frames of its chain the worker lacks (decodeDeltaWithChain); if that fails, the second try reads and checks each
 * base on its own, so that a delta whose base is damaged is found damaged itself: both are
 * flagged (and with them every chunk built on the base, markChunksDamaged).
 */
export async function readCheckedChunk(
  nw: Narwhal,
  entry: ChunkTableEntry,
  wantData: boolean,
  read?: StoredFrame,
): Promise<CheckedChunk> {
  try {
    return await checkFrame(nw, entry, read ?? (await readFrame(nw, entry.id)), wantData, undefined);
  } catch (err) {
    if (!isDamage(err)) throw err;
    return checkAgain(nw, entry, wantData);
  }
}

/** The second try of readCheckedChunk, after a pause: each base of a delta read and checked on its own. */
async function checkAgain(nw: Narwhal, entry: ChunkTableEntry, wantData: boolean): Promise<CheckedChunk> {
  await delay(RECHECK_DELAY_MS);
  try {
    return await checkFrame(nw, entry, await readFrame(nw, entry.id), wantData, baseReader(nw));
  } catch (again) {
    if (isDamage(again))
      await reportDamage(nw, again instanceof DamagedBaseError ? [entry.id, again.baseId] : [entry.id]);
    throw again;
  }
}

/** A reader of delta bases from the Narwhal's chunk store. */
export function baseReader(nw: Narwhal): BaseReader {
  return new BaseReader((id) => readFrame(nw, id));
}

/**
 * readCheckedChunk for several chunks, read together where the store can (FrameReads.getFrames):
 * a NAR's chunks mostly lie side by side. When the read fails for damage, each chunk is read alone,
 * so that only the damaged ones are flagged. The deltas among them are decoded a run of
 * neighbours at a time (decodeDeltasWithChains: one worker call and one read of bases per level
 * of their chains); one that fails is tried again alone, as readCheckedChunk does.
 */
export async function readCheckedChunks(
  nw: Narwhal,
  entries: ChunkTableEntry[],
  wantData: boolean,
): Promise<CheckedChunk[]> {
  let frames: StoredFrame[] | undefined;
  try {
    if (hasFrameReads(nw.chunks))
      frames = await readFrames(
        nw,
        entries.map((entry) => entry.id),
      );
  } catch (err) {
    if (!isDamage(err)) throw err;
  }
  const decoded = new Map<number, Promise<CheckedChunk>>();
  if (frames !== undefined)
    for (const [affinity, run] of deltaRuns(entries, frames)) {
      const results = decodeDeltasWithChains(
        run.map((i) => ({ id: entries[i].id, top: frames[i], size: entries[i].end - entries[i].start })),
        // The bases a run lacks are read here: on its worker they would wait behind its decodes.
        (ids) => readFrames(nw, ids, false),
        wantData,
        affinity,
      );
      for (const [k, i] of run.entries()) {
        const entry = entries[i];
        const chunk = results.then((all) => {
          const result = all[k];
          if (!(result instanceof NarwhalError)) return { entry, ...result };
          if (!isDamage(result)) throw result;
          return checkAgain(nw, entry, wantData);
        });
        chunk.catch(() => undefined); // awaited below, in order
        decoded.set(i, chunk);
      }
    }
  return Promise.all(entries.map((entry, i) => decoded.get(i) ?? readCheckedChunk(nw, entry, wantData, frames?.[i])));
}

/** The check worker a chunk of a NAR stored as a delta goes to: the same for AFFINITY_RUN neighbours. */
const affinityOf = (entry: ChunkTableEntry): number => Math.floor(entry.index / AFFINITY_RUN);

/** The chunks stored as deltas, by index in `entries`, in runs of neighbours (AFFINITY_RUN) keyed by their worker affinity. */
function deltaRuns(entries: ChunkTableEntry[], frames: StoredFrame[]): Map<number, number[]> {
  const runs = new Map<number, number[]>();
  entries.forEach((entry, i) => {
    if (!claimsDelta(frames[i].stored)) return;
    const affinity = affinityOf(entry);
    const run = runs.get(affinity);
    if (run) run.push(i);
    else runs.set(affinity, [i]);
  });
  return runs;
}

/**
 * Frames read at least on a check worker: a batch of a NAR of plain frames (1 MiB of NAR, about 16 chunks,
 * nar-reader.ts). A NAR sent mostly as raw frames of deltas is read in batches of a few chunks,
 * whose read on a worker waited behind the decodes there (`nix copy --from` of the oldest
 * releases took longer: docs/benchmarks.md, "Serving old versions").
 */
const WORKER_READ_FRAMES = 8;

/**
 * Stored frames of several chunks: from a pack store, WORKER_READ_FRAMES or more are read on a
 * check worker in one call (unless `onWorker` is false). If compaction deleted a pack between the
 * lookup and the read, the store's own read takes over: it looks the frames up again.
 */
async function readFrames(nw: Narwhal, ids: Uint8Array[], onWorker = true): Promise<StoredFrame[]> {
  if (onWorker && hasFramePlaces(nw.chunks) && ids.length >= WORKER_READ_FRAMES) {
    const placed = nw.chunks.locateFrames(ids);
    try {
      const frames = await readFramesOnWorker(placed);
      return frames.map((stored, i) => ({ stored, crc: placed.frames[i].crc }));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  if (hasFrameReads(nw.chunks)) return nw.chunks.getFrames(ids);
  return Promise.all(ids.map(async (id) => ({ stored: await nw.chunks.get(id) })));
}

/** Like readCheckedChunk, for a presence check: throws 'chunk-missing' (and flags the damage) when the file is gone. */
export async function checkChunkPresent(nw: Narwhal, id: Uint8Array, narHash: string): Promise<void> {
  if ((await nw.chunks.storedSize(id)) !== undefined) return;
  await delay(RECHECK_DELAY_MS);
  if ((await nw.chunks.storedSize(id)) !== undefined) return;
  await reportDamage(nw, [id]);
  throw new NarwhalError(
    'chunk-missing',
    `NAR ${narHash} is incomplete: chunk ${Buffer.from(id).toString('hex')} is missing`,
  );
}

/** Flags the chunks and the NARs using them damaged, and drops this process's kept narinfos. */
export async function reportDamage(nw: Narwhal, ids: Uint8Array[]): Promise<void> {
  await nw.meta.markChunksDamaged(ids, Date.now());
  nw.memos.narinfos.forget();
}

/** The chunk's stored frame, with its recorded CRC where the store keeps one. */
export async function readFrame(nw: Narwhal, id: Uint8Array): Promise<StoredFrame> {
  return hasFrameReads(nw.chunks) ? (await nw.chunks.getFrames([id]))[0] : { stored: await nw.chunks.get(id) };
}

/**
 * Checks a stored frame: one with the CRC-32 its store recorded when writing it is passed on as
 * it is, or when its bytes are wanted, decompressed and checked against its size only (it was
 * written from bytes that hash to its id; a second try checks it in full); one this process
 * checked lately (checked-frames.ts) is passed on as it is; any other is decompressed and checked
 * against the chunk's size and id. A delta is always
 * decoded and checked, no client can use its stored bytes: on a check worker with the frames of
 * its chain it lacks (`bases` undefined), or with each base read and checked by a BaseReader.
 */
async function checkFrame(
  nw: Narwhal,
  entry: ChunkTableEntry,
  { stored, crc }: StoredFrame,
  wantData: boolean,
  bases: BaseReader | undefined,
): Promise<CheckedChunk> {
  const size = entry.end - entry.start;
  if (claimsDelta(stored)) {
    if (bases instanceof BaseReader) return { entry, ...(await checkStoredChunk(entry.id, stored, size, true, bases)) };
    const read = (ids: Uint8Array[]): Promise<StoredFrame[]> => readFrames(nw, ids);
    return {
      entry,
      ...(await decodeDeltaWithChain({ id: entry.id, top: { stored, crc }, size }, read, wantData, affinityOf(entry))),
    };
  }
  if (!wantData && crc === undefined && nw.memos.checkedFrames.checkedBefore(entry.id, stored))
    return { entry, stored, delta: false };
  if (bases === undefined && asWritten({ stored, crc })) {
    if (!wantData) return { entry, stored, delta: false };
    // Its bytes are wanted (a `.nar`, a pushed NAR's check): decompressed, but not hashed again.
    return { entry, ...(await checkChunk(entry.id, stored, size, true, undefined, true)), delta: false };
  }
  const reader = bases instanceof BaseReader ? bases : baseReader(nw);
  const checked = await checkStoredChunk(entry.id, stored, size, wantData, reader);
  if (crc === undefined) nw.memos.checkedFrames.remember(entry.id, checked.stored);
  return { entry, ...checked };
}

/** Whether `err` says a chunk is missing or damaged (verify's business), not that something else failed. */
export function isDamage(err: unknown): boolean {
  return isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt');
}
