import { parseStored } from '../delta/stored-form.ts';
import type { DeltaCandidate, DeltaChunk } from '../metadata/metadata-store.ts';
import { isNarwhalError } from '../errors.ts';
import { InFlight } from '../runtime/in-flight.ts';
import { WorkerPool, transferable } from '../runtime/worker-pool.ts';
import { type BaseReader, MAX_DELTA_DEPTH } from '../serving/chunk-content.ts';
import { baseReader, readFrame } from '../serving/chunk-damage.ts';
import { walkChunkPages } from './chunk-pages.ts';
import type { SketchBackfillOptions } from './sketch-backfill.ts';
import { finishPendingDeltas } from './delta-recovery.ts';
import type { DeltaRequest, DeltaResult } from './delta-encode-worker.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * Reverse deltas (docs/storage.md, 'Delta storage'): a plain chunk is rewritten as a delta of the
 * newer chunk most like it (by resemblance sketch), when that stores it in at most `margin` of its
 * plain frame and keeps every chain within MAX_DELTA_DEPTH. Run by recompression after the sketch
 * backfill, a batch at a time, yielding like it.
 *
 * A batch's bases are chosen on the main thread and reserved together (reserve); each chosen
 * chunk's frame and its bases' are then read and handed to the delta workers
 * (delta-encode-worker.ts), which decode, check and compress them, at most IN_FLIGHT_PER_WORKER
 * per worker at once.
 *
 * Crash safety: a chunk's bases are recorded first (reserveDeltaBasesOf, so GC keeps them), then
 * the delta is written and made durable, then recorded (recordDeltas). A run first finishes or
 * undoes what an interrupted one left (delta-recovery.ts).
 */

export const DEFAULT_DELTA_LEVEL = 9;
export const DEFAULT_DELTA_MARGIN = 0.75;
/** Chunks examined per metadata query; their deltas are written and recorded together. */
const BATCH = 32;
/** Similar chunks looked up per chunk. */
const SIMILAR = 8;
/** Deltas being read or computed at once, per worker: one computing while the next is read. */
const IN_FLIGHT_PER_WORKER = 2;

export interface DeltaEncodeOptions extends SketchBackfillOptions {
  /** zstd level of the delta frames. */
  level?: number;
  /** A delta is kept only if at most this fraction of the chunk's stored size. */
  margin?: number;
  /** Threads computing deltas (default: one per core; the server's background run passes 1). */
  workers?: number;
}

export interface DeltaEncodeReport {
  /** Plain chunks with a sketch looked at. */
  examined: number;
  /** Chunks rewritten and recorded as deltas. */
  encoded: number;
  /** Stored bytes of the encoded chunks, before and after. */
  bytesBefore: number;
  bytesAfter: number;
  /** Chunks whose base, chosen with others of their batch, made a chain too long: left to a later run. */
  deferred: number;
  /** Deltas an interrupted run left: recorded, or undone. */
  recovered: number;
  undone: number;
  /** Bytes of chunk content compressed as deltas, and the milliseconds that took, summed over the workers. */
  contentBytes: number;
  encodeMs: number;
  /** The run's wall time, and the process's CPU time meanwhile (every thread), in milliseconds. */
  wallMs: number;
  cpuMs: number;
  stopped: boolean;
  /** True when every candidate was looked at (neither shouldStop nor afterBatch ended the run). */
  finished: boolean;
}

/** A chunk and the bases chosen for it, in dictionary order. */
interface Choice {
  chunk: DeltaCandidate;
  bases: Uint8Array[];
}

interface Rewrite {
  chunk: DeltaCandidate;
  bases: Uint8Array[];
  /** The plain frame, put back if the delta cannot be recorded. */
  plain: Uint8Array;
  delta: Uint8Array;
}

interface Pass {
  nw: Narwhal;
  level: number;
  margin: number;
  workers: WorkerPool<DeltaRequest, DeltaResult>;
  report: DeltaEncodeReport;
}

export async function encodeDeltas(nw: Narwhal, options: DeltaEncodeOptions = {}): Promise<DeltaEncodeReport> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const level = options.level ?? DEFAULT_DELTA_LEVEL;
  const report: DeltaEncodeReport = {
    examined: 0,
    encoded: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    deferred: 0,
    ...(await finishPendingDeltas(nw, level)),
    contentBytes: 0,
    encodeMs: 0,
    wallMs: 0,
    cpuMs: 0,
    stopped: false,
    finished: false,
  };
  // Its threads start with the first delta: a run with nothing to encode starts none.
  const workers = new WorkerPool<DeltaRequest, DeltaResult>(
    new URL('./delta-encode-worker.ts', import.meta.url),
    options.workers,
  );
  const pass: Pass = { nw, level, margin: options.margin ?? DEFAULT_DELTA_MARGIN, workers, report };
  try {
    const end = await walkChunkPages(
      (after, limit) => nw.meta.deltaCandidates(after, limit),
      BATCH,
      options.shouldStop,
      async (batch) => {
        await encodeBatch(pass, batch);
        return options.afterBatch ? options.afterBatch() : true;
      },
    );
    report.stopped = end === 'stopped';
    report.finished = end === 'finished';
  } finally {
    await workers.close();
    const used = process.cpuUsage(cpu);
    report.cpuMs = (used.user + used.system) / 1000;
    report.wallMs = performance.now() - started;
  }
  return report;
}

