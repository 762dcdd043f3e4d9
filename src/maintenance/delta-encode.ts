import { parseStored } from '../delta/stored-form.ts';
import type { DeltaCandidate, DeltaChunk, DeltaCursor } from '../metadata/metadata-store.ts';
import { isNarwhalError } from '../errors.ts';
import { InFlight } from '../runtime/in-flight.ts';
import { WorkerPool, transferable } from '../runtime/worker-pool.ts';
import { MAX_DELTA_DEPTH } from '../serving/chunk-content.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { type BatchInputs, readBatchInputs } from './delta-batch-inputs.ts';
import type { SketchBackfillOptions } from './sketch-backfill.ts';
import { finishPendingDeltas } from './delta-recovery.ts';
import type { DeltaBaseInput, DeltaRequest, DeltaResult } from './delta-encode-worker.ts';
import { type BaseOption, DeltaBases, recordMissingPackages } from './delta-bases.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * Reverse deltas (docs/storage.md, 'Delta storage'): a plain chunk is rewritten as a delta of
 * newer chunks (delta-bases.ts: the one most like it by sketch, or the chunks at its place in its
 * package's next NAR, whichever gives the smaller delta), when that stores it in at most `margin`
 * of its plain frame and keeps every chain within MAX_DELTA_DEPTH. A chunk that gets none is
 * marked (markDeltaTried) and left alone until something arrives that could give it a base. Run
 * by recompression after the sketch backfill, newest chunks first, a batch at a time, yielding
 * like it.
 *
 * A batch's options are found on the main thread; each chunk's frame and its bases' are then read
 * and handed to the delta workers (delta-encode-worker.ts), which decode, check and compress them
 * with every option, keeping the smallest, at most IN_FLIGHT_PER_WORKER per worker at once.
 *
 * Crash safety: the winners' bases are recorded together (reserveDeltaBasesOf, so GC keeps them)
 * before any delta is written; then the deltas are written and made durable, then recorded
 * (recordDeltas). A run first finishes or undoes what an interrupted one left (delta-recovery.ts).
 */

export const DEFAULT_DELTA_LEVEL = 3;
export const DEFAULT_DELTA_MARGIN = 0.75;
/** Chunks examined per metadata query; their deltas are written and recorded together. */
const BATCH = 32;
/**
 * Threads computing deltas unless told: one, as the main thread (choosing bases, reading frames,
 * recording) bounds the pass; a second worker added 25-40 MB of peak RSS and no speed
 * (docs/benchmarks.md, "Delta memory and serving speed").
 */
export const DELTA_WORKERS = 1;
/** Deltas being read or computed at once, per worker: one computing while the next is read. */
const IN_FLIGHT_PER_WORKER = 2;

export interface DeltaEncodeOptions extends SketchBackfillOptions {
  /** zstd level of the delta frames. */
  level?: number;
  /** A delta is kept only if at most this fraction of the chunk's stored size. */
  margin?: number;
  /** Threads computing deltas (default DELTA_WORKERS). */
  workers?: number;
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

/** A chunk and the bases of its delta, in dictionary order. */
interface Choice {
  chunk: DeltaCandidate;
  bases: Uint8Array[];
}

interface Rewrite extends Choice {
  by: BaseOption['by'];
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
  const recovery = await finishPendingDeltas(nw, level);
  await recordMissingPackages(nw);
  const report: DeltaEncodeReport = {
    examined: 0,
    marked: 0,
    byPlace: 0,
    encoded: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    deferred: 0,
    ...recovery,
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
    options.workers ?? DELTA_WORKERS,
  );
  const pass: Pass = { nw, level, margin: options.margin ?? DEFAULT_DELTA_MARGIN, workers, report };
  try {
    let after: DeltaCursor | undefined;
    for (;;) {
      if (options.shouldStop?.()) {
        report.stopped = true;
        break;
      }
      const batch = await nw.meta.deltaCandidates(after, BATCH);
      if (batch.length === 0) {
        report.finished = true;
        break;
      }
      const last = batch[batch.length - 1];
      after = { createdAt: last.createdAt, id: last.id };
      await encodeBatch(pass, batch);
      if (options.afterBatch && !(await options.afterBatch())) break;
    }
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
  const bases = new DeltaBases(nw);
  const tried: Uint8Array[] = [];
  const chosen: { chunk: DeltaCandidate; options: BaseOption[] }[] = [];
  for (const chunk of batch) {
    report.examined++;
    const options = await bases.options(chunk);
    if (options.length === 0) tried.push(chunk.id);
    else chosen.push({ chunk, options });
  }
  const inputs = await readBatchInputs(
    nw,
    chosen.map(({ chunk }) => chunk.id),
    chosen.flatMap(({ options }) => options.flatMap((option) => option.bases)),
  );
  const jobs = new InFlight<Rewrite | Uint8Array | undefined>(pass.workers.size * IN_FLIGHT_PER_WORKER);
  try {
    for (const { chunk, options } of chosen) await jobs.add(() => deltaOf(pass, chunk, options, inputs));
  } finally {
    // No delta is left computing when the batch ends, whatever ended it.
    await jobs.settled();
  }
  jobs.throwIfFailed();
  const computed: Rewrite[] = [];
  for (const result of jobs.results()) {
    if (result instanceof Uint8Array) tried.push(result);
    else if (result) computed.push(result);
  }
  await nw.meta.markDeltaTried(tried, Date.now());
  report.marked += tried.length;
  if (computed.length === 0) return;
  const kept = new Set(await reserve(nw, computed, report));
  const rewrites = computed.filter((rewrite) => kept.has(rewrite));
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
    if (rewrite.by === 'place') report.byPlace++;
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
async function reserve<C extends Choice>(nw: Narwhal, chosen: C[], report: DeltaEncodeReport): Promise<C[]> {
  const reserved = await nw.meta.reserveDeltaBasesOf(chosen.map(({ chunk, bases }) => ({ id: chunk.id, bases })));
  const kept: C[] = [];
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
 * The chunk as the smallest of its options' deltas, if at most `margin` of its plain frame (and,
 * for a frame still at a faster level, of its frame at the delta's level: what recompression
 * would store); its id when none is (to be marked); undefined when it cannot be judged now (the
 * chunk or a base missing or damaged, verify's business; a file not the plain frame recorded).
 */
async function deltaOf(
  { level, margin, workers, report }: Pass,
  chunk: DeltaCandidate,
  options: BaseOption[],
  { frames, contents }: BatchInputs,
): Promise<Rewrite | Uint8Array | undefined> {
  try {
    const frame = frames.get(chunkHex(chunk.id))!;
    if (frame instanceof Error) throw frame;
    // A copy of its own, moved to the worker: the chunk may be another's base in this batch.
    const stored = new Uint8Array(frame);
    // A file not as recorded (a recompression cut short) is left to recompression.
    if (stored.byteLength !== chunk.storedSize || !isPlain(stored) || chunk.size === 0) return undefined;
    // A plain base is decoded on the worker; one stored as a delta comes decoded with its chain.
    const inputs = options.map((option) =>
      option.bases.map((id): DeltaBaseInput => {
        const base = frames.get(chunkHex(id))!;
        if (base instanceof Error) throw base;
        if (isPlain(base)) return { id: id.slice(), stored: base };
        const content = contents.get(chunkHex(id))!;
        if (content instanceof Error) throw content;
        return { id: id.slice(), content };
      }),
    );
    const request: DeltaRequest = {
      id: chunk.id.slice(),
      stored,
      size: chunk.size,
      options: inputs,
      level,
      maxBytes: Math.floor(margin * chunk.storedSize),
      plainMargin: chunk.zstdLevel === null || chunk.zstdLevel < level ? margin : undefined,
    };
    // Only the chunk's frame is moved: the batch's other chunks may share its bases.
    const result = await workers.run(request, transferable(stored));
    report.contentBytes += chunk.size * options.length;
    report.encodeMs += result.encodeMs;
    if (!result.delta || result.option === undefined) return chunk.id;
    const { by, bases } = options[result.option];
    return { chunk, bases, by, plain: result.stored, delta: result.delta };
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
