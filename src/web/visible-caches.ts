import { NarwhalError } from '../errors.ts';
import type { Narwhal } from '../context/narwhal.ts';
import type { CacheRecord, TokenRecord } from '../metadata/metadata-store.ts';
import { mayAccess } from '../tenancy/access.ts';
import { findCache } from '../tenancy/caches.ts';

/** The caches a person may see: public ones, and those their token may pull from. */
export async function visibleCaches(nw: Narwhal, token: TokenRecord | undefined): Promise<CacheRecord[]> {
  return (await nw.meta.listCaches()).filter((cache) => mayAccess(token, cache, 'pull'));
}

/** The cache, if the person may see it; one they may not answers as if it did not exist. */
export async function requireVisibleCache(
  nw: Narwhal,
  token: TokenRecord | undefined,
  name: string,
): Promise<CacheRecord> {
  const cache = await findCache(nw, name);
  if (!cache || !mayAccess(token, cache, 'pull')) throw new NarwhalError('not-found', 'no such cache');
  return cache;
}

/** Pinning needs push or admin on the cache. */
export function mayPin(token: TokenRecord | undefined, cache: CacheRecord): boolean {
  return mayAccess(token, cache, 'push');
}
