import { NarwhalError } from '../errors.ts';
import type { CacheRecord, CacheSettings, Permission, TokenRecord } from '../metadata/metadata-store.ts';
import { isGlobalAdmin, mayAccess, tokenCoversCache } from './access.ts';
import {
  cacheInfo,
  configureCache,
  createCache,
  destroyCache,
  requireCache,
  type CacheInfo,
  type NewCacheOptions,
} from './caches.ts';
import { createToken, revokeToken, type NewToken } from './tokens.ts';
import type { Narwhal } from '../context/narwhal.ts';

export interface TokenInfo {
  id: string;
  name: string;
  caches: string[];
  perms: Permission[];
  createdAt: string;
  expiresAt: string | null;
  revoked: boolean;
}

export type CacheChanges = Partial<
  Pick<
    CacheSettings,
    | 'isPublic'
    | 'priority'
    | 'signingKey'
    | 'trustedKeys'
    | 'requireSignature'
    | 'retention'
    | 'upstreams'
    | 'upstreamKeys'
  >
>;

/**
 * The management operations, one contract for both ways the CLI reaches a server: directly on
 * the stores (`--data-dir`) or through the HTTP API (`--server --token`).
 */
export interface AdminOperations {
  listCaches(): Promise<CacheInfo[]>;
  createCache(name: string, options: NewCacheOptions): Promise<CacheInfo>;
  cacheInfo(name: string): Promise<CacheInfo>;
  configureCache(name: string, changes: CacheChanges): Promise<CacheInfo>;
  destroyCache(name: string): Promise<void>;
  createToken(spec: NewToken): Promise<{ id: string; secret: string }>;
  listTokens(): Promise<TokenInfo[]>;
  revokeToken(id: string): Promise<void>;
}

export function tokenInfo(token: TokenRecord): TokenInfo {
  return {
    id: token.id,
    name: token.name,
    caches: token.caches,
    perms: token.perms,
    createdAt: isoTime(token.createdAt),
    expiresAt: token.expiresAt === null ? null : isoTime(token.expiresAt),
    revoked: token.revokedAt !== null,
  };
}

/**
 * A stored time as ISO 8601. A row written before lifetimes were bounded may hold a time past
 * what a Date can show: it is shown as the last time a Date can, rather than breaking the listing.
 */
function isoTime(ms: number): string {
  const LAST_DATE_MS = 8.64e15;
  return new Date(Math.max(-LAST_DATE_MS, Math.min(LAST_DATE_MS, ms))).toISOString();
}

export function localAdmin(nw: Narwhal): AdminOperations {
  return {
    listCaches: async () => (await nw.meta.listCaches()).map(cacheInfo),
    createCache: async (name, options) => cacheInfo(await createCache(nw, name, options)),
    cacheInfo: async (name) => cacheInfo(await requireCache(nw, name)),
    configureCache: async (name, changes) => cacheInfo(await configureCache(nw, name, changes)),
    destroyCache: (name) => destroyCache(nw, name),
    createToken: async (spec) => {
      const { token, secret } = await createToken(nw, spec);
      return { id: token.id, secret };
    },
    listTokens: async () => (await nw.meta.listTokens()).map(tokenInfo),
    revokeToken: (id) => revokeToken(nw, id),
  };
}

/*
 * Who may use the management API (server/api/api-router.ts): every call needs a token; cache
 * operations need admin on that cache; creating caches and managing tokens need admin on `*`.
 */

export function requireApiToken(token: TokenRecord | undefined): TokenRecord {
  if (!token) throw new NarwhalError('unauthorized', 'the API needs a token');
  return token;
}

export function requireGlobalAdmin(token: TokenRecord): void {
  if (!isGlobalAdmin(token))
    throw new NarwhalError('forbidden', 'this needs a token with admin on all caches (--cache "*")');
}

/** The cache, when the token is admin on it. */
export async function requireCacheAdmin(nw: Narwhal, token: TokenRecord, name: string): Promise<CacheRecord> {
  const cache = await requireCache(nw, name);
  if (!mayAccess(token, cache, 'admin')) throw new NarwhalError('forbidden', `this token is not admin on ${name}`);
  return cache;
}

/** The caches the token names (all of them for a global admin). */
export async function cachesVisibleTo(nw: Narwhal, token: TokenRecord): Promise<CacheInfo[]> {
  return (await localAdmin(nw).listCaches()).filter((c) => isGlobalAdmin(token) || tokenCoversCache(token, c.name));
}
