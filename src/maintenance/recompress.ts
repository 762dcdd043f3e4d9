import { randomUUID } from 'node:crypto';
import type { ChunkRecord, RecompressedChunk } from '../metadata/metadata-store.ts';
import { hasCompaction } from '../storage/chunk-store-capabilities.ts';
import { WorkerPool, transferable } from '../runtime/worker-pool.ts';
import type { EncodeRequest, EncodeResult } from '../storage/zstd-encode-worker.ts';
import { isNarwhalError } from '../errors.ts';
import { checkChunk } from '../serving/chunk-check.ts';
import { claimsDelta } from '../delta/stored-form.ts';
import { backfillSketches } from './sketch-backfill.ts';
import { type DeltaEncodeReport, encodeDeltas } from './delta-encode.ts';
import { type PagesEnd, walkChunkPages } from './chunk-pages.ts';
import { chunkEntries } from '../chunking/chunk-table.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * Recompression: chunks are stored at a fast zstd level while a push waits (1 by default), then
 * rewritten at a high level once the server has time, which stores release series markedly
 * smaller (docs/benchmarks.md, 'Recompression'). zstd decompresses every level at the same
 * speed, so downloads lose nothing.
 *
 * A chunk file is replaced only by a frame at least MIN_SAVING bytes smaller, written atomically
 * like any put and made durable before its record changes, so a reader sees either frame (both
 * decode to the chunk) and never a record smaller than the file. The records and the stored
 * sizes of the NARs that use the chunks change in one transaction (recordRecompressed), so
 * narinfo FileSize and `.nar.zst` lengths follow; a download that promised the old length makes
 * up the saved bytes with a skippable frame (nar-reader.ts). Chunks not worth rewriting keep
 * their file and get the level, so no run tries them again. A file found smaller than its record
 * (a run that crashed between the two) is recorded as it is.
 *
 * A run first records the resemblance sketches of chunks that have none (sketch-backfill.ts): those
 * ingested since the last run; then rewrites older chunks as deltas of newer ones (delta-encode.ts).
 *
 * One run at a time across processes sharing the metadata store, by the lease RECOMPRESS_LEASE.
 */

export const DEFAULT_RECOMPRESS_LEVEL = 19;
/** A smaller frame replaces the stored one only if it saves at least this (and a skippable frame needs 8). */
export const MIN_SAVING = 64;
export const RECOMPRESS_LEASE = 'recompress';
/** Renewed after every batch (seconds of work): a run that died leaves the lease to others after this. */
const LEASE_TTL_MS = 120_000;
/**
 * Packs at most this live are compacted after a run that stored deltas: copying up to 9 bytes to
 * reclaim each dead one, in the background. A pass turns a few chunks of each older version into
 * deltas, scattered over packs that compaction filled with everything else: at 75% the mass
 * rebuild's savings stayed on disk in a shared store (benchmarks.md, "Compaction after a delta pass").
 */
const COMPACT_AFTER_DELTAS_LIVE_AT_MOST = 0.9;
/** Chunks read per metadata query and recorded per transaction. */
const BATCH = 64;
/** NARs looked up per metadata query in the walk in NAR order. */
const NAR_PAGE = 16;

export interface RecompressOptions {
  level?: number;
  /** Compression threads, of the delta pass (default: DELTA_WORKERS) and of recompression (default: one per core). */
  workers?: number;
  /** Asked between batches: true ends the run early (the server yields to pushes). */
  shouldStop?: () => boolean;
  /** Called after each batch recompressed, with chunks read so far. */
  onProgress?: (chunks: number) => void;
  /**
   * Also store older chunks as deltas of newer ones (delta-encode.ts). Off by default until
   * serving them is as fast as serving plain frames: see docs/storage.md, 'Delta storage'.
   */
  deltas?: boolean;
}

export interface RecompressReport {
  /** Chunks whose resemblance sketch the run recorded (sketch-backfill.ts) before recompressing. */
  sketched: number;
  /** Chunks rewritten as deltas (delta-encode.ts) before recompressing. */
  deltas: number;
  /** The delta pass's own report (its speed, what it recovered), when it ran. */
  deltaPass?: DeltaEncodeReport;
  /** Plain chunks the delta pass looked at; of those, found not worth a delta (and marked so); deltas on bases by place. */
  deltasExamined: number;
  deltasMarked: number;
  deltasByPlace: number;
  /** Chunks read and recompressed. */
  chunks: number;
  /** Of those, chunks whose file was replaced by a smaller one. */
  rewritten: number;
  /** Stored bytes of the chunks recompressed or stored as deltas, before and after. */
  bytesBefore: number;
  bytesAfter: number;
  /** Chunks skipped: missing or damaged files (verify's business) or changed meanwhile. */
  skipped: number;
  /** True when shouldStop ended the run before every chunk was done. */
  stopped: boolean;
  /** Set when the run did nothing because another process was recompressing. */
  busy?: string;
  /** Bytes the store gave back after the run (a pack store compacts away the replaced frames). */
  reclaimedBytes?: number;
}

