import { randomUUID } from 'node:crypto';
import { NarwhalError } from '../errors.ts';
import type { StoredChunkInfo } from '../storage/chunk-store.ts';
import {
  hasCompaction,
  hasConditionalDelete,
  hasLeftoverCleanup,
  type ConditionalDelete,
} from '../storage/chunk-store-capabilities.ts';
import { HOLD_STALE_MS } from '../context/ingest-holds.ts';
import type { Narwhal } from '../context/narwhal.ts';
import type { CacheRecord, PathRecord } from '../metadata/metadata-store.ts';
import { dropDeltasOfGoneNars } from '../serving/prepared-deltas.ts';

/**
 * Garbage collection. One run:
 *
 * 1. Expire paths: in each cache with a retention, delete the paths that are not live. Live: pinned,
 *    accessed or uploaded within the retention, or in the closure (references, followed within the
 *    cache) of a live path, so every remaining path keeps its references, as uploads require.
 * 2. Note `unreferenced_since` on NARs no path uses, then delete the NARs so noted at or before the
 *    cutoff. Deleting a NAR notes `unreferenced_since` on the chunks it leaves unused.
 * 3. Delete the chunk records so noted at or before the cutoff, then their files. A chunk that is
 *    a base of a chunk stored as a delta (chunk_bases) is skipped while that chunk has a record:
 *    recordDeltas adds bases only in use and unflagged, in a transaction serialized with this
 *    delete (and the foreign key on chunk_bases.base_id refuses the delete besides), so a base
 *    cannot go while a dependant can still be read. Deleting a dependant deletes its chunk_bases
 *    rows, and its bases, still noted unused, go in a later batch or run.
 *
 * A base outlives its dependants through the delta pass's crashes too (delta-encode.ts), as its
 * order keeps a delta file from ever existing without chunk_bases rows that name its bases:
 * - The bases are recorded first (reserveDeltaBases: rows on a chunk still plain, in one write
 *   with the check that the chunk is plain and not reserved by another pass), then the delta is
 *   written and flushed, then recorded (recordDeltas). A kill after the reservation leaves rows
 *   that keep the bases until the next run's recovery (delta-recovery.ts) records the delta or,
 *   the file being plain, drops them; a delta that can no longer be recorded is written plain
 *   again before its rows go. So a delta file whose chunk has a record always has its rows.
 * - A delta file whose chunk has no record is an orphan (GC deleted the chunk, unused, while the
 *   pass wrote it): step 4 deletes it like any orphan, and nothing can read it, as no NAR uses it.
 * - A re-push that writes a chunk again drops its reservation (commitNar), so that recordDeltas
 *   refuses it, and the pass puts the plain frame back. Between that commit and the put, a delta
 *   the pass wrote after the re-push's file is on disk without rows: its bases were in use when
 *   chosen, so only a GC whose grace is shorter than one batch of the pass could delete one then.
 * - verify, GC and readers treat a chunk's file by its bytes: a plain file with rows (a
 *   reservation) reads as plain; the rows only keep bases a moment longer.
 * Killed at random moments side by side with GC: test/crash/delta-gc-kill.test.ts.
 * 4. Delete chunk files that have no record (uploads that failed or crashed, deletions a crash
 *    interrupted) and were written at or before the cutoff, and leftovers of interrupted writes.
 * 5. Delete cache file contents (logs, listings: src/tenancy/cache-files.ts) that no file uses and
 *    that nothing was written to for ABANDONED_FILE_UPLOAD_MS: uploads a crash cut off. A live
 *    upload whose content this takes fails cleanly (503) and is sent again.
 *
 * Metadata goes first, files after: a crash in between leaves files without records, which the
 * next run's step 4 removes. Nothing is ever deleted in the run that first finds it unused unless
 * the grace period is 0.
 *
 * Cutoffs: records go when marked at or before the record cutoff: the earlier of (now - grace)
 * and just before the oldest ingest still running in any process started (ingest-holds.ts); files go
 * when written at or before the file cutoff, CLOCK_MARGIN_MS earlier still (file times come from
 * a coarser clock than Date.now()). Why that makes GC safe while pushes run: an ingest I, started
 * at S, either reuses a stored chunk or writes its file.
 * - Reuse needs the chunk's record with no `unreferenced_since` (mayReuseChunk). That mark is set
 *   only later, at a time >= S, and a record is deleted only when its mark is at or before the
 *   record cutoff, which is < S while I runs. Once I commits, its NAR uses the chunk, and neither marks nor deletes
 *   touch a used chunk (each check-and-write is one statement). So the record survives, and with
 *   it the file: files are deleted only for records deleted, or when no record exists.
 * - A file I writes is dated >= S minus the clock's coarseness, so it is newer than the file
 *   cutoff while I runs, and deleteUnlessNewer spares it: that check is atomic with respect to the
 *   write (the file is renamed aside first, and put back if it turns out to be new), so an old file
 *   found by GC and replaced by I's write just after cannot take I's copy with it. When I commits,
 *   the record exists again (the commit re-creates a record GC deleted meanwhile).
 * - Stores without ConditionalDelete (S3 has no portable conditional delete): GC notes each
 *   deletion in the metadata store before it deletes, in a transaction that checks the chunk
 *   still has no record, and notes when the deletion finished. I's commit is refused (503, push
 *   again) when a chunk it uses has a deletion running or finished at or after S, since the file
 *   I wrote may be the one deleted; a commit before the note makes the record that stops it.
 * - An ingest GC does not see (its hold was published after GC read the holds) started after GC
 *   read the time: it finds every record GC may delete already marked, so it reuses none of them,
 *   and what it writes is newer than the file cutoff even with a grace of 0.
 *
 * NARs: a NAR uploaded whose narinfo has not arrived yet is unused; the grace period covers that
 * gap, and re-uploading a NAR clears its mark. A client that found the NAR present (HEAD) and skips
 * uploading it can still lose it to a GC that runs in the moment before its narinfo arrives; the
 * narinfo upload then fails with "no NAR with NarHash ..." (never a path without its NAR: putPath
 * checks inside its transaction), and pushing again uploads the NAR.
 *
 * One run at a time: a run takes the lease GC_LEASE in the metadata store, shared by every process
 * and replica, and renews it as it goes; a run that finds it held by another does nothing and says
 * so (`skipped`). Concurrent runs would be safe by the argument above; the lease only spares the
 * duplicate work.
 */

