import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadata } from '../../src/metadata/sqlite-metadata.ts';
import { SQLITE_MIGRATIONS } from '../../src/metadata/sqlite-schema.ts';
import { LEGACY_FILES, assertLegacyFilesReadable, metadataConformance } from './metadata-conformance.ts';

const dir = await mkdtemp(join(tmpdir(), 'narwhal-sqlite-conformance-'));
after(() => rm(dir, { recursive: true, force: true }));
let n = 0;

metadataConformance('sqlite', { open: async () => new SqliteMetadata(join(dir, `db${n++}.sqlite`)) });

test('sqlite: files stored whole before schema 6 read back as pieces', async () => {
  const path = join(dir, 'schema5.sqlite');
  const old = new DatabaseSync(path);
  for (const migration of SQLITE_MIGRATIONS.slice(0, 5)) old.exec(migration);
  old.exec('PRAGMA user_version = 5');
  old
    .prepare(
      "INSERT INTO caches (id, name, is_public, priority, signing_key, created_at) VALUES (1, 'main', 1, 40, 'k:x', 0)",
    )
    .run();
  const insert = old.prepare(
    'INSERT INTO files (cache_id, name, content, content_type, content_encoding, created_at) VALUES (1, ?, ?, ?, ?, 0)',
  );
  for (const file of LEGACY_FILES) insert.run(file.name, file.content, file.contentType, file.contentEncoding);
  old.close();
  const meta = new SqliteMetadata(path);
  try {
    assert.equal(await meta.schemaVersion(), SQLITE_MIGRATIONS.length);
    await assertLegacyFilesReadable(meta, 1);
  } finally {
    await meta.close();
  }
});