export async function recompressChunks(nw: Narwhal, options: RecompressOptions = {}): Promise<RecompressReport> {
  let report: RecompressReport;
  try {
    report = await recompressUnderLease(nw, options);
  } catch (err) {
    nw.metrics.recordRecompression({ outcome: 'failed' });
    throw err;
  }
  nw.metrics.recordRecompression({
    outcome: report.busy ? 'busy' : report.stopped ? 'stopped' : 'done',
    chunks: report.chunks,
    rewritten: report.rewritten,
    deltas: report.deltas,
    bytesBefore: report.bytesBefore,
    bytesAfter: report.bytesAfter,
  });
  return report;
}

async function recompressUnderLease(nw: Narwhal, options: RecompressOptions): Promise<RecompressReport> {
  const level = options.level ?? DEFAULT_RECOMPRESS_LEVEL;
  const report: RecompressReport = {
    sketched: 0,
    deltas: 0,
    deltasExamined: 0,
    deltasMarked: 0,
    deltasByPlace: 0,
    chunks: 0,
    rewritten: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    skipped: 0,
    stopped: false,
  };
  const holder = `recompress-${randomUUID()}`;
  if (!(await nw.meta.tryAcquireLease(RECOMPRESS_LEASE, holder, LEASE_TTL_MS)))
    return { ...report, busy: 'another process is recompressing' };
  const renewLease = (): Promise<boolean> => nw.meta.tryAcquireLease(RECOMPRESS_LEASE, holder, LEASE_TTL_MS);
  let encoders: WorkerPool<EncodeRequest, EncodeResult> | undefined;
  try {
    const backfill = await backfillSketches(nw, { shouldStop: options.shouldStop, afterBatch: renewLease });
    report.sketched = backfill.sketched;
    report.stopped = backfill.stopped;
    let ready = backfill.finished;
    if (ready && options.deltas) {
      const deltas = await encodeDeltas(nw, {
        shouldStop: options.shouldStop,
        afterBatch: renewLease,
        workers: options.workers,
      });
      report.deltaPass = deltas;
      report.deltas = deltas.encoded;
      report.deltasExamined = deltas.examined;
      report.deltasMarked = deltas.marked;
      report.deltasByPlace = deltas.byPlace;
      report.bytesBefore += deltas.bytesBefore;
      report.bytesAfter += deltas.bytesAfter;
      report.stopped = deltas.stopped;
      ready = deltas.finished;
    }
    if (ready) {
      const pool = new WorkerPool<EncodeRequest, EncodeResult>(
        new URL('../storage/zstd-encode-worker.ts', import.meta.url),
        options.workers,
      );
      encoders = pool;
      const afterBatch = async (batch: ChunkRecord[]): Promise<boolean> => {
        await recompressBatch(nw, batch, level, pool, report);
        options.onProgress?.(report.chunks);
        return renewLease();
      };
      let end = await walkNarsToRecompress(nw, options.shouldStop, afterBatch);
      // What no NAR reached: chunks skipped above (missing or damaged files) get their second look.
      if (end === 'finished')
        end = await walkChunkPages(
          (after, limit) => nw.meta.chunksToRecompress(after, limit),
          BATCH,
          options.shouldStop,
          afterBatch,
        );
      report.stopped = end === 'stopped';
    }
  } finally {
    await encoders?.close();
    await nw.meta.releaseLease(RECOMPRESS_LEASE, holder);
  }
  if (report.rewritten > 0 || report.deltas > 0) {
    // The replaced frames are dead space in a pack store until it compacts.
    // After deltas, more eagerly: they rewrite chunks that older runs packed tightly, often fewer
    // than half of a pack's, and what they save would otherwise stay on disk.
    const options = report.deltas > 0 ? { liveAtMost: COMPACT_AFTER_DELTAS_LIVE_AT_MOST } : undefined;
    const compacted = hasCompaction(nw.chunks) ? await nw.chunks.compact(Date.now(), options) : undefined;
    if (compacted) report.reclaimedBytes = compacted.reclaimedBytes;
    // A run rewrites many records: give the log's space back while things are quiet.
    await nw.meta.checkpoint?.();
  }
  return report;
}

/**
 * Hands `handle` the chunks still as ingested, NAR by NAR (oldest first), in each NAR's order,
 * BATCH at a time; a chunk shared with an earlier NAR went with that one. Rewritten in this order,
 * a NAR's frames lie in its order in the pack they go to, so that a download reads them in a few
 * long reads rather than one per frame, as a walk by chunk id left them (benchmarks.md, 'Serving
 * old versions').
 */
