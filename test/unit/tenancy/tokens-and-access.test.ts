import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authenticate, createToken, revokeToken } from '../../../src/tenancy/tokens.ts';
import { globMatches, isGlobalAdmin, mayAccess, tokenCoversCache } from '../../../src/tenancy/access.ts';
import { MAX_DURATION_MS } from '../../../src/tenancy/duration.ts';
import { seededRandom } from '../../helpers/seeded-random.ts';
import { createCache } from '../../../src/tenancy/caches.ts';
import { NarwhalError } from '../../../src/errors.ts';
import type { TokenRecord } from '../../../src/metadata/metadata-store.ts';
import { tempNarwhal } from '../../helpers/narwhal-fixtures.ts';

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

test('globs: `*` matches any run, the rest matches itself, like a regular expression of `.*` parts', () => {
  const random = seededRandom(17);
  const pick = (alphabet: string, max: number) =>
    Array.from(
      { length: Math.floor(random() * (max + 1)) },
      () => alphabet[Math.floor(random() * alphabet.length)],
    ).join('');
  for (let i = 0; i < 20_000; i++) {
    const pattern = pick('ab*', 8);
    const text = pick('ab', 8);
    const reference = new RegExp(`^${pattern.split('*').join('.*')}$`).test(text);
    assert.equal(globMatches(pattern, text), reference, `${pattern} ~ ${text}`);
  }
  assert.equal(globMatches('a*a*a*a*a*a*a*a*a*b', 'a'.repeat(63)), false);
  assert.equal(globMatches(`${'a*'.repeat(20)}a`, 'a'.repeat(63)), true);
  assert.equal(globMatches('*', ''), true);
  assert.equal(globMatches('ab*ba', 'aba'), false, 'prefix and suffix may not overlap');
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

    const { secret: shortLived } = await createToken(t.nw, { caches: ['main'], perms: ['pull'], expiresInMs: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await assert.rejects(authenticate(t.nw, shortLived), /expired/);
    for (const expiresInMs of [0, -1, 0.5, MAX_DURATION_MS + 1, Number.MAX_VALUE]) {
      await assert.rejects(
        createToken(t.nw, { caches: ['main'], perms: ['pull'], expiresInMs }),
        /lifetime/,
        String(expiresInMs),
      );
    }

    await assert.rejects(createToken(t.nw, { caches: ['main'], perms: ['fly' as 'pull'] }), /unknown permission/);
    await assert.rejects(createToken(t.nw, { caches: [], perms: ['pull'] }), /at least one cache/);
    await assert.rejects(createToken(t.nw, { caches: ['../x'], perms: ['pull'] }), /invalid cache name/);
  } finally {
    await t.close();
  }
});