export const DEFAULT_GRACE_MS = 3_600_000;
/** File times come from a coarser clock than Date.now(): the file cutoff is this much earlier. */
export const CLOCK_MARGIN_MS = 1_000;
/** Records deleted per transaction: bounds how long a run holds the database's write lock. */
const BATCH = 500;
/** A cache file upload that wrote nothing for this long counts as abandoned (the server's idle timeout is minutes). */
export const ABANDONED_FILE_UPLOAD_MS = 6 * 3_600_000;
/** The lease a GC run holds in the metadata store. */
export const GC_LEASE = 'gc';
/** How long the lease lasts unless renewed: a run that died leaves it to others after this. */
export const GC_LEASE_TTL_MS = 600_000;
/** The lease is renewed once this much of its TTL has passed. */
const RENEW_AFTER_MS = GC_LEASE_TTL_MS / 3;

export interface GcOptions {
  /** How long a NAR or chunk stays after it was found unused (default 1 h). */
  graceMs?: number;
  /** The time retention and abandoned file uploads are measured against (default now; tests move it forward). */
  now?: number;
  /** Overrides CLOCK_MARGIN_MS (tests). */
  clockMarginMs?: number;
  /** Called after each batch, with what the run has deleted so far. */
  onProgress?: (report: Readonly<GcReport>) => void;
}

export interface GcReport {
  /** Paths expired by retention. */
  paths: number;
  nars: number;
  /** Sum of the deleted NARs' sizes. */
  narBytes: number;
  /** Chunk records deleted. */
  chunks: number;
  /** Uncompressed bytes of those chunks. */
  chunkBytes: number;
  /** Stored (compressed) bytes of those chunks. */
  storedBytes: number;
  /** Chunk files deleted, with or without a record, and their bytes. */
  files: number;
  fileBytes: number;
  /** Of those, files that had no record (orphans). */
  orphanFiles: number;
  /** Temporary files of interrupted writes removed. */
  leftoverFiles: number;
  /** Pack files rewritten without their deleted chunks (pack store), and the bytes that gave back. */
  compactedPacks: number;
  reclaimedBytes: number;
  /** Cache file contents of abandoned uploads deleted, and their bytes. */
  abandonedFileUploads: number;
  abandonedFileBytes: number;
  /** Set when the run did nothing, with the reason (another process was collecting). */
  skipped?: string;
}

/** Renews the run's lease once a third of its TTL has passed; throws if another holder took it. */
type KeepLease = () => Promise<void>;

export async function runGc(nw: Narwhal, options: GcOptions = {}): Promise<GcReport> {
  let report: GcReport;
  try {
    report = await collectUnderLease(nw, options);
  } catch (err) {
    nw.metrics.recordGc({ outcome: 'failed' });
    throw err;
  }
  nw.metrics.recordGc({
    outcome: report.skipped ? 'skipped' : 'done',
    paths: report.paths,
    nars: report.nars,
    chunks: report.chunks,
    files: report.files,
    reclaimedBytes: report.fileBytes + report.reclaimedBytes,
  });
  return report;
}

