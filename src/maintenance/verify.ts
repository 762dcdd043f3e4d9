import { isNarwhalError } from '../errors.ts';
import type { ChunkRecord, NarRecord } from '../metadata/metadata-store.ts';
import { frameCrc } from '../storage/chunk-store.ts';
import { hasConditionalDelete, hasFrameReads } from '../storage/chunk-store-capabilities.ts';
import { baseReader, readFrame } from '../serving/chunk-damage.ts';
import { checkStoredChunk, DamagedBaseError, type BaseReader } from '../serving/chunk-content.ts';
import { rawFrameSize } from '../delta/stored-form.ts';
import { CHUNK_ENTRY_SIZE, chunkEntries } from '../chunking/chunk-table.ts';
import { CLOCK_MARGIN_MS } from './gc.ts';
import type { Narwhal } from '../context/narwhal.ts';

/** Chunks read and checked at once. */
const CONCURRENCY = 8;
const CHUNK_PAGE = 512;
const NAR_PAGE = 64;

export interface VerifyOptions {
  /** Delete the files of corrupt chunks, so that uploading their NARs again rewrites them. */
  repair?: boolean;
  /** Overrides CLOCK_MARGIN_MS (tests). */
  clockMarginMs?: number;
  /** Called after each page: which pass, and chunks or NARs checked so far. */
  onProgress?: (pass: 'chunks' | 'nars', checked: number) => void;
}

export interface VerifyReport {
  /** baseDamaged: stored as deltas whose base (at some depth) is missing or corrupt, so damaged too. */
  chunks: { ok: number; missing: number; corrupt: number; baseDamaged: number };
  /** Chunk files without a record: not damage (GC removes them). */
  orphanFiles: number;
  nars: { ok: number; damaged: number };
  /** NARs this run flagged damaged, and NARs it found whole again and unflagged. */
  marked: number;
  unmarked: number;
  /** Corrupt chunk files deleted (with `repair`). */
  repaired: number;
}

/** Whether the store still holds damage after the run: the exit status of `narwhal verify`. */
export function damageRemains(report: VerifyReport): boolean {
  return report.chunks.missing + report.chunks.corrupt + report.chunks.baseDamaged + report.nars.damaged > 0;
}

type ChunkState = 'ok' | 'missing' | 'corrupt' | 'baseDamaged';

/**
 * Checks every chunk record (its file is there, decompresses, has the recorded sizes and hashes
 * to its id; a delta decodes with its bases, each checked too) and every NAR (its chunk table is consistent with its sizes, and every chunk it
 * names is recorded, the right size and not damaged). Damaged chunks and the NARs using them are
 * flagged, so their narinfos answer 404; flagged ones found whole again are unflagged. A damaged
 * chunk damages every chunk stored as a delta on it (markChunksDamaged flags them and their NARs).
 *
 * Repair deletes corrupt chunk files only: the data is gone either way, and without the file an
 * upload of a NAR that contains the chunk writes it again. The deletion spares a file rewritten
 * since the check (only possible after the flag, which makes ingest rewrite rather than reuse).
 */
export async function verifyStore(nw: Narwhal, options: VerifyOptions = {}): Promise<VerifyReport> {
  const report: VerifyReport = {
    chunks: { ok: 0, missing: 0, corrupt: 0, baseDamaged: 0 },
    orphanFiles: 0,
    nars: { ok: 0, damaged: 0 },
    marked: 0,
    unmarked: 0,
    repaired: 0,
  };
  const margin = options.clockMarginMs ?? CLOCK_MARGIN_MS;

  let after: Uint8Array = new Uint8Array(0);
  for (;;) {
    const page = await nw.meta.listChunks(after, CHUNK_PAGE);
    if (page.length === 0) break;
    after = page[page.length - 1].id;
    const bases = baseReader(nw);
    const states = await mapLimited(page, CONCURRENCY, (chunk) => chunkState(nw, chunk, bases));
    const bad = page.filter((_, i) => states[i] !== 'ok');
    const healed = page.filter((chunk, i) => states[i] === 'ok' && chunk.damagedAt !== null);
    for (const state of states) report.chunks[state]++;
    if (bad.length > 0) {
      report.marked += await nw.meta.markChunksDamaged(
        bad.map((c) => c.id),
        Date.now(),
      );
      nw.memos.narinfos.forget();
    }
    if (healed.length > 0)
      await nw.meta.setChunksDamaged(
        healed.map((c) => c.id),
        false,
        Date.now(),
      );
    const corrupt = page.filter((_, i) => states[i] === 'corrupt');
    if (options.repair && corrupt.length > 0) {
      const flaggedAt = Date.now();
      for (const chunk of corrupt) if (await deleteCorrupt(nw, chunk.id, flaggedAt - margin)) report.repaired++;
    }
    const c = report.chunks;
    options.onProgress?.('chunks', c.ok + c.missing + c.corrupt + c.baseDamaged);
  }

  let afterId = 0;
  for (;;) {
    const page = await nw.meta.listNars(afterId, NAR_PAGE);
    if (page.length === 0) break;
    afterId = page[page.length - 1].id;
    for (const nar of page) {
      // Recompression changes chunk and NAR sizes in one transaction, which may fall between
      // the two reads: a NAR that seems damaged is read again before it counts.
      const whole = narIsWhole(nar, await nw.meta.narChunks(nar.id)) || (await narIsWholeNow(nw, nar));
      report.nars[whole ? 'ok' : 'damaged']++;
      if (whole === (nar.damagedAt === null)) continue;
      await nw.meta.setNarDamaged(nar.id, !whole, Date.now());
      if (whole) report.unmarked++;
      else report.marked++;
      nw.memos.narinfos.forget();
    }
    options.onProgress?.('nars', report.nars.ok + report.nars.damaged);
  }

  report.orphanFiles = await countOrphans(nw);
  return report;
}

