import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authenticate, createToken, revokeToken } from '../../../src/cache/tokens.ts';
import { isGlobalAdmin, mayAccess, tokenCoversCache } from '../../../src/cache/access.ts';
import { createCache } from '../../../src/cache/caches.ts';
import { NarwhalError } from '../../../src/errors.ts';
import type { TokenRecord } from '../../../src/metadata/metadata-store.ts';
import { tempNarwhal } from './fixtures.ts';

const isCode = (code: string) => (err: unknown) => err instanceof NarwhalError && err.code === code;

function token(caches: string[], perms: TokenRecord['perms']): TokenRecord {
  return { id: 'x', name: '', caches, perms, createdAt: 0, expiresAt: null, revokedAt: null };
}

test('cache globs match whole names only', () => {
  assert.equal(tokenCoversCache(token(['team-*'], ['pull']), 'team-a'), true);
  assert.equal(tokenCoversCache(token(['team-*'], ['pull']), 'xteam-a'), false);
  assert.equal(tokenCoversCache(token(['a.b'], ['pull']), 'axb'), false);
  assert.equal(tokenCoversCache(token(['a', 'b'], ['pull']), 'b'), true);
  assert.equal(isGlobalAdmin(token(['*'], ['admin'])), true);
  assert.equal(isGlobalAdmin(token(['team-*'], ['admin'])), false);
});

test('access: public pull for all, everything else by token, cache and permission', async () => {
  const t = await tempNarwhal();
  try {
    const priv = await createCache(t.nw, 'priv');
    const pub = await createCache(t.nw, 'pub', { isPublic: true });
    assert.equal(mayAccess(undefined, pub, 'pull'), true);
    assert.equal(mayAccess(undefined, pub, 'push'), false);
    assert.equal(mayAccess(undefined, priv, 'pull'), false);
    assert.equal(mayAccess(token(['priv'], ['pull']), priv, 'pull'), true);
    assert.equal(mayAccess(token(['priv'], ['pull']), priv, 'push'), false);
    assert.equal(mayAccess(token(['priv'], ['push']), priv, 'pull'), true);
    assert.equal(mayAccess(token(['pub'], ['push']), priv, 'pull'), false);
    assert.equal(mayAccess(token(['priv'], ['admin']), priv, 'delete'), true);
  } finally {
    await t.close();
  }
});

test('tokens: the secret is shown once, stored hashed, and stops working when revoked or expired', async () => {
  const t = await tempNarwhal();
  try {
    const { token: made, secret } = await createToken(t.nw, { caches: ['main'], perms: ['push', 'pull'], name: 'ci' });
    assert.match(secret, /^nwt_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(made.perms, ['pull', 'push']);
    assert.equal((await authenticate(t.nw, secret)).id, made.id);
    await assert.rejects(authenticate(t.nw, secret + 'x'), isCode('unauthorized'));
    await revokeToken(t.nw, made.id);
    await assert.rejects(authenticate(t.nw, secret), /revoked/);
    await assert.rejects(revokeToken(t.nw, 'nope'), isCode('not-found'));

    const { secret: shortLived } = await createToken(t.nw, { caches: ['main'], perms: ['pull'], expiresInMs: -1 });
    await assert.rejects(authenticate(t.nw, shortLived), /expired/);

    await assert.rejects(createToken(t.nw, { caches: ['main'], perms: ['fly' as 'pull'] }), /unknown permission/);
    await assert.rejects(createToken(t.nw, { caches: [], perms: ['pull'] }), /at least one cache/);
    await assert.rejects(createToken(t.nw, { caches: ['../x'], perms: ['pull'] }), /invalid cache name/);
  } finally {
    await t.close();
  }
});