async function collectUnderLease(nw: Narwhal, options: GcOptions): Promise<GcReport> {
  const report: GcReport = {
    paths: 0,
    nars: 0,
    narBytes: 0,
    chunks: 0,
    chunkBytes: 0,
    storedBytes: 0,
    files: 0,
    fileBytes: 0,
    orphanFiles: 0,
    leftoverFiles: 0,
    compactedPacks: 0,
    reclaimedBytes: 0,
    abandonedFileUploads: 0,
    abandonedFileBytes: 0,
  };
  const holder = `gc-${randomUUID()}`;
  if (!(await nw.meta.tryAcquireLease(GC_LEASE, holder, GC_LEASE_TTL_MS)))
    return { ...report, skipped: 'another GC is running' };
  let renewedAt = Date.now();
  const keepLease: KeepLease = async () => {
    options.onProgress?.(report);
    if (Date.now() - renewedAt < RENEW_AFTER_MS) return;
    if (!(await nw.meta.tryAcquireLease(GC_LEASE, holder, GC_LEASE_TTL_MS))) {
      throw new NarwhalError('unavailable', 'GC lost its lease to another process; stopped');
    }
    renewedAt = Date.now();
  };
  try {
    await collect(nw, options, report, keepLease);
    // Upgrades prepared ahead whose NAR is gone are of no use, and their bases may be gone too.
    if (report.nars > 0) await dropDeltasOfGoneNars(nw);
  } finally {
    await nw.meta.releaseLease(GC_LEASE, holder);
  }
  return report;
}

/** Paths of the cache last used before this time expire, unless live; undefined: the cache keeps paths forever. */
function retentionCutoff(cache: CacheRecord, now: number): number | undefined {
  return cache.retention > 0 ? now - cache.retention * 1000 : undefined;
}

/**
 * The paths the next GC run would expire from the cache if it ran at `now`, the longest unused
 * first, at most `limit`: past retention, not pinned, not in the closure of a live path.
 */
export async function gcNext(nw: Narwhal, cache: CacheRecord, limit: number, now = Date.now()): Promise<PathRecord[]> {
  const unusedBefore = retentionCutoff(cache, now);
  return unusedBefore === undefined ? [] : nw.meta.expirablePaths(cache.id, unusedBefore, limit);
}

async function collect(nw: Narwhal, options: GcOptions, report: GcReport, keepLease: KeepLease): Promise<void> {
  const grace = options.graceMs ?? DEFAULT_GRACE_MS;
  const margin = options.clockMarginMs ?? CLOCK_MARGIN_MS;
  /** The record cutoff (records marked before it go); files go when written at or before it minus the margin. */
  // Strictly before the oldest running ingest's start: a mark at that very millisecond stays.
  const cutoff = async (): Promise<number> => Math.min(Date.now() - grace, (await ingestFloor(nw)) - 1);

  if (!hasConditionalDelete(nw.chunks)) {
    const now = Date.now();
    await nw.meta.tidyChunkDeletions(Math.min(now, await ingestFloor(nw)) - margin, now);
  }

  const now = options.now ?? Date.now();
  for (const cache of await nw.meta.listCaches()) {
    const unusedBefore = retentionCutoff(cache, now);
    if (unusedBefore !== undefined) report.paths += await nw.meta.expirePaths(cache.id, unusedBefore);
    await keepLease();
  }
  if (report.paths > 0) nw.memos.narinfos.forget();

  await nw.meta.markUnreferencedNars(Date.now());
  await keepLease();
  const narCutoff = await cutoff();
  for (;;) {
    const { nars, narBytes } = await nw.meta.deleteUnreferencedNars(narCutoff, Date.now(), BATCH);
    report.nars += nars;
    report.narBytes += narBytes;
    await keepLease();
    if (nars < BATCH) break;
  }

  // Read after the NAR deletions marked their chunks, so that a grace of 0 takes them too.
  const chunkCutoff = await cutoff();
  const fileCutoff = chunkCutoff - margin;
  const conditional = hasConditionalDelete(nw.chunks) ? nw.chunks : undefined;
  for (;;) {
    const deleted = await nw.meta.deleteUnreferencedChunks(chunkCutoff, BATCH);
    for (const chunk of deleted) {
      report.chunks++;
      report.chunkBytes += chunk.size;
      report.storedBytes += chunk.storedSize;
      // Without an atomic conditional delete, the orphan sweep below deletes the file instead.
      const bytes = conditional && (await conditional.deleteUnlessNewer(chunk.id, fileCutoff));
      if (bytes !== undefined) {
        report.files++;
        report.fileBytes += bytes;
      }
    }
    await keepLease();
    if (deleted.length < BATCH) break;
  }

  await sweepOrphans(nw, fileCutoff, margin, report, keepLease);
  await keepLease();
  report.leftoverFiles = hasLeftoverCleanup(nw.chunks) ? (await nw.chunks.removeLeftovers(fileCutoff)).files : 0;
  await keepLease();
  const compacted = hasCompaction(nw.chunks) ? await nw.chunks.compact(fileCutoff) : undefined;
  report.compactedPacks = compacted?.packs ?? 0;
  report.reclaimedBytes = compacted?.reclaimedBytes ?? 0;
  await keepLease();
  for (;;) {
    const { contents, bytes } = await nw.meta.deleteAbandonedFileContents(now - ABANDONED_FILE_UPLOAD_MS, BATCH);
    report.abandonedFileUploads += contents;
    report.abandonedFileBytes += bytes;
    await keepLease();
    if (contents < BATCH) break;
  }
}