async function walkNarsToRecompress(
  nw: Narwhal,
  shouldStop: (() => boolean) | undefined,
  handle: (batch: ChunkRecord[]) => Promise<boolean>,
): Promise<PagesEnd> {
  let afterId = 0;
  for (;;) {
    if (shouldStop?.()) return 'stopped';
    const nars = await nw.meta.narsToRecompress(afterId, NAR_PAGE);
    if (nars.length === 0) return 'finished';
    afterId = nars[nars.length - 1].id;
    for (const nar of nars) {
      const pending = new Map<string, ChunkRecord>();
      for (const chunk of await nw.meta.narChunks(nar.id))
        if (isAsIngested(chunk)) pending.set(Buffer.from(chunk.id).toString('hex'), chunk);
      const inOrder: ChunkRecord[] = [];
      for (const entry of chunkEntries(nar.chunkTable)) {
        const key = Buffer.from(entry.id).toString('hex');
        const chunk = pending.get(key);
        if (chunk === undefined) continue;
        inOrder.push(chunk);
        pending.delete(key);
      }
      for (let i = 0; i < inOrder.length; i += BATCH) {
        if (shouldStop?.()) return 'stopped';
        if (!(await handle(inOrder.slice(i, i + BATCH)))) return 'ended';
      }
    }
  }
}

/** What chunksToRecompress lists: a plain chunk as ingested, in use and not damaged. */
function isAsIngested(chunk: ChunkRecord): boolean {
  return (
    chunk.zstdLevel === null &&
    chunk.encoding === 'zstd' &&
    chunk.damagedAt === null &&
    chunk.unreferencedSince === null
  );
}

async function recompressBatch(
  nw: Narwhal,
  batch: ChunkRecord[],
  level: number,
  encoders: WorkerPool<EncodeRequest, EncodeResult>,
  report: RecompressReport,
): Promise<void> {
  const smaller: RecompressedChunk[] = [];
  const notWorth: Uint8Array[] = [];
  const results: Awaited<ReturnType<typeof recompressOne>>[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < batch.length) {
      const i = next++;
      results[i] = await recompressOne(nw, batch[i], level, encoders);
    }
  };
  await Promise.all(Array.from({ length: encoders.size * 2 }, worker));
  // Written one after another in the batch's order, which keeps a NAR's frames in its order.
  for (const [i, chunk] of batch.entries()) {
    const result = results[i];
    if (result === undefined) {
      report.skipped++;
      continue;
    }
    const { storedLength, frame } = result;
    report.chunks++;
    report.bytesBefore += chunk.storedSize;
    const storedSize = frame.byteLength; // put may take the buffer over
    if (storedSize + MIN_SAVING <= storedLength) {
      await nw.chunks.put(chunk.id, frame);
      smaller.push({ id: chunk.id, oldStoredSize: chunk.storedSize, storedSize, zstdLevel: level });
      report.bytesAfter += storedSize;
    } else if (storedLength < chunk.storedSize) {
      // Rewritten by a run that crashed before recording it: record the file as it is.
      smaller.push({ id: chunk.id, oldStoredSize: chunk.storedSize, storedSize: storedLength, zstdLevel: level });
      report.bytesAfter += storedLength;
    } else {
      notWorth.push(chunk.id);
      report.bytesAfter += chunk.storedSize;
    }
  }
  // Durable files before records that promise their sizes.
  await nw.chunks.flush();
  const recorded = await nw.meta.recordRecompressed(smaller);
  report.rewritten += recorded;
  report.skipped += smaller.length - recorded;
  await nw.meta.setChunkLevels(notWorth, level);
}

/**
 * The chunk as one zstd frame at `level`, with the length of its stored file; undefined when the
 * file is missing, damaged, or bigger than recorded (all verify's business).
 */
async function recompressOne(
  nw: Narwhal,
  chunk: ChunkRecord,
  level: number,
  encoders: WorkerPool<EncodeRequest, EncodeResult>,
): Promise<{ storedLength: number; frame: Uint8Array } | undefined> {
  let data: Uint8Array;
  let storedLength: number;
  try {
    const stored = await nw.chunks.get(chunk.id);
    storedLength = stored.byteLength;
    if (storedLength > chunk.storedSize) return undefined;
    // Never recompressed as if plain: chunksToRecompress lists plain chunks only, and a file
    // rewritten as a delta before its record says so is left to the pass that wrote it.
    if (claimsDelta(stored)) return undefined;
    data = (await checkChunk(chunk.id, stored, chunk.size, true)).data!;
  } catch (err) {
    if (isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt')) return undefined;
    throw err;
  }
  return { storedLength, frame: await encoders.run({ data, level }, transferable(data)) };
}

/** One line for logs and the CLI. */
export function describeRecompression(report: RecompressReport): string {
  if (report.busy !== undefined) return `skipped: ${report.busy}`;
  const saved = report.bytesBefore - report.bytesAfter;
  return (
    `${report.sketched > 0 ? `sketched ${report.sketched} chunks; ` : ''}${report.deltasExamined > 0 ? `${report.deltas} of ${report.deltasExamined} chunks examined stored as deltas (${report.deltasByPlace} on bases by place); ` : ''}recompressed ${report.chunks} chunks (${report.rewritten} rewritten smaller), ${report.bytesBefore} -> ${report.bytesAfter} stored bytes ` +
    `(${saved} saved), ${report.skipped} skipped${report.stopped ? '; stopped early, to resume' : ''}`
  );
}