async function encodeBatch(pass: Pass, batch: DeltaCandidate[]): Promise<void> {
  const { nw, report } = pass;
  const chosen: Choice[] = [];
  for (const chunk of batch) {
    report.examined++;
    const base = await chooseBase(nw, chunk);
    if (base) chosen.push({ chunk, bases: [base] });
  }
  if (chosen.length === 0) return;
  const reserved = await reserve(nw, chosen, report);
  const reader = baseReader(nw);
  const jobs = new InFlight<Rewrite | undefined>(pass.workers.size * IN_FLIGHT_PER_WORKER);
  try {
    for (const choice of reserved) await jobs.add(() => deltaOf(pass, choice, reader));
  } finally {
    // No delta is left computing when the batch ends, whatever ended it.
    await jobs.settled();
  }
  jobs.throwIfFailed();
  const rewrites = jobs.results().filter((rewrite) => rewrite !== undefined);
  if (rewrites.length < reserved.length) {
    // Not worth it, or unreadable: those chunks stay plain.
    const kept = new Set(rewrites.map((rewrite) => rewrite.chunk));
    await nw.meta.dropDeltaBases(reserved.filter(({ chunk }) => !kept.has(chunk)).map(({ chunk }) => chunk.id));
  }
  if (rewrites.length > 0) await writeDeltas(pass, rewrites);
}

/** Puts the deltas, makes them durable, then records them; those the record refuses get their plain frames back. */
async function writeDeltas({ nw, level, report }: Pass, rewrites: Rewrite[]): Promise<void> {
  const records: DeltaChunk[] = [];
  for (const { chunk, bases, delta } of rewrites) {
    const { depth } = await nw.meta.deltaChain(chunk.id);
    records.push({
      id: chunk.id,
      oldStoredSize: chunk.storedSize,
      storedSize: delta.byteLength,
      bases,
      depth,
      level,
    });
  }
  // Sizes are taken first: a put may take the buffer over.
  await Promise.all(rewrites.map(({ chunk, delta }) => nw.chunks.put(chunk.id, delta)));
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
  await Promise.all(refused.map(({ chunk, plain }) => nw.chunks.put(chunk.id, plain)));
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

/**
 * Reserves the batch's chosen bases in one transaction (one durable write, not one per chunk).
 * Each base was chosen without seeing the others of the batch, so two choices may lengthen one
 * chain beyond MAX_DELTA_DEPTH together: looked at in turn, a choice whose chain is too long is
 * dropped at once (a later run chooses again). Dropping only shortens chains, so the choices kept
 * before stay within the limit, and the last one looked at is always kept: every batch progresses.
 */
async function reserve(nw: Narwhal, chosen: Choice[], report: DeltaEncodeReport): Promise<Choice[]> {
  const reserved = await nw.meta.reserveDeltaBasesOf(chosen.map(({ chunk, bases }) => ({ id: chunk.id, bases })));
  const kept: Choice[] = [];
  // Not reserved: another pass (a replica whose lease lapsed) is encoding the chunk.
  for (const choice of chosen.filter((_, i) => reserved[i])) {
    const { depth, height } = await nw.meta.deltaChain(choice.chunk.id);
    if (depth + height <= MAX_DELTA_DEPTH) {
      kept.push(choice);
      continue;
    }
    await nw.meta.dropDeltaBases([choice.chunk.id]);
    report.deferred++;
  }
  return kept;
}

/**
 * The chunk as a delta of its bases, if it is small enough; undefined when the chunk or a base is
 * missing or damaged (verify's business) or the chunk's file is not the plain frame recorded.
 */
async function deltaOf(
  { nw, level, margin, workers, report }: Pass,
  { chunk, bases }: Choice,
  reader: BaseReader,
): Promise<Rewrite | undefined> {
  try {
    const [{ stored }, ...baseFrames] = await Promise.all([chunk.id, ...bases].map((id) => readFrame(nw, id)));
    // A file not as recorded (a recompression cut short) is left to recompression.
    if (stored.byteLength !== chunk.storedSize || !isPlain(stored) || chunk.size === 0) return undefined;
    // A plain base is decoded on the worker; one stored as a delta needs its own bases, read here.
    const dictionary = await Promise.all(
      baseFrames.map(async (frame, i) =>
        isPlain(frame.stored)
          ? { id: bases[i].slice(), stored: frame.stored }
          : { id: bases[i].slice(), content: await reader.content(bases[i], 0) },
      ),
    );
    const request: DeltaRequest = {
      id: chunk.id.slice(),
      stored,
      size: chunk.size,
      bases: dictionary,
      level,
      maxBytes: Math.floor(margin * chunk.storedSize),
    };
    const transfer = [stored, ...dictionary.map((base) => base.stored)].flatMap((bytes) =>
      bytes ? transferable(bytes) : [],
    );
    const result = await workers.run(request, transfer);
    report.contentBytes += chunk.size;
    report.encodeMs += result.encodeMs;
    return result.delta ? { chunk, bases, plain: result.stored, delta: result.delta } : undefined;
  } catch (err) {
    if (isDamage(err)) return undefined;
    throw err;
  }
}

function isDamage(err: unknown): boolean {
  if (isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt')) return true;
  return (err as { code?: unknown }).code === 'chunk-corrupt'; // the worker's verdict
}

/** Whether the stored bytes are a plain frame (a malformed delta header counts as damage). */
function isPlain(stored: Uint8Array): boolean {
  try {
    return parseStored(stored).kind === 'plain';
  } catch {
    return false;
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