/** The start of the oldest ingest running in any process, or Infinity when none runs. */
async function ingestFloor(nw: Narwhal): Promise<number> {
  const others = await nw.meta.ingestHoldFloor(Date.now() - HOLD_STALE_MS, nw.holds.holder);
  return Math.min(others ?? Infinity, nw.holds.localFloor() ?? Infinity);
}

/** Deletes chunk files that have no record and were written at or before the cutoff. */
async function sweepOrphans(
  nw: Narwhal,
  cutoff: number,
  margin: number,
  report: GcReport,
  keepLease: KeepLease,
): Promise<void> {
  let batch: StoredChunkInfo[] = [];
  const flush = async (): Promise<void> => {
    await keepLease();
    const candidates = batch.filter((file) => file.modifiedAt <= cutoff);
    batch = [];
    if (candidates.length === 0) return;
    const deleted = hasConditionalDelete(nw.chunks)
      ? await deleteOrphansUnlessNewer(nw, nw.chunks, candidates, cutoff)
      : await deleteNotedOrphans(nw, candidates, margin);
    for (const bytes of deleted) {
      report.files++;
      report.fileBytes += bytes;
      report.orphanFiles++;
    }
  };
  for await (const file of nw.chunks.list()) {
    batch.push(file);
    if (batch.length >= BATCH) await flush();
  }
  await flush();
}

/** The sizes of the files deleted: those without a record that no write renewed meanwhile. */
async function deleteOrphansUnlessNewer(
  nw: Narwhal,
  chunks: ConditionalDelete,
  files: StoredChunkInfo[],
  cutoff: number,
): Promise<number[]> {
  const recorded = await nw.meta.existingChunks(files.map((file) => file.id));
  const sizes: number[] = [];
  for (const file of files) {
    if (recorded.has(Buffer.from(file.id).toString('hex'))) continue;
    const bytes = await chunks.deleteUnlessNewer(file.id, cutoff);
    if (bytes !== undefined) sizes.push(bytes);
  }
  return sizes;
}

/**
 * Without an atomic conditional delete, a concurrent ingest may rewrite a file just before GC
 * deletes it. The deletion is therefore noted in the metadata store first (only for chunks that
 * still have no record, in the same transaction), and an ingest whose commit uses a chunk
 * whose deletion ran after it started is refused instead of committing a NAR without its file.
 * The finish time is put `margin` later for replicas whose clocks run behind.
 */
async function deleteNotedOrphans(nw: Narwhal, files: StoredChunkInfo[], margin: number): Promise<number[]> {
  const noted = await nw.meta.noteChunkDeletions(
    files.map((file) => file.id),
    Date.now(),
  );
  const sizes = new Map(files.map((file) => [Buffer.from(file.id).toString('hex'), file.storedSize]));
  for (const id of noted) await nw.chunks.delete(id);
  await nw.meta.finishChunkDeletions(noted, Date.now() + margin);
  return noted.map((id) => sizes.get(Buffer.from(id).toString('hex')) ?? 0);
}

/** One line for logs and the CLI. */
export function describeGc(report: GcReport): string {
  if (report.skipped !== undefined) return `skipped: ${report.skipped}`;
  return (
    `deleted ${report.paths} paths, ${report.nars} NARs (${report.narBytes} bytes), ` +
    `${report.chunks} chunks (${report.storedBytes} stored bytes), ` +
    `${report.files} chunk files (${report.fileBytes} bytes, ${report.orphanFiles} without a record), ` +
    `${report.leftoverFiles} temporary files` +
    (report.compactedPacks > 0
      ? `; compacted ${report.compactedPacks} packs (${report.reclaimedBytes} bytes given back)`
      : '') +
    (report.abandonedFileUploads > 0
      ? `; ${report.abandonedFileUploads} abandoned file uploads (${report.abandonedFileBytes} bytes)`
      : '')
  );
}
