import { chunkSketch } from '../delta/resemblance.ts';
import type { ChunkRecord, ChunkSketch } from '../metadata/metadata-store.ts';
import { isNarwhalError } from '../errors.ts';
import { checkStoredChunk } from '../serving/chunk-content.ts';
import { baseReader } from '../serving/chunk-damage.ts';
import { walkChunkPages } from './chunk-pages.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * Resemblance sketches (src/delta/resemblance.ts) for the chunks that have none: every chunk an
 * ingest or an import wrote since the last run, and those of stores made before sketches. Reads
 * each such chunk (decompressing its stored frame), in ascending ids, a batch at a time, and
 * records the batch's sketches. Chunks whose file is missing or damaged are left to verify; a
 * later run tries them again.
 *
 * Not at ingest: sketching on the chunking thread made uploads markedly slower (docs/benchmarks.md,
 * 'Resemblance sketches'), while here it costs little next to the recompression that follows.
 */

/** Chunks read per metadata query and recorded per transaction. */
const BATCH = 64;
/** Chunks read at once (their decompression runs on the chunk-check threads). */
const READS = 4;

export interface SketchBackfillOptions {
  /** Asked between batches: true ends the run early (the server yields to pushes). */
  shouldStop?: () => boolean;
  /** Awaited after each batch: false ends the run (recompress.ts renews its lease here). */
  afterBatch?: () => Promise<boolean>;
}

export interface SketchBackfillReport {
  /** Chunks whose sketch was recorded. */
  sketched: number;
  /** Chunks whose file was missing or damaged. */
  skipped: number;
  /** True when shouldStop ended the run before every chunk was done. */
  stopped: boolean;
  /** True when every chunk without a sketch was read (neither shouldStop nor afterBatch ended the run). */
  finished: boolean;
}

export async function backfillSketches(
  nw: Narwhal,
  options: SketchBackfillOptions = {},
): Promise<SketchBackfillReport> {
  const report: SketchBackfillReport = { sketched: 0, skipped: 0, stopped: false, finished: false };
  const end = await walkChunkPages(
    (after, limit) => nw.meta.chunksWithoutSketch(after, limit),
    BATCH,
    options.shouldStop,
    async (batch) => {
      const sketches = await sketchBatch(nw, batch);
      await nw.meta.recordSketches(sketches);
      report.sketched += sketches.length;
      report.skipped += batch.length - sketches.length;
      return options.afterBatch ? options.afterBatch() : true;
    },
  );
  report.stopped = end === 'stopped';
  report.finished = end === 'finished';
  return report;
}

async function sketchBatch(nw: Narwhal, batch: ChunkRecord[]): Promise<ChunkSketch[]> {
  const sketches: ChunkSketch[] = [];
  let next = 0;
  const reader = async (): Promise<void> => {
    while (next < batch.length) {
      const chunk = batch[next++];
      const data = await readChunk(nw, chunk);
      if (data) sketches.push({ id: chunk.id, sketch: chunkSketch(data) });
    }
  };
  await Promise.all(Array.from({ length: READS }, reader));
  return sketches;
}

/** The chunk's bytes (a delta decoded with its bases), or undefined when it or a base is missing or damaged. */
async function readChunk(nw: Narwhal, chunk: ChunkRecord): Promise<Uint8Array | undefined> {
  try {
    return (await checkStoredChunk(chunk.id, await nw.chunks.get(chunk.id), chunk.size, true, baseReader(nw))).data;
  } catch (err) {
    if (isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt')) return undefined;
    throw err;
  }
}
