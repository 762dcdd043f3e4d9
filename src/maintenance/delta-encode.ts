import { encodeDelta } from '../delta/stored-form.ts';
import { encodeChunk } from '../storage/chunk-codec.ts';
import type { DeltaCandidate, DeltaChunk, DeltaCursor } from '../metadata/metadata-store.ts';
import { isNarwhalError } from '../errors.ts';
import { type BaseReader, checkStoredChunk } from '../serving/chunk-content.ts';
import { baseReader } from '../serving/chunk-damage.ts';
import type { SketchBackfillOptions } from './sketch-backfill.ts';
import { finishPendingDeltas } from './delta-recovery.ts';
import { type BaseOption, DeltaBases, recordMissingPackages } from './delta-bases.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * Reverse deltas (docs/storage.md, 'Delta storage'): a plain chunk is rewritten as a delta of
 * newer chunks (delta-bases.ts: the one most like it by sketch, or the chunks at its place in its
 * package's next NAR, whichever gives the smaller delta), when that stores it in at most `margin`
 * of its plain frame. A chunk that gets none is marked (markDeltaTried) and left alone until
 * something arrives that could give it a base. Run by recompression after the sketch backfill, a
 * batch at a time, yielding like it.
 *
 * Crash safety: a chunk's bases are recorded first (reserveDeltaBases, so GC keeps them), then the
 * delta is written and made durable, then recorded (recordDeltas). A run first finishes or undoes
 * what an interrupted one left (delta-recovery.ts).
 */

export const DEFAULT_DELTA_LEVEL = 9;
export const DEFAULT_DELTA_MARGIN = 0.75;
/** Chunks examined per metadata query; their deltas are written and recorded together. */
const BATCH = 32;

export interface DeltaEncodeOptions extends SketchBackfillOptions {
  /** zstd level of the delta frames. */
  level?: number;
  /** A delta is kept only if at most this fraction of the chunk's stored size. */
  margin?: number;
}

export interface DeltaEncodeReport {
  /** Plain chunks with a sketch looked at. */
  examined: number;
  /** Of those, chunks found not worth a delta, marked so that later runs pass them by. */
  marked: number;
  /** Deltas kept whose bases came from the chunk's place in its package's next NAR (the rest: by sketch). */
  byPlace: number;
  /** Chunks rewritten and recorded as deltas. */
  encoded: number;
  /** Stored bytes of the encoded chunks, before and after. */
  bytesBefore: number;
  bytesAfter: number;
  /** Deltas an interrupted run left: recorded, or undone. */
  recovered: number;
  undone: number;
  /** Bytes of chunk content compressed as deltas, and the milliseconds that took (for speed). */
  contentBytes: number;
  encodeMs: number;
  stopped: boolean;
  /** True when every candidate was looked at (neither shouldStop nor afterBatch ended the run). */
  finished: boolean;
}

interface Rewrite {
  chunk: DeltaCandidate;
  bases: Uint8Array[];
  by: BaseOption['by'];
  /** The plain frame, put back if the delta cannot be recorded. */
  plain: Uint8Array;
  delta: Uint8Array;
}

export async function encodeDeltas(nw: Narwhal, options: DeltaEncodeOptions = {}): Promise<DeltaEncodeReport> {
  const level = options.level ?? DEFAULT_DELTA_LEVEL;
  const margin = options.margin ?? DEFAULT_DELTA_MARGIN;
  const recovery = await finishPendingDeltas(nw, level);
  await recordMissingPackages(nw);
  const report: DeltaEncodeReport = {
    examined: 0,
    marked: 0,
    byPlace: 0,
    encoded: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    ...recovery,
    contentBytes: 0,
    encodeMs: 0,
    stopped: false,
    finished: false,
  };
  let after: DeltaCursor | undefined;
  for (;;) {
    if (options.shouldStop?.()) {
      report.stopped = true;
      return report;
    }
    const batch = await nw.meta.deltaCandidates(after, BATCH);
    if (batch.length === 0) {
      report.finished = true;
      return report;
    }
    const last = batch[batch.length - 1];
    after = { createdAt: last.createdAt, id: last.id };
    await encodeBatch(nw, batch, level, margin, report);
    if (options.afterBatch && !(await options.afterBatch())) return report;
  }
}

async function encodeBatch(
  nw: Narwhal,
  batch: DeltaCandidate[],
  level: number,
  margin: number,
  report: DeltaEncodeReport,
): Promise<void> {
  const reader = baseReader(nw);
  const bases = new DeltaBases(nw);
  const rewrites: Rewrite[] = [];
  const tried: Uint8Array[] = [];
  // One at a time: each reservation counts in the chains the next choices see.
  for (const chunk of batch) {
    report.examined++;
    const rewrite = await deltaOf(nw, chunk, await bases.options(chunk), level, margin, reader, report);
    if (rewrite === 'none') tried.push(chunk.id);
    if (typeof rewrite !== 'object') continue;
    await nw.meta.reserveDeltaBases(chunk.id, rewrite.bases);
    rewrites.push(rewrite);
  }
  await nw.meta.markDeltaTried(tried, Date.now());
  report.marked += tried.length;
  if (rewrites.length === 0) return;
  const records: DeltaChunk[] = [];
  for (const { chunk, bases, delta } of rewrites) {
    const storedSize = delta.byteLength; // put may take the buffer over
    await nw.chunks.put(chunk.id, delta);
    const { depth } = await nw.meta.deltaChain(chunk.id);
    records.push({ id: chunk.id, oldStoredSize: chunk.storedSize, storedSize, bases, depth, level });
  }
  await nw.chunks.flush();
  await nw.meta.recordDeltas(records);
  const refused: Rewrite[] = [];
  for (const [i, rewrite] of rewrites.entries()) {
    if ((await nw.meta.getChunk(rewrite.chunk.id))?.encoding !== 'delta') {
      refused.push(rewrite);
      continue;
    }
    report.encoded++;
    if (rewrite.by === 'place') report.byPlace++;
    report.bytesBefore += rewrite.chunk.storedSize;
    report.bytesAfter += records[i].storedSize;
  }
  if (refused.length === 0) return;
  // Changed meanwhile (a base found unused or damaged): the chunk gets its plain frame back.
  for (const { chunk, plain } of refused) await nw.chunks.put(chunk.id, plain);
  await nw.chunks.flush();
  await nw.meta.dropDeltaBases(refused.map((r) => r.chunk.id));
}

/**
 * The chunk as the smallest of its delta options, if one is at most `margin` of its plain frame;
 * 'none' when none is (or it has no option), 'skipped' when it cannot be judged now.
 */
async function deltaOf(
  nw: Narwhal,
  chunk: DeltaCandidate,
  options: BaseOption[],
  level: number,
  margin: number,
  reader: BaseReader,
  report: DeltaEncodeReport,
): Promise<Rewrite | 'none' | 'skipped'> {
  if (options.length === 0) return 'none';
  try {
    const plain = await nw.chunks.get(chunk.id);
    // A file not as recorded (a recompression cut short) is left to recompression.
    if (plain.byteLength !== chunk.storedSize) return 'skipped';
    const kept = new Uint8Array(plain); // a copy of its own: a put can take it over
    const { data } = await checkStoredChunk(chunk.id, plain, chunk.size, true, reader);
    if (data === undefined || data.length === 0) return 'none';
    let best: Rewrite | undefined;
    for (const option of options) {
      const bases = await Promise.all(option.bases.map(async (id) => ({ id, content: await reader.content(id, 0) })));
      const started = performance.now();
      const delta = encodeDelta(data, bases, level);
      report.encodeMs += performance.now() - started;
      report.contentBytes += data.length;
      if (best === undefined || delta.byteLength < best.delta.byteLength)
        best = { chunk, bases: option.bases, by: option.by, plain: kept, delta };
    }
    if (best === undefined || best.delta.byteLength > margin * chunk.storedSize) return 'none';
    // A frame as ingested (a fast level) overstates what recompression would store: the delta must
    // also beat the plain frame at its own level.
    if (chunk.zstdLevel === null || chunk.zstdLevel < level) {
      const started = performance.now();
      const plainAtLevel = (await encodeChunk(data, level)).byteLength;
      report.encodeMs += performance.now() - started;
      if (best.delta.byteLength > margin * plainAtLevel) return 'none';
    }
    return best;
  } catch (err) {
    if (isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt')) return 'skipped';
    throw err;
  }
}
