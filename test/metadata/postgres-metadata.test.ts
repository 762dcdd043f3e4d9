import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { isNarwhalError } from '../../src/errors.ts';
import { PostgresMetadata } from '../../src/metadata/postgres-metadata.ts';
import { POSTGRES_MIGRATIONS } from '../../src/metadata/postgres-schema.ts';
import type { MetadataStore } from '../../src/metadata/metadata-store.ts';
import { LEGACY_FILES, assertLegacyFilesReadable, metadataConformance } from './metadata-conformance.ts';
import { freshDatabase } from './postgres-server.ts';

/** Each store gets its own database, dropped when the store closes. */
async function openFresh(): Promise<MetadataStore> {
  const db = await freshDatabase();
  const meta = await PostgresMetadata.open(db.url);
  const close = meta.close.bind(meta);
  meta.close = async () => {
    await close();
    await db.drop();
  };
  return meta;
}

metadataConformance('postgres', { open: openFresh });

test('postgres: replicas opening a new database at once migrate it once', async () => {
  const db = await freshDatabase();
  try {
    const stores = await Promise.all(Array.from({ length: 6 }, () => PostgresMetadata.open(db.url)));
    for (const store of stores) assert.equal(await store.schemaVersion(), POSTGRES_MIGRATIONS.length);
    // Each replica sees the others' writes.
    assert.ok(
      await stores[0].createCache('shared', {
        isPublic: true,
        priority: 40,
        signingKey: 'k:x',
        trustedKeys: [],
        requireSignature: false,
        retention: 0,
        upstreams: [],
        upstreamKeys: [],
      }),
    );
    assert.equal((await stores[5].getCache('shared'))?.name, 'shared');
    await Promise.all(stores.map((store) => store.close()));
    const reopened = await PostgresMetadata.open(db.url);
    assert.equal(await reopened.schemaVersion(), POSTGRES_MIGRATIONS.length);
    await reopened.close();
  } finally {
    await db.drop();
  }
});

test('postgres: concurrent commits of the same NAR from separate replicas record it once', async () => {
  const db = await freshDatabase();
  const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresMetadata.open(db.url)));
  try {
    const id = new Uint8Array(32).fill(7);
    const table = new Uint8Array(40);
    new DataView(table.buffer).setBigUint64(0, 100n, true);
    table.set(id, 8);
    const nar = {
      narHash: `sha256:${'r'.repeat(52)}`,
      narSize: 100,
      storedSize: 50,
      chunkTable: table,
      chunks: [{ id, size: 100, storedSize: 50 }],
    };
    const results = await Promise.all(stores.flatMap((store) => [store.commitNar(nar), store.commitNar(nar)]));
    assert.equal(new Set(results.map((r) => r.id)).size, 1);
    assert.deepEqual(await stores[0].stats(), {
      paths: 0,
      nars: 1,
      narBytes: 100,
      chunks: 1,
      chunkBytes: 100,
      storedBytes: 50,
    });
  } finally {
    await Promise.all(stores.map((store) => store.close()));
    await db.drop();
  }
});

test('postgres: an unreachable server is an error at open', async () => {
  await assert.rejects(PostgresMetadata.open('postgres://nobody:secret-pw@127.0.0.1:1/none'), (err: unknown) => {
    assert.ok(isNarwhalError(err, 'unavailable'));
    assert.match(err.message, /ECONNREFUSED/);
    assert.doesNotMatch(err.message, /secret-pw/);
    return true;
  });
});

test('postgres: files stored whole before schema 5 read back as pieces', async () => {
  const db = await freshDatabase();
  try {
    const old = new pg.Client({ connectionString: db.url });
    await old.connect();
    for (const migration of POSTGRES_MIGRATIONS.slice(0, 4)) await old.query(migration);
    await old.query('CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (4)');
    await old.query(
      "INSERT INTO caches (id, name, is_public, priority, signing_key, created_at) VALUES (1, 'main', true, 40, 'k:x', 0)",
    );
    for (const file of LEGACY_FILES) {
      await old.query(
        'INSERT INTO files (cache_id, name, content, content_type, content_encoding, created_at) VALUES (1, $1, $2, $3, $4, 0)',
        [file.name, Buffer.from(file.content), file.contentType, file.contentEncoding],
      );
    }
    await old.end();
    const meta = await PostgresMetadata.open(db.url);
    try {
      assert.equal(await meta.schemaVersion(), POSTGRES_MIGRATIONS.length);
      await assertLegacyFilesReadable(meta, 1);
    } finally {
      await meta.close();
    }
  } finally {
    await db.drop();
  }
});
