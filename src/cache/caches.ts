import { NarwhalError } from '../errors.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';
import type { Narwhal } from './narwhal.ts';

/** Cache names: lower-case, URL-safe, and never a server route (those begin with `_`). */
const CACHE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function isValidCacheName(name: string): boolean {
  return CACHE_NAME.test(name) && !name.includes('..');
}

export async function findCache(nw: Narwhal, name: string): Promise<CacheRecord | undefined> {
  if (!isValidCacheName(name)) return undefined;
  return nw.meta.getCache(name);
}

export async function createCache(nw: Narwhal, name: string, init: { isPublic?: boolean; priority?: number } = {}): Promise<CacheRecord> {
  if (!isValidCacheName(name)) {
    throw new NarwhalError('bad-request', `invalid cache name ${JSON.stringify(name)}: use a-z, 0-9, '.', '_' and '-', starting with a letter or digit`);
  }
  return nw.meta.ensureCache({ name, isPublic: init.isPublic ?? true, priority: init.priority ?? 40, signingKey: null });
}

export function nixCacheInfo(cache: CacheRecord): string {
  return `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${cache.priority}\n`;
}
