import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCache } from '../../../src/tenancy/caches.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { mayShowNar } from '../../../src/tenancy/nar-visibility.ts';
import type { TokenRecord } from '../../../src/metadata/metadata-store.ts';
import { writeNar } from '../../../src/nix/nar-writer.ts';
import { addPath, bodyOf, tempNarwhal } from '../../helpers/narwhal-fixtures.ts';

function token(caches: string[], perms: TokenRecord['perms']): TokenRecord {
  return { id: 'x', name: '', caches, perms, createdAt: 0, expiresAt: null, revokedAt: null };
}

test('a NAR shows through a cache that uses it, to pushers of a cache it was uploaded to, and through caches the caller may read', async () => {
  const t = await tempNarwhal();
  try {
    const priv = await createCache(t.nw, 'priv');
    const pub = await createCache(t.nw, 'pub', { isPublic: true });
    const other = await createCache(t.nw, 'other');
    const upload = async (text: string, uploadedTo?: number) =>
      ingestNar(t.nw, bodyOf(writeNar({ type: 'regular', contents: Buffer.from(text) })), {
        compression: 'none',
        uploadedTo,
      });

    const inPriv = await upload('in priv');
    await addPath(t.nw, 'priv', inPriv);
    assert.equal(await mayShowNar(t.nw, priv, undefined, inPriv), true, 'a path of the cache uses it');
    assert.equal(await mayShowNar(t.nw, other, undefined, inPriv), false);
    assert.equal(
      await mayShowNar(t.nw, other, token(['other'], ['push']), inPriv),
      false,
      'pushing elsewhere shows nothing',
    );
    assert.equal(
      await mayShowNar(t.nw, other, token(['other', 'priv'], ['push']), inPriv),
      true,
      'the caller may read priv',
    );
    assert.equal(
      await mayShowNar(t.nw, other, token(['other', 'priv'], ['delete']), inPriv),
      false,
      'delete alone reads nothing',
    );

    const inPub = await upload('in pub');
    await addPath(t.nw, 'pub', inPub);
    assert.equal(await mayShowNar(t.nw, other, undefined, inPub), true, 'anyone may read a public cache');

    const uploadedOnly = await upload('uploaded to pub', pub.id);
    assert.equal(
      await mayShowNar(t.nw, pub, token(['pub'], ['push']), uploadedOnly),
      true,
      'its pushers see an upload',
    );
    assert.equal(await mayShowNar(t.nw, pub, undefined, uploadedOnly), false, 'readers see it once a path uses it');
    assert.equal(await mayShowNar(t.nw, pub, token(['pub'], ['pull']), uploadedOnly), false);
    assert.equal(await mayShowNar(t.nw, priv, token(['priv'], ['push']), uploadedOnly), false);
    assert.equal(
      await mayShowNar(t.nw, priv, token(['priv', 'pub'], ['push']), uploadedOnly),
      true,
      'a pusher of the cache it was uploaded to',
    );

    const orphan = await upload('no cache');
    assert.equal(await mayShowNar(t.nw, pub, token(['*'], ['admin']), orphan), false);
  } finally {
    await t.close();
  }
});
