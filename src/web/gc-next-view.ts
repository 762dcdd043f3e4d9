import type { Narwhal } from '../context/narwhal.ts';
import { gcNext } from '../maintenance/gc.ts';
import type { CacheRecord, PathRecord } from '../metadata/metadata-store.ts';

/**
 * What GC would remove next, as the cache page shows it. Finding it walks every live path of the
 * cache (the same walk GC does), which takes longer than a page should, while its answer changes
 * only as paths age past the retention or arrive. So a cache's list is kept and worked out again
 * when older than a tenth of the retention, at most MAX_AGE_MS: the page says when it was made.
 */
export const MAX_AGE_MS = 60_000;

export interface GcNextView {
  paths: PathRecord[];
  /** When the list was worked out. */
  at: number;
}

interface Kept {
  view: GcNextView;
  /** The retention it was worked out for: a change makes it stale at once. */
  retention: number;
}

const kept = new WeakMap<Narwhal, Map<number, Kept>>();

export async function gcNextView(
  nw: Narwhal,
  cache: CacheRecord,
  limit: number,
  now = Date.now(),
): Promise<GcNextView> {
  let byCache = kept.get(nw);
  if (!byCache) kept.set(nw, (byCache = new Map()));
  const found = byCache.get(cache.id);
  // Retention is in seconds; a tenth of it in milliseconds is a hundred times it.
  const maxAge = Math.min(MAX_AGE_MS, cache.retention * 100);
  if (found && found.retention === cache.retention && now - found.view.at < maxAge) return found.view;
  const view = { paths: await gcNext(nw, cache, limit, now), at: now };
  byCache.set(cache.id, { view, retention: cache.retention });
  return view;
}

/** Drops a cache's kept list, after a change the page itself made (a pin). */
export function forgetGcNext(nw: Narwhal, cacheId: number): void {
  kept.get(nw)?.delete(cacheId);
}
