import { NarwhalError } from '../errors.ts';
import type { CacheRecord, CacheSettings } from '../metadata/metadata-store.ts';
import { generateSigningKey, parsePublicKey, parseSecretKey, publicKeyOf } from '../nix/signing.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { MAX_DURATION_MS } from './duration.ts';

/** Cache names: lower-case and URL-safe; never a server route (those begin with `_`). */
const CACHE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export const DEFAULT_PRIORITY = 40;

export function isValidCacheName(name: string): boolean {
  return CACHE_NAME.test(name) && !name.includes('..');
}

export async function findCache(nw: Narwhal, name: string): Promise<CacheRecord | undefined> {
  if (!isValidCacheName(name)) return undefined;
  return nw.memos.caches.find(name, () => nw.meta.getCache(name));
}

/** Drops what this process keeps of the cache: its record and every narinfo (they carry its key). */
function forgetCache(nw: Narwhal, name: string): void {
  nw.memos.caches.forget(name);
  nw.memos.narinfos.forget();
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
  /** Seconds since last access or upload after which GC drops a path; 0 (the default) keeps paths forever. */
  retention?: number;
  /** Binary caches asked, in order, for paths this one lacks (pull-through, src/upstream/). */
  upstreams?: string[];
  /** Public keys one of which must have signed what an upstream answers; needed with upstreams. */
  upstreamKeys?: string[];
}

/** Creates a cache with its own signing key. Refuses names that are taken or invalid. */
export async function createCache(nw: Narwhal, name: string, options: NewCacheOptions = {}): Promise<CacheRecord> {
  if (!isValidCacheName(name)) {
    throw new NarwhalError(
      'bad-request',
      `invalid cache name ${JSON.stringify(name)}: use a-z, 0-9, '.', '_' and '-', starting with a letter or digit`,
    );
  }
  const signingKey =
    options.signingKey === undefined ? generateSigningKey(`${name}-1`).secretKey : checkSecretKey(options.signingKey);
  const cache = await nw.meta.createCache(name, {
    isPublic: options.isPublic ?? false,
    priority: checkPriority(options.priority ?? DEFAULT_PRIORITY),
    signingKey,
    trustedKeys: [],
    requireSignature: false,
    retention: checkRetention(options.retention ?? 0),
    ...checkUpstreams({ upstreams: options.upstreams ?? [], upstreamKeys: options.upstreamKeys ?? [] }),
  });
  if (!cache) throw new NarwhalError('conflict', `a cache named ${JSON.stringify(name)} already exists`);
  forgetCache(nw, name);
  return cache;
}

export async function configureCache(nw: Narwhal, name: string, changes: Partial<CacheSettings>): Promise<CacheRecord> {
  if (changes.priority !== undefined) checkPriority(changes.priority);
  if (changes.retention !== undefined) checkRetention(changes.retention);
  if (changes.signingKey !== undefined) checkSecretKey(changes.signingKey);
  for (const key of changes.trustedKeys ?? []) parsePublicKey(key);
  if (changes.upstreams !== undefined || changes.upstreamKeys !== undefined) {
    const current = await requireCache(nw, name);
    const upstreams = checkUpstreams({
      upstreams: changes.upstreams ?? current.upstreams,
      upstreamKeys: changes.upstreamKeys ?? current.upstreamKeys,
    });
    if (changes.upstreams !== undefined) changes.upstreams = upstreams.upstreams;
  }
  const cache = await nw.meta.updateCache(name, changes);
  forgetCache(nw, name);
  if (!cache) throw new NarwhalError('not-found', `no cache named ${JSON.stringify(name)}`);
  if (cache.requireSignature && cache.trustedKeys.length === 0) {
    throw new NarwhalError('bad-request', 'requiring signatures needs at least one trusted key');
  }
  return cache;
}

export async function destroyCache(nw: Narwhal, name: string): Promise<void> {
  const deleted = await nw.meta.deleteCache(name);
  forgetCache(nw, name);
  if (!deleted) throw new NarwhalError('not-found', `no cache named ${JSON.stringify(name)}`);
}

/** What `cache info` shows: everything but the secret key. */
export interface CacheInfo {
  name: string;
  public: boolean;
  priority: number;
  publicKey: string;
  trustedKeys: string[];
  requireSignature: boolean;
  /** Seconds since last access or upload after which GC drops a path; 0 = forever. */
  retention: number;
  /** Caches asked in order for paths this one lacks. */
  upstreams: string[];
  upstreamKeys: string[];
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
    retention: cache.retention,
    upstreams: cache.upstreams,
    upstreamKeys: cache.upstreamKeys,
    createdAt: new Date(cache.createdAt).toISOString(),
  };
}

/** Nix reads the first three lines and skips the rest; `narwhal use` reads the public key from it. */
export function nixCacheInfo(cache: CacheRecord): string {
  return `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${cache.priority}\nPublicKey: ${publicKeyOf(cache.signingKey)}\n`;
}

function checkPriority(priority: number): number {
  if (!Number.isInteger(priority) || priority < 0 || priority > 10_000) {
    throw new NarwhalError('bad-request', 'priority must be a whole number from 0 to 10000');
  }
  return priority;
}

const MAX_RETENTION = MAX_DURATION_MS / 1000;

function checkRetention(seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > MAX_RETENTION) {
    throw new NarwhalError('bad-request', 'retention must be a whole number of seconds from 0 (forever) to 100 years');
  }
  return seconds;
}

/**
 * Upstream URLs are http(s) without credentials (those come from a netrc file, so that they are
 * not shown by `cache info`), kept without a trailing slash. An upstream's narinfos are taken only
 * signed by a key given here, so upstreams need at least one.
 */
function checkUpstreams(settings: { upstreams: string[]; upstreamKeys: string[] }): {
  upstreams: string[];
  upstreamKeys: string[];
} {
  const upstreams = settings.upstreams.map((text) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new NarwhalError('bad-request', `upstream ${JSON.stringify(text)} is not a URL`);
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password || url.search) {
      throw new NarwhalError(
        'bad-request',
        `upstream ${JSON.stringify(text)} must be an http(s) URL without credentials or query (use a netrc file)`,
      );
    }
    return url.href.replace(/\/+$/, '');
  });
  for (const key of settings.upstreamKeys) parsePublicKey(key);
  if (upstreams.length > 0 && settings.upstreamKeys.length === 0) {
    throw new NarwhalError('bad-request', 'upstreams need at least one upstream key to check their narinfos with');
  }
  return { upstreams, upstreamKeys: settings.upstreamKeys.map((key) => key.trim()) };
}

function checkSecretKey(text: string): string {
  parseSecretKey(text);
  return text.trim();
}
