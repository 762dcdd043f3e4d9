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
    -- Nix secret key text (name:base64); narinfos served are signed with it.
    signing_key TEXT NOT NULL,
    -- Public keys (one per line) of which an uploaded narinfo must carry a valid signature,
    -- when require_signature is set.
    trusted_keys TEXT NOT NULL DEFAULT '',
    require_signature INTEGER NOT NULL DEFAULT 0,
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
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  -- Which NARs use which chunks (each distinct chunk of a NAR once).
  CREATE TABLE nar_chunks (
    chunk_id BLOB NOT NULL REFERENCES chunks(id),
    nar_id INTEGER NOT NULL REFERENCES nars(id) ON DELETE CASCADE,
    PRIMARY KEY (chunk_id, nar_id)
  ) WITHOUT ROWID;
  CREATE INDEX nar_chunks_nar ON nar_chunks(nar_id);
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
  CREATE INDEX paths_nar ON paths(nar_id, cache_id);
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
  -- API tokens. Only the sha256 of the secret is kept. caches: comma-separated names or globs;
  -- perms: comma-separated subset of pull,push,delete,admin.
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    caches TEXT NOT NULL,
    perms TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
  );
  `,
  // 2: integrity and garbage collection.
  `
  -- Seconds since a path's last access or upload after which GC drops it; 0 keeps paths forever.
  ALTER TABLE caches ADD COLUMN retention INTEGER NOT NULL DEFAULT 0;
  -- A pinned path and its closure survive retention.
  ALTER TABLE paths ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
  -- Set when a chunk of the NAR was found missing or corrupt; its narinfos then answer 404
  -- until a re-upload of the same NAR rewrites the chunk.
  ALTER TABLE nars ADD COLUMN damaged_at INTEGER;
  -- Set by GC when it finds no path using the NAR; cleared when a path uses it again or it is
  -- uploaded again. GC deletes the NAR once this is older than its grace period.
  ALTER TABLE nars ADD COLUMN unreferenced_since INTEGER;
  -- Set when the chunk file was found missing or corrupt: ingest then rewrites it.
  ALTER TABLE chunks ADD COLUMN damaged_at INTEGER;
  -- Set when the last NAR using the chunk is deleted; ingest never reuses such a chunk, and GC
  -- deletes it once this is older than its cutoff (see src/cache/gc.ts).
  ALTER TABLE chunks ADD COLUMN unreferenced_since INTEGER;
  CREATE INDEX nars_unreferenced ON nars(unreferenced_since) WHERE unreferenced_since IS NOT NULL;
  CREATE INDEX nars_damaged ON nars(id) WHERE damaged_at IS NOT NULL;
  CREATE INDEX chunks_unreferenced ON chunks(unreferenced_since) WHERE unreferenced_since IS NOT NULL;
  CREATE INDEX chunks_damaged ON chunks(id) WHERE damaged_at IS NOT NULL;
  -- paths.refs as rows (hash parts, self-references left out), so closures are computed in SQL.
  CREATE TABLE path_refs (
    cache_id INTEGER NOT NULL,
    hash_part TEXT NOT NULL,
    ref_hash TEXT NOT NULL,
    PRIMARY KEY (cache_id, hash_part, ref_hash),
    FOREIGN KEY (cache_id, hash_part) REFERENCES paths(cache_id, hash_part) ON DELETE CASCADE
  ) WITHOUT ROWID;
  CREATE INDEX path_refs_ref ON path_refs(cache_id, ref_hash);
  WITH RECURSIVE split(cache_id, hash_part, rest, ref) AS (
    SELECT cache_id, hash_part, refs || ' ', NULL FROM paths
    UNION ALL
    SELECT cache_id, hash_part, substr(rest, instr(rest, ' ') + 1), substr(rest, 1, instr(rest, ' ') - 1) FROM split WHERE rest <> ''
  )
  INSERT OR IGNORE INTO path_refs (cache_id, hash_part, ref_hash)
    SELECT cache_id, hash_part, substr(ref, 1, 32) FROM split WHERE ref <> '' AND substr(ref, 1, 32) <> hash_part;
  -- One row per process that ingests NARs: while busy_since is set, GC spares everything such an
  -- ingest may have written or chosen to reuse since then (src/cache/ingest-holds.ts).
  CREATE TABLE ingest_holds (
    holder TEXT PRIMARY KEY,
    busy_since INTEGER,
    renewed_at INTEGER NOT NULL
  );
  `,
  // 3: leases, so that only one process at a time runs GC (src/maintenance/gc.ts).
  `
  -- A named lease, held by one holder until expires_at (ms since the epoch) unless renewed.
  CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
  );
  `,
  // 4: chunk deletion notices, for GC on chunk stores without an atomic conditional delete (S3).
  `
  -- GC notes here that it is deleting a chunk's file (done_at NULL while it does); a commit that
  -- uses a chunk whose deletion finished after its ingest started, or still runs, is refused,
  -- because the file it wrote may be gone (src/cache/gc.ts).
  CREATE TABLE chunk_deletions (
    id BLOB PRIMARY KEY,
    noted_at INTEGER NOT NULL,
    done_at INTEGER
  ) WITHOUT ROWID;
  `,
  // 5: recompression (src/maintenance/recompress.ts).
  `
  -- The zstd level the chunk's file was recompressed at (or found not worth recompressing at);
  -- NULL while it is as ingested.
  ALTER TABLE chunks ADD COLUMN zstd_level INTEGER;
  CREATE INDEX chunks_as_ingested ON chunks(id) WHERE zstd_level IS NULL;
  `,
  // 6: which cache each NAR was uploaded to (src/tenancy/nar-visibility.ts).
  `
  -- A NAR uploaded to a cache may be named by that cache's narinfos and served by it, before
  -- any path uses it; other caches see it only through paths of caches the caller may read.
  CREATE TABLE nar_upload_caches (
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    nar_id INTEGER NOT NULL REFERENCES nars(id) ON DELETE CASCADE,
    PRIMARY KEY (cache_id, nar_id)
  );
  CREATE INDEX nar_upload_caches_nar ON nar_upload_caches(nar_id);
  `,
  // 7: cache files stored as numbered pieces, so that they are streamed both ways (src/tenancy/cache-files.ts).
  `
  -- The content of one upload. AUTOINCREMENT: an id is never reused, so a reader still streaming
  -- a replaced content finds its pieces gone rather than another content's. written_at is renewed
  -- by every piece written; GC deletes contents no file uses once it is hours old.
  CREATE TABLE file_contents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    size INTEGER NOT NULL DEFAULT 0,
    written_at INTEGER NOT NULL
  );
  CREATE TABLE file_pieces (
    content_id INTEGER NOT NULL REFERENCES file_contents(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (content_id, seq)
  );
  CREATE TABLE files_v6 (
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    content_id INTEGER NOT NULL REFERENCES file_contents(id),
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    content_encoding TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (cache_id, name)
  );
  CREATE INDEX files_content ON files_v6(content_id);
  -- Each stored file becomes a content with the file's rowid as its id, cut into 256 KiB pieces
  -- (at most 256: files were limited to 64 MiB).
  INSERT INTO file_contents (id, size, written_at) SELECT rowid, length(content), created_at FROM files;
  WITH RECURSIVE seqs(seq) AS (SELECT 0 UNION ALL SELECT seq + 1 FROM seqs WHERE seq < 255)
  INSERT INTO file_pieces (content_id, seq, data)
    SELECT files.rowid, seqs.seq, substr(files.content, seqs.seq * 262144 + 1, 262144)
    FROM files JOIN seqs ON seqs.seq * 262144 < length(files.content);
  INSERT INTO files_v6 (cache_id, name, content_id, size, content_type, content_encoding, created_at)
    SELECT cache_id, name, rowid, length(content), content_type, content_encoding, created_at FROM files;
  DROP TABLE files;
  ALTER TABLE files_v6 RENAME TO files;
  `,
  // 8: delta storage (src/delta/): resemblance sketches, and the bases of chunks stored as deltas.
  `
  -- The resemblance sketch of each chunk (src/delta/resemblance.ts), a row per super-feature:
  -- feature = index * 2^32 + value. Chunks resembling one are found by index lookups on it.
  CREATE TABLE chunk_features (
    feature INTEGER NOT NULL,
    chunk_id BLOB NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    PRIMARY KEY (feature, chunk_id)
  ) WITHOUT ROWID;
  CREATE INDEX chunk_features_chunk ON chunk_features(chunk_id);
  -- A chunk stored as a delta (chunks.encoding 'delta'): the chunks whose contents, concatenated
  -- in position order, are the zstd dictionary of its frame. A base outlives its dependants.
  CREATE TABLE chunk_bases (
    chunk_id BLOB NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    base_id BLOB NOT NULL REFERENCES chunks(id),
    PRIMARY KEY (chunk_id, position)
  ) WITHOUT ROWID;
  CREATE INDEX chunk_bases_base ON chunk_bases(base_id);
  -- The length of the chunk's chain of deltas: 0 for a plain frame, else 1 + its deepest base's.
  ALTER TABLE chunks ADD COLUMN delta_depth INTEGER NOT NULL DEFAULT 0;
  `,
  // 9: delta bases by place, and chunks found not worth a delta (src/maintenance/delta-bases.ts).
  `
  -- The package of the NAR: its first path's name without hash and version (packageName in
  -- src/nix/store-path.ts). Delta encoding takes bases from the package's next NAR.
  ALTER TABLE nars ADD COLUMN package TEXT;
  CREATE INDEX nars_package ON nars(package, created_at) WHERE package IS NOT NULL;
  CREATE INDEX nars_without_package ON nars(id) WHERE package IS NULL;
  -- When delta encoding last found no worthwhile delta for the plain chunk; cleared when what could
  -- give it a base arrives (a newer NAR of its package, a new chunk sharing a super-feature).
  ALTER TABLE chunks ADD COLUMN delta_tried_at INTEGER;
  CREATE INDEX chunks_delta_untried ON chunks(created_at, id) WHERE encoding = 'zstd' AND delta_tried_at IS NULL;
  `,
  // 10: storage samples for the web UI's chart (src/maintenance/storage-samples.ts), and recent pushes.
  `
  -- A cache's figures at one moment, taken by the server every few minutes.
  CREATE TABLE storage_samples (
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    paths INTEGER NOT NULL,
    nar_bytes INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL,
    PRIMARY KEY (cache_id, at)
  ) WITHOUT ROWID;
  CREATE INDEX storage_samples_at ON storage_samples(at);
  CREATE INDEX paths_created ON paths(cache_id, created_at);
  CREATE INDEX paths_pinned ON paths(cache_id) WHERE pinned;
  `,
  // 11: pull-through caching (src/upstream/): the caches a cache asks for what it lacks, and the keys
  // their narinfos must be signed by. Both newline-separated.
  `
  ALTER TABLE caches ADD COLUMN upstreams TEXT NOT NULL DEFAULT '';
  ALTER TABLE caches ADD COLUMN upstream_keys TEXT NOT NULL DEFAULT '';
  `,
];
