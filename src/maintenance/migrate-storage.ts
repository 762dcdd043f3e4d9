import { isNarwhalError } from '../errors.ts';
import type { ChunkReader, ChunkStore, ChunkWriter, StoredChunkInfo } from '../storage/chunk-store.ts';
import { BaseReader, checkStoredChunk } from '../serving/chunk-content.ts';

/** Chunks copied at once: each copy is a read and a write that mostly wait on I/O. */
const DEFAULT_CONCURRENCY = 16;
const CHECKED_PER_READER = 256;

export interface MigrationProgress {
  /** Chunks listed in the source so far. */
  seen: number;
  copied: number;
  /** Bytes (as stored, compressed) copied. */
  copiedBytes: number;
  /** Already in the destination: left alone. */
  present: number;
  /** Listed in the source but gone when read (deleted meanwhile). */
  vanished: number;
  /** Hex ids of source chunks that failed decompression or their hash: not copied. */
  corrupt: string[];
}

export interface MigrateOptions {
  concurrency?: number;
  /** Called after every chunk settles; cheap callers only. */
  onProgress?: (progress: Readonly<MigrationProgress>) => void;
}

/**
 * Copies every chunk the source has and the destination lacks, as stored (no recompression),
 * after checking that it decompresses to data whose SHA-256 is its id: a damaged chunk is
 * reported, never copied. A delta is copied as it is (its form names its bases), once it decodes
 * with its bases read from the source, which copies them as it copies every chunk. Memory stays bounded: the source is listed as a stream and chunks are
 * looked up one at a time in the destination. Safe to rerun after an interruption; the
 * destination is flushed at the end, so what it holds is durable when this returns.
 */
export async function migrateStorage(
  from: ChunkStore,
  to: ChunkWriter,
  options: MigrateOptions = {},
): Promise<MigrationProgress> {
  const progress: MigrationProgress = { seen: 0, copied: 0, copiedBytes: 0, present: 0, vanished: 0, corrupt: [] };
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;

  // Bases read for checks are kept per run of CHECKED_PER_READER chunks, not for the whole store.
  let bases = new BaseReader(async (id) => ({ stored: await from.get(id) }));
  for await (const info of from.list()) {
    if (failure) break;
    if (progress.seen % CHECKED_PER_READER === 0)
      bases = new BaseReader(async (id) => ({ stored: await from.get(id) }));
    progress.seen++;
    const copy: Promise<void> = copyChunk(from, to, info, progress, bases)
      .catch((error: unknown) => {
        failure ??= { error };
      })
      .finally(() => {
        inFlight.delete(copy);
        options.onProgress?.(progress);
      });
    inFlight.add(copy);
    while (inFlight.size >= concurrency) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure) throw failure.error;
  await to.flush();
  return progress;
}

async function copyChunk(
  from: ChunkReader,
  to: ChunkWriter,
  info: StoredChunkInfo,
  progress: MigrationProgress,
  bases: BaseReader,
): Promise<void> {
  if ((await to.storedSize(info.id)) !== undefined) {
    progress.present++;
    return;
  }
  let stored: Uint8Array;
  try {
    stored = await from.get(info.id);
  } catch (err) {
    if (!isNarwhalError(err, 'chunk-missing')) throw err;
    progress.vanished++;
    return;
  }
  try {
    ({ stored } = await checkStoredChunk(info.id, stored, undefined, false, bases));
  } catch (err) {
    if (!isNarwhalError(err, 'chunk-corrupt')) throw err;
    progress.corrupt.push(Buffer.from(info.id).toString('hex'));
    return;
  }
  const size = stored.byteLength; // put may take the buffer
  await to.put(info.id, stored);
  progress.copied++;
  progress.copiedBytes += size;
}
