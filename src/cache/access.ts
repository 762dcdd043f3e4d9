import type { CacheRecord, Permission, TokenRecord } from '../metadata/metadata-store.ts';

/** Whether one of the token's cache names or globs (`*` = any run of characters) names the cache. */
export function tokenCoversCache(token: TokenRecord, cacheName: string): boolean {
  return token.caches.some((pattern) => globToRegExp(pattern).test(cacheName));
}

/** Admin on every cache: may create caches and manage tokens. */
export function isGlobalAdmin(token: TokenRecord | undefined): boolean {
  return token !== undefined && token.perms.includes('admin') && token.caches.includes('*');
}

/**
 * The access rule: anyone may pull from a public cache; everything else needs a token that names
 * the cache and grants the permission. Admin grants every permission on its caches, and push
 * grants pull (a pushing Nix reads the cache to learn what it lacks).
 */
export function mayAccess(token: TokenRecord | undefined, cache: CacheRecord, perm: Permission): boolean {
  if (perm === 'pull' && cache.isPublic) return true;
  if (!token || !tokenCoversCache(token, cache.name)) return false;
  return token.perms.includes(perm) || token.perms.includes('admin') || (perm === 'pull' && token.perms.includes('push'));
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\-]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}
