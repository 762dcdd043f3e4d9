import { createHash, randomBytes } from 'node:crypto';
import { NarwhalError } from '../errors.ts';
import { MAX_DURATION_MS } from './duration.ts';
import type { Permission, TokenRecord } from '../metadata/metadata-store.ts';
import type { Narwhal } from '../context/narwhal.ts';

export const PERMISSIONS: readonly Permission[] = ['pull', 'push', 'delete', 'admin'];

/** Secrets carry a recognisable prefix so they can be found by secret scanners. */
const SECRET_PREFIX = 'nwt_';
const CACHE_PATTERN = /^[a-z0-9*][a-z0-9._*-]{0,62}$/;

export interface NewToken {
  caches: string[];
  perms: Permission[];
  name?: string;
  /** Lifetime in milliseconds; none means it never expires. */
  expiresInMs?: number;
}

/**
 * Creates a token and returns its secret, which is shown once: only its sha256 is stored, so a
 * leaked database does not leak usable tokens.
 */
export async function createToken(nw: Narwhal, spec: NewToken): Promise<{ token: TokenRecord; secret: string }> {
  if (spec.caches.length === 0)
    throw new NarwhalError('bad-request', 'a token needs at least one cache name or pattern');
  for (const pattern of spec.caches) {
    if (!CACHE_PATTERN.test(pattern))
      throw new NarwhalError('bad-request', `invalid cache name or pattern ${JSON.stringify(pattern)}`);
  }
  if (
    spec.expiresInMs !== undefined &&
    !(Number.isSafeInteger(spec.expiresInMs) && spec.expiresInMs > 0 && spec.expiresInMs <= MAX_DURATION_MS)
  ) {
    throw new NarwhalError('bad-request', 'a token lifetime must be from 1 ms to 100 years');
  }
  if (spec.perms.length === 0) throw new NarwhalError('bad-request', 'a token needs at least one permission');
  for (const perm of spec.perms) {
    if (!PERMISSIONS.includes(perm))
      throw new NarwhalError(
        'bad-request',
        `unknown permission ${JSON.stringify(perm)}: use ${PERMISSIONS.join(', ')}`,
      );
  }
  const now = Date.now();
  const token: TokenRecord = {
    id: randomBytes(6).toString('hex'),
    name: spec.name ?? '',
    caches: [...new Set(spec.caches)],
    perms: PERMISSIONS.filter((p) => spec.perms.includes(p)),
    createdAt: now,
    expiresAt: spec.expiresInMs === undefined ? null : now + spec.expiresInMs,
    revokedAt: null,
  };
  const secret = SECRET_PREFIX + randomBytes(32).toString('base64url');
  await nw.meta.createToken(token, secretHash(secret));
  return { token, secret };
}

/** The live token a secret stands for; throws 'unauthorized' for unknown, revoked or expired ones. */
export async function authenticate(nw: Narwhal, secret: string): Promise<TokenRecord> {
  const hash = secretHash(secret);
  const token = await nw.meta.findTokenBySecretHash(hash);
  if (!token) throw new NarwhalError('unauthorized', 'unknown token');
  if (token.revokedAt !== null) throw new NarwhalError('unauthorized', 'this token has been revoked');
  if (token.expiresAt !== null && token.expiresAt <= Date.now())
    throw new NarwhalError('unauthorized', 'this token has expired');
  return token;
}

export async function revokeToken(nw: Narwhal, id: string): Promise<void> {
  if (!(await nw.meta.revokeToken(id, Date.now())))
    throw new NarwhalError('not-found', `no token with id ${JSON.stringify(id)}`);
}

export function parsePermissions(text: string): Permission[] {
  return text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '') as Permission[];
}

/** Tokens are looked up by the hash of their secret, so the secret itself is never compared or stored. */
function secretHash(secret: string): Uint8Array {
  return createHash('sha256').update(secret).digest();
}
