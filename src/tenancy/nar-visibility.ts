import type { CacheRecord, NarRecord, TokenRecord } from '../metadata/metadata-store.ts';
import { mayAccess } from './access.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * Which NARs a request may see through a cache. NARs are stored once for every cache, so their
 * existence must not leak between tenants. A NAR belongs to the caches a path of which uses it
 * and to those it was uploaded to; through cache C, a caller sees it when it belongs to C or to
 * another cache the caller may read.
 * This one rule answers HEAD and GET of `nar/...` and decides which NAR a narinfo uploaded to C
 * may name. A NAR the caller may not see is absent: HEAD answers 404 and Nix uploads the bytes
 * (their chunks still deduplicate, so only that upload's bandwidth is spent).
 */
export async function mayShowNar(nw: Narwhal, cache: CacheRecord, token: TokenRecord | undefined, nar: NarRecord): Promise<boolean> {
  const cacheIds = await nw.meta.narCacheIds(nar.id);
  if (cacheIds.includes(cache.id)) return true;
  if (cacheIds.length === 0) return false;
  const others = (await nw.meta.listCaches()).filter((other) => cacheIds.includes(other.id));
  return others.some((other) => mayAccess(token, other, 'pull'));
}

/** The NAR with this NarHash, if the caller may see it through the cache (mayShowNar). */
export async function findVisibleNar(nw: Narwhal, cache: CacheRecord, token: TokenRecord | undefined, narHash: string): Promise<NarRecord | undefined> {
  const nar = await nw.meta.getNar(narHash);
  return nar && (await mayShowNar(nw, cache, token, nar)) ? nar : undefined;
}
