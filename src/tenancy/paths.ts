import { NarwhalError } from '../errors.ts';
import type { PathRecord } from '../metadata/metadata-store.ts';
import { isValidHashPart, parseStorePath, parseStorePathBaseName } from '../nix/store-path.ts';
import { requireCache } from './caches.ts';
import type { Narwhal } from '../context/narwhal.ts';

/** What `path list` shows of a path. */
export interface PathInfo {
  storePath: string;
  narHash: string;
  narSize: number;
  references: string[];
  pinned: boolean;
  /** Whether its NAR is flagged damaged (its narinfo answers 404 until the NAR is uploaded again). */
  damaged: boolean;
  createdAt: string;
  lastAccess: string;
}

export function pathInfo(path: PathRecord): PathInfo {
  return {
    storePath: path.storePath,
    narHash: path.narHash,
    narSize: path.narSize,
    references: path.references,
    pinned: path.pinned,
    damaged: path.narDamaged,
    createdAt: new Date(path.createdAt).toISOString(),
    lastAccess: new Date(path.lastAccess).toISOString(),
  };
}

/** The hash part of `/nix/store/<hash>-<name>`, `<hash>-<name>` or `<hash>`. */
export function hashPartOf(text: string): string {
  if (text.startsWith('/')) return parseStorePath(text).hashPart;
  if (isValidHashPart(text)) return text;
  return parseStorePathBaseName(text).hashPart;
}

export async function listPaths(nw: Narwhal, cacheName: string): Promise<PathInfo[]> {
  const cache = await requireCache(nw, cacheName);
  return (await nw.meta.listPaths(cache.id)).map(pathInfo);
}

/** Pins (or unpins) a path: a pinned path and its closure survive the cache's retention. */
export async function pinPath(nw: Narwhal, cacheName: string, path: string, pinned: boolean): Promise<PathInfo> {
  const cache = await requireCache(nw, cacheName);
  const hashPart = hashPartOf(path);
  if (!(await nw.meta.setPathPinned(cache.id, hashPart, pinned))) throw notInCache(path, cacheName);
  return pathInfo((await nw.meta.getPath(cache.id, hashPart))!);
}

/**
 * Deletes paths from a cache (their NARs and chunks go at the next GC if nothing else uses them).
 * Refused when another path of the cache refers to one of them: every path keeps its closure,
 * so delete the referrers too, in the same call.
 */
export async function deletePaths(nw: Narwhal, cacheName: string, paths: string[]): Promise<string[]> {
  const cache = await requireCache(nw, cacheName);
  const hashParts = paths.map(hashPartOf);
  const present = await nw.meta.existingPaths(cache.id, hashParts);
  const absent = paths.filter((_, i) => !present.has(hashParts[i]));
  if (absent.length > 0) throw notInCache(absent[0], cacheName);
  const { deleted, referrers } = await nw.meta.deletePaths(cache.id, hashParts);
  if (referrers.length > 0) {
    const shown = await Promise.all(
      referrers.slice(0, 3).map(async (h) => (await nw.meta.getPath(cache.id, h))?.storePath ?? h),
    );
    throw new NarwhalError(
      'conflict',
      `still referred to by ${referrers.length} path(s) of ${cacheName}: ${shown.join(', ')}${referrers.length > 3 ? ', ...' : ''}; delete them in the same command`,
    );
  }
  for (const hashPart of deleted) nw.memos.narinfos.forget(cache.id, hashPart);
  return paths.filter((_, i) => deleted.includes(hashParts[i]));
}

function notInCache(path: string, cacheName: string): NarwhalError {
  return new NarwhalError('not-found', `${path} is not in cache ${cacheName}`);
}
