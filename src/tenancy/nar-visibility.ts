import type { CacheRecord, NarOwners, NarRecord, TokenRecord } from '../metadata/metadata-store.ts';
import { mayAccess } from './access.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * Which NARs a request may see through a cache. NARs are stored once for every cache, so their
 * existence must not leak between tenants. Through cache C, a caller sees a NAR that a path of C
 * uses; one uploaded to a cache the caller may push to (so a pushing Nix learns its upload
 * arrived, before the narinfo names it); and one a path of another cache the caller may read
 * uses. This one rule answers HEAD and GET of `nar/...` and decides which NAR a narinfo
 * uploaded to C may name. A NAR the caller may not see is absent: HEAD answers 404 and Nix
 * uploads the bytes (their chunks still deduplicate, so only that upload's bandwidth is spent).
 */
export async function mayShowNar(
  nw: Narwhal,
  cache: CacheRecord,
  token: TokenRecord | undefined,
  nar: NarRecord,
): Promise<boolean> {
  const owners = await nw.meta.narOwners(nar.id);
  if (owners.usedBy.includes(cache.id)) return true;
  if (owners.usedBy.length === 0 && owners.uploadedTo.length === 0) return false;
  return ownersShown(cache, token, owners, await cachesById(nw));
}

/**
 * Whether a push through the cache may count on a stored chunk (push/missing-chunks.ts,
 * push/commit-chunk-list.ts): the rule above applied to the NARs containing the chunk, which must
 * also be one an ingest may reuse. A chunk that fails is treated as absent and sent again, so a
 * pusher learns nothing of chunks it could not read. One per request: the caches are read once.
 */
export function chunkVisibility(
  nw: Narwhal,
  cache: CacheRecord,
  token: TokenRecord | undefined,
): (id: Uint8Array) => Promise<boolean> {
  let caches: Promise<Map<number, CacheRecord>> | undefined;
  return async (id) => {
    if (!(await nw.meta.mayReuseChunk(id))) return false;
    const owners = await nw.meta.chunkOwners(id);
    return ownersShown(cache, token, owners, await (caches ??= cachesById(nw)));
  };
}

function ownersShown(
  cache: CacheRecord,
  token: TokenRecord | undefined,
  { usedBy, uploadedTo }: NarOwners,
  caches: Map<number, CacheRecord>,
): boolean {
  if (usedBy.includes(cache.id)) return true;
  const may = (ids: number[], perm: 'pull' | 'push') =>
    ids.some((id) => caches.has(id) && mayAccess(token, caches.get(id)!, perm));
  return may(usedBy, 'pull') || may(uploadedTo, 'push');
}

async function cachesById(nw: Narwhal): Promise<Map<number, CacheRecord>> {
  return new Map((await nw.meta.listCaches()).map((c) => [c.id, c]));
}

/** The NAR with this NarHash, if the caller may see it through the cache (mayShowNar). */
export async function findVisibleNar(
  nw: Narwhal,
  cache: CacheRecord,
  token: TokenRecord | undefined,
  narHash: string,
): Promise<NarRecord | undefined> {
  const nar = await nw.meta.getNar(narHash);
  return nar && (await mayShowNar(nw, cache, token, nar)) ? nar : undefined;
}