/** Deletes a corrupt chunk file unless it was written after `notAfter` (then it is a repaired copy). */
async function deleteCorrupt(nw: Narwhal, id: Uint8Array, notAfter: number): Promise<boolean> {
  if (hasConditionalDelete(nw.chunks)) return (await nw.chunks.deleteUnlessNewer(id, notAfter)) !== undefined;
  await nw.chunks.delete(id);
  return true;
}

async function chunkState(nw: Narwhal, chunk: ChunkRecord, bases: BaseReader): Promise<ChunkState> {
  let stored: Uint8Array;
  let crc: number | undefined;
  try {
    ({ stored, crc } = await readFrame(nw, chunk.id));
  } catch (err) {
    if (isNarwhalError(err, 'chunk-missing')) return 'missing';
    throw err;
  }
  // A bigger file than recorded would make the `.nar.zst` of its NARs longer than their FileSize.
  // A smaller one is recompression between writing a file and recording it (or a crash there):
  // downloads make up the difference, and recompression records it (recompress.ts).
  if (stored.length > chunk.storedSize) return 'corrupt';
  try {
    ({ stored } = await checkStoredChunk(chunk.id, stored, chunk.size, false, bases));
  } catch (err) {
    if (err instanceof DamagedBaseError) return 'baseDamaged';
    if (isNarwhalError(err, 'chunk-corrupt')) return 'corrupt';
    throw err;
  }
  // A frame written before its store recorded CRCs gets one, so that serving need not decompress it.
  if (crc === undefined && hasFrameReads(nw.chunks)) await nw.chunks.recordCrc(chunk.id, frameCrc(stored));
  return 'ok';
}

async function narIsWholeNow(nw: Narwhal, nar: NarRecord): Promise<boolean> {
  const now = await nw.meta.getNar(nar.narHash);
  return now !== undefined && narIsWhole(now, await nw.meta.narChunks(now.id));
}

/**
 * The NAR's table is consistent and every chunk it names is recorded, the right size, and not
 * damaged; its stored size is what its `.nar.zst` sends (a raw frame for a delta).
 */
function narIsWhole(nar: NarRecord, recorded: ChunkRecord[]): boolean {
  if (nar.chunkTable.length % CHUNK_ENTRY_SIZE !== 0 || nar.chunkTable.length / CHUNK_ENTRY_SIZE !== nar.chunkCount)
    return false;
  const byId = new Map(recorded.map((chunk) => [Buffer.from(chunk.id).toString('hex'), chunk]));
  const seen = new Set<string>();
  let end = 0;
  let storedSize = 0;
  for (const entry of chunkEntries(nar.chunkTable)) {
    const key = Buffer.from(entry.id).toString('hex');
    const chunk = byId.get(key);
    if (!chunk || chunk.damagedAt !== null || entry.end <= entry.start || chunk.size !== entry.end - entry.start)
      return false;
    seen.add(key);
    end = entry.end;
    storedSize += chunk.encoding === 'delta' ? rawFrameSize(chunk.size) : chunk.storedSize;
  }
  return end === nar.narSize && storedSize === nar.storedSize && seen.size === byId.size;
}

async function countOrphans(nw: Narwhal): Promise<number> {
  let orphans = 0;
  let batch: Uint8Array[] = [];
  const flush = async (): Promise<void> => {
    const recorded = await nw.meta.existingChunks(batch);
    orphans += batch.filter((id) => !recorded.has(Buffer.from(id).toString('hex'))).length;
    batch = [];
  };
  for await (const file of nw.chunks.list()) {
    batch.push(file.id);
    if (batch.length >= CHUNK_PAGE) await flush();
  }
  if (batch.length > 0) await flush();
  return orphans;
}

/** Maps with at most `limit` calls in flight, keeping order. */
async function mapLimited<T, U>(items: T[], limit: number, map: (item: T) => Promise<U>): Promise<U[]> {
  const results: U[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await map(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
