import type { CacheRecord, NarRecord, PathRecord } from '../metadata/metadata-store.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { isNarwhalError } from '../errors.ts';

/**
 * Last-access times are written at most once per this period per path: retention counts in days,
 * and a write per request would make every read a database write.
 */
export const ACCESS_RESOLUTION_MS = 3_600_000;

/** Notes that the path's narinfo was served (a write only when its time is an hour old). */
export async function notePathAccess(nw: Narwhal, path: PathRecord): Promise<void> {
  const now = Date.now();
  if (path.lastAccess >= now - ACCESS_RESOLUTION_MS) return;
  await advisory(nw.meta.recordPathAccess(path.cacheId, path.hashPart, now, now - ACCESS_RESOLUTION_MS));
}

/**
 * Notes that the NAR was served through the cache: its paths there count as accessed (a client
 * that remembers a narinfo downloads the NAR without asking for the narinfo again). Kept in
 * memory for the resolution period, so a NAR served often costs one query an hour.
 */
export async function noteNarAccess(nw: Narwhal, cache: CacheRecord, nar: NarRecord): Promise<void> {
  const now = Date.now();
  if (nw.memos.narAccesses.lastNoted(cache.id, nar.id) >= now - ACCESS_RESOLUTION_MS) return;
  if (!(await advisory(nw.meta.recordNarAccess(cache.id, nar.id, now, now - ACCESS_RESOLUTION_MS)))) return;
  nw.memos.narAccesses.note(cache.id, nar.id, now);
}

/**
 * Access times only inform retention, so a full disk must not fail the read that records one:
 * the time goes unrecorded (false) and the read is served.
 */
async function advisory(write: Promise<void>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (err) {
    if (isNarwhalError(err, 'storage-full')) return false;
    throw err;
  }
}
