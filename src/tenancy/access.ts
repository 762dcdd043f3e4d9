import { NarwhalError } from '../errors.ts';
import type { CacheRecord, Permission, TokenRecord } from '../metadata/metadata-store.ts';

/** Whether one of the token's cache names or globs (`*` = any run of characters) names the cache. */
export function tokenCoversCache(token: TokenRecord, cacheName: string): boolean {
  return token.caches.some((pattern) => globMatches(pattern, cacheName));
}

/** Admin on every cache: may create caches and manage tokens. */
export function isGlobalAdmin(token: TokenRecord | undefined): boolean {
  if (!token) return false;
  return token.perms.includes('admin') && token.caches.includes('*');
}

/**
 * The access rule: anyone may pull from a public cache; everything else needs a token that names
 * the cache and grants the permission. Admin grants every permission on its caches, and push
 * grants pull (a pushing Nix reads the cache to learn what it lacks).
 */
export function mayAccess(token: TokenRecord | undefined, cache: CacheRecord, perm: Permission): boolean {
  if (perm === 'pull' && cache.isPublic) return true;
  if (!token || !tokenCoversCache(token, cache.name)) return false;
  return (
    token.perms.includes(perm) || token.perms.includes('admin') || (perm === 'pull' && token.perms.includes('push'))
  );
}

/** What a request of the binary cache protocol does to a cache: read its nix-cache-info, read another file, or push. */
export type CacheRequest = 'read-cache-info' | 'read' | 'push';

/**
 * Throws unless the token may make this request. A cache the caller may not read looks exactly
 * like one that does not have the file (not-found), so Nix falls back to its other substituters.
 * Its nix-cache-info stays readable: without it Nix 2.8 declares the URL "not a binary cache" and
 * fails instead of falling back. A push without the right is refused as unauthorized (no token)
 * or forbidden (a token without push on this cache).
 */
export function requireCacheAccess(token: TokenRecord | undefined, cache: CacheRecord, request: CacheRequest): void {
  if (request === 'read' && !mayAccess(token, cache, 'pull')) throw new NarwhalError('not-found', 'not found');
  if (request === 'push' && !mayAccess(token, cache, 'push')) {
    throw token
      ? new NarwhalError('forbidden', `this token may not push to ${cache.name}`)
      : new NarwhalError('unauthorized', `pushing to ${cache.name} needs a token`);
  }
}

/**
 * Whether `text` matches `pattern`, where `*` stands for any run of characters. Greedy and
 * linear: the parts between stars are found left to right, each at its first place after the
 * previous one, which is enough when `*` is the only wildcard. (A regular expression of `.*`
 * parts backtracks: `a*a*a*...b` against forty `a`s took seconds.)
 */
export function globMatches(pattern: string, text: string): boolean {
  const parts = pattern.split('*');
  const first = parts[0];
  if (parts.length === 1) return pattern === text;
  const last = parts[parts.length - 1];
  if (first.length + last.length > text.length || !text.startsWith(first) || !text.endsWith(last)) return false;
  let at = first.length;
  const end = text.length - last.length;
  for (const part of parts.slice(1, -1)) {
    const found = text.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}
