import { NarwhalError } from '../errors.ts';
import type { CacheRecord, CacheSettings } from '../metadata/metadata-store.ts';
import { generateSigningKey, parsePublicKey, parseSecretKey, publicKeyOf } from '../nix/signing.ts';
import type { Narwhal } from './narwhal.ts';

/** Cache names: lower-case and URL-safe; never a server route (those begin with `_`). */
const CACHE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export const DEFAULT_PRIORITY = 40;

export function isValidCacheName(name: string): boolean {
  return CACHE_NAME.test(name) && !name.includes('..');
}

export async function findCache(nw: Narwhal, name: string): Promise<CacheRecord | undefined> {
  if (!isValidCacheName(name)) return undefined;
  return nw.meta.getCache(name);
}

export async function requireCache(nw: Narwhal, name: string): Promise<CacheRecord> {
  const cache = await findCache(nw, name);
  if (!cache) throw new NarwhalError('not-found', `no cache named ${JSON.stringify(name)}`);
  return cache;
}

export interface NewCacheOptions {
  isPublic?: boolean;
  priority?: number;
  /** Nix secret key text to sign with; a fresh key `<name>-1` is made when absent. */
  signingKey?: string;
}

/** Creates a cache with its own signing key. Refuses names that are taken or invalid. */
export async function createCache(nw: Narwhal, name: string, options: NewCacheOptions = {}): Promise<CacheRecord> {
  if (!isValidCacheName(name)) {
    throw new NarwhalError('bad-request', `invalid cache name ${JSON.stringify(name)}: use a-z, 0-9, '.', '_' and '-', starting with a letter or digit`);
  }
  const signingKey = options.signingKey === undefined ? generateSigningKey(`${name}-1`).secretKey : checkSecretKey(options.signingKey);
  const cache = await nw.meta.createCache(name, {
    isPublic: options.isPublic ?? false,
    priority: checkPriority(options.priority ?? DEFAULT_PRIORITY),
    signingKey,
    trustedKeys: [],
    requireSignature: false,
  });
  if (!cache) throw new NarwhalError('conflict', `a cache named ${JSON.stringify(name)} already exists`);
  return cache;
}

export async function configureCache(nw: Narwhal, name: string, changes: Partial<CacheSettings>): Promise<CacheRecord> {
  if (changes.priority !== undefined) checkPriority(changes.priority);
  if (changes.signingKey !== undefined) checkSecretKey(changes.signingKey);
  for (const key of changes.trustedKeys ?? []) parsePublicKey(key);
  const cache = await nw.meta.updateCache(name, changes);
  if (!cache) throw new NarwhalError('not-found', `no cache named ${JSON.stringify(name)}`);
  if (cache.requireSignature && cache.trustedKeys.length === 0) {
    throw new NarwhalError('bad-request', 'requiring signatures needs at least one trusted key');
  }
  return cache;
}

export async function destroyCache(nw: Narwhal, name: string): Promise<void> {
  if (!(await nw.meta.deleteCache(name))) throw new NarwhalError('not-found', `no cache named ${JSON.stringify(name)}`);
}

/** What `cache info` shows: everything but the secret key. */
export interface CacheInfo {
  name: string;
  public: boolean;
  priority: number;
  publicKey: string;
  trustedKeys: string[];
  requireSignature: boolean;
  createdAt: string;
}

export function cacheInfo(cache: CacheRecord): CacheInfo {
  return {
    name: cache.name,
    public: cache.isPublic,
    priority: cache.priority,
    publicKey: publicKeyOf(cache.signingKey),
    trustedKeys: cache.trustedKeys,
    requireSignature: cache.requireSignature,
    createdAt: new Date(cache.createdAt).toISOString(),
  };
}

export function nixCacheInfo(cache: CacheRecord): string {
  return `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${cache.priority}\n`;
}

function checkPriority(priority: number): number {
  if (!Number.isInteger(priority) || priority < 0 || priority > 10_000) {
    throw new NarwhalError('bad-request', 'priority must be a whole number from 0 to 10000');
  }
  return priority;
}

function checkSecretKey(text: string): string {
  parseSecretKey(text);
  return text.trim();
}
