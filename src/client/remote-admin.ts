import { NarwhalError, type ErrorCode } from '../errors.ts';
import type { AdminOperations, CacheChanges, TokenInfo } from '../tenancy/admin-operations.ts';
import type { CacheInfo, NewCacheOptions } from '../tenancy/caches.ts';
import type { NewToken } from '../tenancy/tokens.ts';

const CODE_FOR_STATUS: Record<number, ErrorCode> = {
  400: 'bad-request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  409: 'conflict',
};

/** The management operations through a server's `/_api/v1/`, authenticated with a token. */
export function remoteAdmin(serverUrl: string, token: string): AdminOperations {
  const base = `${serverUrl.replace(/\/+$/, '')}/_api/v1`;
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok)
      throw new NarwhalError(
        CODE_FOR_STATUS[res.status] ?? 'unavailable',
        `server answered ${res.status}: ${text.trim()}`,
      );
    return JSON.parse(text) as T;
  }
  const cachePath = (name: string) => `/caches/${encodeURIComponent(name)}`;
  return {
    listCaches: () => call<CacheInfo[]>('GET', '/caches'),
    createCache: (name: string, options: NewCacheOptions) =>
      call<CacheInfo>('POST', '/caches', {
        name,
        public: options.isPublic,
        priority: options.priority,
        signingKey: options.signingKey,
        retention: options.retention,
        upstreams: options.upstreams,
        upstreamKeys: options.upstreamKeys,
      }),
    cacheInfo: (name: string) => call<CacheInfo>('GET', cachePath(name)),
    configureCache: (name: string, changes: CacheChanges) =>
      call<CacheInfo>('PATCH', cachePath(name), {
        public: changes.isPublic,
        priority: changes.priority,
        signingKey: changes.signingKey,
        trustedKeys: changes.trustedKeys,
        requireSignature: changes.requireSignature,
        retention: changes.retention,
        upstreams: changes.upstreams,
        upstreamKeys: changes.upstreamKeys,
      }),
    destroyCache: async (name: string) => void (await call('DELETE', cachePath(name))),
    createToken: (spec: NewToken) =>
      call<{ id: string; secret: string }>('POST', '/tokens', {
        caches: spec.caches,
        perms: spec.perms,
        name: spec.name,
        expires: spec.expiresInMs === undefined ? undefined : `${Math.round(spec.expiresInMs / 1000)}s`,
      }),
    listTokens: () => call<TokenInfo[]>('GET', '/tokens'),
    revokeToken: async (id: string) => void (await call('DELETE', `/tokens/${encodeURIComponent(id)}`)),
  };
}
