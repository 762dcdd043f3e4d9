/**
 * SQLite schema, as ordered migrations: entry i brings the schema from version i to i+1
 * (PRAGMA user_version). Never edit a migration that has shipped; add a new one.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE caches (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    is_public INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    signing_key TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE nars (
    id INTEGER PRIMARY KEY,
    nar_hash TEXT NOT NULL UNIQUE,
    nar_size INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    chunk_table BLOB NOT NULL,
    created_at INTEGER NOT NULL
  );
  -- The names clients uploaded a NAR under (nar/<file_hash>.nar<suffix>).
  CREATE TABLE nar_uploads (
    file_hash TEXT NOT NULL,
    suffix TEXT NOT NULL,
    nar_id INTEGER NOT NULL REFERENCES nars(id) ON DELETE CASCADE,
    file_size INTEGER NOT NULL,
    PRIMARY KEY (file_hash, suffix)
  );
  -- encoding: how the chunk file is stored; 'zstd' = one plain zstd frame. Room for delta encodings.
  CREATE TABLE chunks (
    id BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    encoding TEXT NOT NULL DEFAULT 'zstd',
    refcount INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE paths (
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    hash_part TEXT NOT NULL,
    store_path TEXT NOT NULL,
    nar_id INTEGER NOT NULL REFERENCES nars(id),
    refs TEXT NOT NULL,
    deriver TEXT,
    system TEXT,
    sigs TEXT NOT NULL,
    ca TEXT,
    created_at INTEGER NOT NULL,
    last_access INTEGER NOT NULL,
    PRIMARY KEY (cache_id, hash_part)
  );
  CREATE INDEX paths_nar ON paths(nar_id);
  -- Small per-cache files: build logs, .ls listings, realisations, debuginfo.
  CREATE TABLE files (
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    content BLOB NOT NULL,
    content_type TEXT NOT NULL,
    content_encoding TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (cache_id, name)
  );
  `,
];
