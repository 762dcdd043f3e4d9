import { encodeDelta } from '../delta/stored-form.ts';
import type { DeltaCandidate, DeltaChunk } from '../metadata/metadata-store.ts';
import { isNarwhalError } from '../errors.ts';
import { type BaseReader, checkStoredChunk, MAX_DELTA_DEPTH } from '../serving/chunk-content.ts';
import { baseReader } from '../serving/chunk-damage.ts';
import { walkChunkPages } from './chunk-pages.ts';
import type { SketchBackfillOptions } from './sketch-backfill.ts';
import { finishPendingDeltas } from './delta-recovery.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * Reverse deltas (docs/storage.md, 'Delta storage'): a plain chunk is rewritten as a delta of the
 * newer chunk most like it (by resemblance sketch), when that stores it in at most `margin` of its
 * plain frame and keeps every chain within MAX_DELTA_DEPTH. Run by recompression after the sketch
 * backfill, a batch at a time, yielding like it.
 *
 * Crash safety: a chunk's base is recorded first (reserveDeltaBases, so GC keeps it), then the
 * delta is written and made durable, then recorded (recordDeltas). A run first finishes or undoes
 * what an interrupted one left (delta-recovery.ts).
 */

export const DEFAULT_DELTA_LEVEL = 9;
export const DEFAULT_DELTA_MARGIN = 0.75;
/** Chunks examined per metadata query; their deltas are written and recorded together. */
const BATCH = 32;
/** Similar chunks looked up per chunk. */
const SIMILAR = 8;

export interface DeltaEncodeOptions extends SketchBackfillOptions {
  /** zstd level of the delta frames. */
  level?: number;
  /** A delta is kept only if at most this fraction of the chunk's stored size. */
  margin?: number;
}

export interface DeltaEncodeReport {
  /** Plain chunks with a sketch looked at. */
  examined: number;
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
  base: Uint8Array;
  /** The plain frame, put back if the delta cannot be recorded. */
  plain: Uint8Array;
  delta: Uint8Array;
}

export async function encodeDeltas(nw: Narwhal, options: DeltaEncodeOptions = {}): Promise<DeltaEncodeReport> {
  const level = options.level ?? DEFAULT_DELTA_LEVEL;
  const margin = options.margin ?? DEFAULT_DELTA_MARGIN;
  const recovery = await finishPendingDeltas(nw, level);
  const report: DeltaEncodeReport = {
    examined: 0,
    encoded: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    ...recovery,
    contentBytes: 0,
    encodeMs: 0,
    stopped: false,
    finished: false,
  };
  const end = await walkChunkPages(
    (after, limit) => nw.meta.deltaCandidates(after, limit),
    BATCH,
    options.shouldStop,
    async (batch) => {
      await encodeBatch(nw, batch, level, margin, report);
      return options.afterBatch ? options.afterBatch() : true;
    },
  );
  report.stopped = end === 'stopped';
  report.finished = end === 'finished';
  return report;
}

async function encodeBatch(
  nw: Narwhal,
  batch: DeltaCandidate[],
  level: number,
  margin: number,
  report: DeltaEncodeReport,
): Promise<void> {
  const reader = baseReader(nw);
  const rewrites: Rewrite[] = [];
  // One at a time: each reservation counts in the chains the next choices see.
  for (const chunk of batch) {
    report.examined++;
    const rewrite = await deltaOf(nw, chunk, level, margin, reader, report);
    // Not reserved: another pass (a replica whose lease lapsed) is encoding the chunk.
    if (rewrite && (await nw.meta.reserveDeltaBases(chunk.id, [rewrite.base]))) rewrites.push(rewrite);
  }
  if (rewrites.length === 0) return;
  const records: DeltaChunk[] = [];
  for (const { chunk, base, delta } of rewrites) {
    const storedSize = delta.byteLength; // put may take the buffer over
    await nw.chunks.put(chunk.id, delta);
    const { depth } = await nw.meta.deltaChain(chunk.id);
    records.push({ id: chunk.id, oldStoredSize: chunk.storedSize, storedSize, bases: [base], depth, level });
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
    report.bytesBefore += rewrite.chunk.storedSize;
    report.bytesAfter += records[i].storedSize;
  }
  if (refused.length === 0) return;
  // Changed meanwhile (a base found unused or damaged, or the chunk written again by a re-push):
  // the chunk gets its plain frame back, and its record that frame's size.
  const plainSizes = refused.map(({ plain }) => plain.byteLength); // put may take the buffer over
  for (const { chunk, plain } of refused) await nw.chunks.put(chunk.id, plain);
  await nw.chunks.flush();
  await nw.meta.dropDeltaBases(refused.map((r) => r.chunk.id));
  const resized = [];
  for (const [i, { chunk }] of refused.entries()) {
    const now = await nw.meta.getChunk(chunk.id);
    if (now?.encoding === 'zstd' && now.storedSize !== plainSizes[i])
      resized.push({
        id: chunk.id,
        oldStoredSize: now.storedSize,
        storedSize: plainSizes[i],
        zstdLevel: chunk.zstdLevel ?? nw.options.zstdLevel,
      });
  }
  await nw.meta.recordRecompressed(resized);
}

/** The chunk as a delta of its best base, if one is found and the delta is small enough. */
async function deltaOf(
  nw: Narwhal,
  chunk: DeltaCandidate,
  level: number,
  margin: number,
  reader: BaseReader,
  report: DeltaEncodeReport,
): Promise<Rewrite | undefined> {
  const base = await chooseBase(nw, chunk);
  if (!base) return undefined;
  try {
    const plain = await nw.chunks.get(chunk.id);
    // A file not as recorded (a recompression cut short) is left to recompression.
    if (plain.byteLength !== chunk.storedSize) return undefined;
    const kept = new Uint8Array(plain); // a copy of its own: a put can take it over
    const { data } = await checkStoredChunk(chunk.id, plain, chunk.size, true, reader);
    if (data === undefined || data.length === 0) return undefined;
    const content = await reader.content(base, 0);
    const started = performance.now();
    const delta = encodeDelta(data, [{ id: base, content }], level);
    report.encodeMs += performance.now() - started;
    report.contentBytes += data.length;
    return delta.byteLength <= margin * chunk.storedSize ? { chunk, base, plain: kept, delta } : undefined;
  } catch (err) {
    if (isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt')) return undefined;
    throw err;
  }
}

/**
 * Of the chunks most like this one, one created after it (reverse deltas), in use and not
 * damaged, on which the chunk's chain stays within MAX_DELTA_DEPTH: most shared super-features
 * first, then the newest.
 */
async function chooseBase(nw: Narwhal, chunk: DeltaCandidate): Promise<Uint8Array | undefined> {
  const options = [];
  for (const similar of await nw.meta.similarChunks(chunk.sketch, SIMILAR)) {
    const record = await nw.meta.getChunk(similar.id);
    if (record === undefined || record.createdAt <= chunk.createdAt) continue;
    if (record.unreferencedSince !== null || record.damagedAt !== null) continue;
    options.push({ record, matches: similar.matches });
  }
  options.sort((a, b) => b.matches - a.matches || b.record.createdAt - a.record.createdAt);
  let height: number | undefined;
  for (const { record } of options) {
    height ??= (await nw.meta.deltaChain(chunk.id)).height;
    if ((await nw.meta.deltaChain(record.id)).depth + 1 + height <= MAX_DELTA_DEPTH) return record.id;
  }
  return undefined;
}
