import { SKETCH_SUPER_FEATURES } from '../delta/resemblance.ts';
import { RAW_BLOCK_BYTES, RAW_BLOCK_HEADER_BYTES, RAW_FRAME_HEADER_BYTES } from '../delta/stored-form.ts';
import type { ListColumn, SqlDialect, SqlStatement } from './sql-dialect.ts';

/** The columns toPath reads, from `paths JOIN nars`. */
const PATH_COLUMNS =
  'paths.*, nars.nar_hash, nars.nar_size, nars.stored_size AS nar_stored_size, nars.damaged_at AS nar_damaged_at';

/** The columns of `paths` that pathUpload compares. */
const PATH_IDENTITY_COLUMNS = 'store_path, nar_id, refs, deriver, system, ca, sigs';

/** The NAR (aliased `nars`) has no damaged chunk. */
const NO_DAMAGED_CHUNK = `NOT EXISTS (SELECT 1 FROM nar_chunks AS used JOIN chunks ON chunks.id = used.chunk_id
  WHERE used.nar_id = nars.id AND chunks.damaged_at IS NOT NULL)`;

/** rawFrameSize (src/delta/stored-form.ts) of `size` bytes, in SQL. */
function rawFrameSizeSql(size: string): string {
  return `(${size} + ${RAW_FRAME_HEADER_BYTES} + ${RAW_BLOCK_HEADER_BYTES} * CASE WHEN ${size} = 0 THEN 1 ELSE (${size} + ${RAW_BLOCK_BYTES - 1}) / ${RAW_BLOCK_BYTES} END)`;
}

/** What a `.nar.zst` sends for the chunk: its stored frame, or a raw frame in place of a delta. */
const SERVED_SIZE = `CASE WHEN chunks.encoding = 'delta' THEN ${rawFrameSizeSql('chunks.size')} ELSE chunks.stored_size END`;

/** How far the chain walks go: one past the longest chain allowed (MAX_DELTA_DEPTH), so that a longer one shows. */
const MAX_CHAIN_WALK = 4;

/** The longest walk through chunk_bases from the chunk given, `from` column to `to` column, up to MAX_CHAIN_WALK steps. */
function chainWalk(from: string, to: string): string {
  return `WITH RECURSIVE walk(id, steps) AS (
    SELECT ${to}, 1 FROM chunk_bases WHERE ${from} = ?
    UNION ALL SELECT chunk_bases.${to}, walk.steps + 1 FROM chunk_bases JOIN walk ON chunk_bases.${from} = walk.id
      WHERE walk.steps < ${MAX_CHAIN_WALK}
  ) SELECT coalesce(max(steps), 0) AS n FROM walk`;
}

/**
 * chunkOwners looks at this many of the NARs using a chunk, no more, so that a request naming
 * chunks every NAR uses does bounded work (a chunk found in none of them counts as absent).
 */
const CHUNK_OWNER_NARS = 64;

/** The indexes of a sketch's super-features. */
const SUPER_FEATURES = Array.from({ length: SKETCH_SUPER_FEATURES }, (_, j) => j);

const CACHE_SETTINGS =
  'is_public = ?, priority = ?, signing_key = ?, trusted_keys = ?, require_signature = ?, retention = ?, upstreams = ?, upstream_keys = ?';

/**
 * The live paths of a cache (parameters: cache id, accessed-before time, cache id): pinned, or
 * accessed at or after the time, or referred to (transitively) by a live path of the cache.
 * The recursive step starts from the row just found (CROSS JOIN keeps SQLite's join order), so
 * that it looks up that path's references by primary key: with path_refs first, SQLite scanned
 * every reference of the cache per path found (2,000 paths: 1.6 s, against 12 ms).
 */
const LIVE_PATHS = `WITH RECURSIVE live(hash_part) AS (
  SELECT hash_part FROM paths WHERE cache_id = ? AND (pinned OR last_access >= ?)
  UNION
  SELECT path_refs.ref_hash FROM live CROSS JOIN path_refs WHERE path_refs.hash_part = live.hash_part AND path_refs.cache_id = ?
)`;

/**
 * A cache's paths, NAR bytes of its paths, and stored bytes of the distinct chunks their NARs use
 * (what the cache would take on its own), as columns; `id` is the cache id's SQL (used 3 times).
 * It reads every path and chunk of the cache: the server samples it (storage-samples.ts) rather
 * than working it out per page.
 */
function cacheUsageColumns(id: string): string {
  return `(SELECT count(*) FROM paths WHERE paths.cache_id = ${id}) AS paths,
    (SELECT coalesce(sum(nars.nar_size), 0) FROM paths JOIN nars ON nars.id = paths.nar_id WHERE paths.cache_id = ${id}) AS nar_bytes,
    (SELECT coalesce(sum(chunks.stored_size), 0) FROM chunks WHERE chunks.id IN (
      SELECT nar_chunks.chunk_id FROM paths JOIN nar_chunks ON nar_chunks.nar_id = paths.nar_id WHERE paths.cache_id = ${id}
    )) AS stored_bytes`;
}

/** Every statement of the metadata store, in the dialect's form (built once per store). */
export function metadataStatements(d: SqlDialect) {
  const sql = d.statement;
  const list = d.listStatement;
  return {
    cacheByName: sql('SELECT * FROM caches WHERE name = ?'),
    insertCache: sql(
      `INSERT INTO caches (name, is_public, priority, signing_key, trusted_keys, require_signature, retention, upstreams, upstream_keys, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING *`,
    ),
    updateCache: sql(`UPDATE caches SET ${CACHE_SETTINGS} WHERE name = ?`),
    deleteCache: sql('DELETE FROM caches WHERE name = ?'),
    caches: sql('SELECT * FROM caches ORDER BY name'),

    insertToken: sql(
      'INSERT INTO tokens (id, secret_hash, name, caches, perms, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    tokenBySecretHash: sql('SELECT * FROM tokens WHERE secret_hash = ?'),
    tokens: sql('SELECT * FROM tokens ORDER BY created_at, id'),
    revokeToken: sql('UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?'),

    cacheUsesNar: sql('SELECT 1 AS found FROM paths WHERE nar_id = ? AND cache_id = ? LIMIT 1'),
    narOwners: sql(
      'SELECT DISTINCT cache_id, 1 AS used FROM paths WHERE nar_id = ? UNION SELECT cache_id, 0 AS used FROM nar_upload_caches WHERE nar_id = ?',
    ),
    chunkOwners: sql(
      `SELECT DISTINCT paths.cache_id AS cache_id, 1 AS used
         FROM (SELECT nar_id FROM nar_chunks WHERE chunk_id = ? LIMIT ${CHUNK_OWNER_NARS}) AS users
         JOIN paths ON paths.nar_id = users.nar_id
       UNION SELECT nar_upload_caches.cache_id, 0
         FROM (SELECT nar_id FROM nar_chunks WHERE chunk_id = ? LIMIT ${CHUNK_OWNER_NARS}) AS users
         JOIN nar_upload_caches ON nar_upload_caches.nar_id = users.nar_id`,
    ),
    cacheUsesChunk: sql(
      `SELECT 1 AS found FROM nar_chunks JOIN paths ON paths.nar_id = nar_chunks.nar_id
       WHERE nar_chunks.chunk_id = ? AND paths.cache_id = ? LIMIT 1`,
    ),

    narByHash: sql('SELECT * FROM nars WHERE nar_hash = ?'),
    narById: sql('SELECT * FROM nars WHERE id = ?'),
    narExists: sql('SELECT 1 AS found FROM nars WHERE id = ?'),
    narByUpload: sql(
      'SELECT nars.* FROM nar_uploads JOIN nars ON nars.id = nar_uploads.nar_id WHERE file_hash = ? AND suffix = ?',
    ),
    nars: sql('SELECT * FROM nars WHERE id > ? ORDER BY id LIMIT ?'),
    reusableChunk: sql(
      'SELECT 1 AS found FROM chunks WHERE id = ? AND unreferenced_since IS NULL AND damaged_at IS NULL',
    ),

    // commitNar
    anyChunkDeletion: sql('SELECT 1 AS found FROM chunk_deletions LIMIT 1'),
    chunkDeletedSince: list(
      `SELECT 1 AS found FROM chunk_deletions WHERE id ${d.anyOf('bytea')} AND (done_at IS NULL OR done_at >= ?) LIMIT 1`,
    ),
    anyDamagedChunk: sql('SELECT 1 AS found FROM chunks WHERE damaged_at IS NOT NULL LIMIT 1'),
    narStateByHash: sql('SELECT id, damaged_at FROM nars WHERE nar_hash = ?'),
    narReferencedAgain: sql(
      'UPDATE nars SET unreferenced_since = NULL WHERE id = ? AND unreferenced_since IS NOT NULL',
    ),
    // Under the write lock the lookup before it is final; ON CONFLICT guards against a writer that does not take it.
    insertNar: sql(
      `INSERT INTO nars (nar_hash, nar_size, chunk_count, stored_size, chunk_table, created_at)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (nar_hash) DO UPDATE SET unreferenced_since = NULL RETURNING id`,
    ),
    /**
     * Of the chunks given with the stored size written, those served at another size or stored as
     * deltas: new minus served, and the encoding.
     */
    chunkResizes: list(
      `SELECT c.id, c.stored_size - ${SERVED_SIZE} AS change, chunks.encoding FROM ${d.listRows([
        ['id', 'bytea'],
        ['stored_size', 'bigint'],
      ])}
       JOIN chunks ON chunks.id = c.id WHERE ${SERVED_SIZE} <> c.stored_size OR chunks.encoding <> 'zstd'`,
    ),
    anyDelta: sql('SELECT 1 AS found FROM chunk_bases LIMIT 1'),
    /** Of the chunks a new NAR reuses with their stored size, the deltas: served minus stored. */
    deltasServed: list(
      `SELECT c.id, ${SERVED_SIZE} - c.stored_size AS change FROM ${d.listRows([
        ['id', 'bytea'],
        ['stored_size', 'bigint'],
      ])}
       JOIN chunks ON chunks.id = c.id WHERE chunks.encoding = 'delta'`,
    ),
    deleteChunkBases: list(`DELETE FROM chunk_bases WHERE chunk_id ${d.anyOf('bytea')}`),
    damagedChunks: list(`SELECT id FROM chunks WHERE id ${d.anyOf('bytea')} AND damaged_at IS NOT NULL`),
    // A chunk the NAR uses is referenced again; with `written` (the last six parameters), it is whole again, as written (plain).
    upsertChunks: list(
      `INSERT INTO chunks (id, size, stored_size, created_at)
       SELECT c.id, c.size, c.stored_size, CAST(? AS BIGINT) FROM ${d.listRows([
         ['id', 'bytea'],
         ['size', 'bigint'],
         ['stored_size', 'bigint'],
       ])} WHERE true
       ON CONFLICT (id) DO UPDATE SET unreferenced_since = NULL, damaged_at = CASE WHEN ? THEN NULL ELSE chunks.damaged_at END,
         stored_size = CASE WHEN ? THEN excluded.stored_size ELSE chunks.stored_size END,
         zstd_level = CASE WHEN ? AND (chunks.stored_size <> excluded.stored_size OR chunks.encoding <> 'zstd') THEN NULL ELSE chunks.zstd_level END,
         encoding = CASE WHEN ? THEN 'zstd' ELSE chunks.encoding END,
         delta_depth = CASE WHEN ? THEN 0 ELSE chunks.delta_depth END
       WHERE chunks.unreferenced_since IS NOT NULL
         OR (? AND (chunks.damaged_at IS NOT NULL OR chunks.stored_size <> excluded.stored_size OR chunks.encoding <> 'zstd'))`,
    ),
    insertNarChunks: list(
      `INSERT INTO nar_chunks (chunk_id, nar_id) SELECT c.id, CAST(? AS BIGINT) FROM ${d.listRows([['id', 'bytea']])} WHERE true ON CONFLICT DO NOTHING`,
    ),
    healNarsUsing: list(
      `UPDATE nars SET damaged_at = NULL WHERE damaged_at IS NOT NULL
         AND id IN (SELECT nar_id FROM nar_chunks WHERE chunk_id ${d.anyOf('bytea')}) AND ${NO_DAMAGED_CHUNK}`,
    ),
    // The NAR was just read whole, except where it reused a chunk flagged meanwhile.
    settleNarDamage: sql(
      `UPDATE nars SET damaged_at = CASE WHEN ${NO_DAMAGED_CHUNK} THEN NULL ELSE coalesce(damaged_at, ?) END WHERE id = ?`,
    ),
    insertNarUpload: sql(
      'INSERT INTO nar_uploads (file_hash, suffix, nar_id, file_size) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    insertNarUploadCache: sql('INSERT INTO nar_upload_caches (cache_id, nar_id) VALUES (?, ?) ON CONFLICT DO NOTHING'),

    // Stored sizes of NARs that follow their chunks' (moveNarStoredSizes).
    narsUsingChunks: list(`SELECT DISTINCT nar_id FROM nar_chunks WHERE chunk_id ${d.anyOf('bytea')}`),
    narChunkTables: list(`SELECT id, chunk_table FROM nars WHERE id ${d.anyOf('bigint')}`),
    moveNarStoredSizes: list(
      `UPDATE nars SET stored_size = stored_size + c.change FROM ${d.listRows([
        ['id', 'bigint'],
        ['change', 'bigint'],
      ])} WHERE nars.id = c.id`,
    ),

    path: sql(
      `SELECT ${PATH_COLUMNS} FROM paths JOIN nars ON nars.id = paths.nar_id WHERE cache_id = ? AND hash_part = ?`,
    ),
    paths: sql(
      `SELECT ${PATH_COLUMNS} FROM paths JOIN nars ON nars.id = paths.nar_id WHERE cache_id = ? ORDER BY store_path${d.bytewise}`,
    ),
    storePaths: list(`SELECT hash_part, store_path FROM paths WHERE cache_id = ? AND hash_part ${d.anyOf('text')}`),
    pathIdentity: sql(`SELECT ${PATH_IDENTITY_COLUMNS} FROM paths WHERE cache_id = ? AND hash_part = ?`),
    setPathSigs: sql('UPDATE paths SET sigs = ? WHERE cache_id = ? AND hash_part = ?'),
    upsertPath: sql(
      `INSERT INTO paths (cache_id, hash_part, store_path, nar_id, refs, deriver, system, sigs, ca, created_at, last_access)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (cache_id, hash_part) DO UPDATE SET
         store_path = excluded.store_path, nar_id = excluded.nar_id, refs = excluded.refs,
         deriver = excluded.deriver, system = excluded.system, sigs = excluded.sigs, ca = excluded.ca,
         created_at = excluded.created_at, last_access = excluded.last_access`,
    ),
    deletePathRefs: sql('DELETE FROM path_refs WHERE cache_id = ? AND hash_part = ?'),
    insertPathRefs: list(
      `INSERT INTO path_refs (cache_id, hash_part, ref_hash) SELECT CAST(? AS BIGINT), ?, c.ref_hash FROM ${d.listRows([['ref_hash', 'text']])}`,
    ),
    setPathPinned: sql('UPDATE paths SET pinned = ? WHERE cache_id = ? AND hash_part = ?'),
    referrers: list(`SELECT DISTINCT hash_part FROM path_refs WHERE cache_id = ? AND ref_hash ${d.anyOf('text')}`),
    deletePaths: list(`DELETE FROM paths WHERE cache_id = ? AND hash_part ${d.anyOf('text')} RETURNING hash_part`),
    touchPath: sql('UPDATE paths SET last_access = ? WHERE cache_id = ? AND hash_part = ? AND last_access < ?'),
    staleNarPath: sql('SELECT 1 AS found FROM paths WHERE nar_id = ? AND cache_id = ? AND last_access < ? LIMIT 1'),
    touchNarPaths: sql('UPDATE paths SET last_access = ? WHERE nar_id = ? AND cache_id = ? AND last_access < ?'),

    file: sql('SELECT content_id, size, content_type, content_encoding FROM files WHERE cache_id = ? AND name = ?'),
    fileContentId: sql('SELECT content_id FROM files WHERE cache_id = ? AND name = ?'),
    filePiece: sql('SELECT data FROM file_pieces WHERE content_id = ? AND seq = ?'),
    insertFileContent: sql('INSERT INTO file_contents (written_at) VALUES (?) RETURNING id'),
    fileContentSize: sql('SELECT size FROM file_contents WHERE id = ?'),
    growFileContent: sql('UPDATE file_contents SET size = size + ?, written_at = ? WHERE id = ?'),
    insertFilePiece: sql('INSERT INTO file_pieces (content_id, seq, data) VALUES (?, ?, ?)'),
    // growFileContent then insertFilePiece in one statement, so atomic without the write lock.
    growFileContentWithPiece: sql(
      `WITH grown AS (UPDATE file_contents SET size = size + ?, written_at = ? WHERE id = ? RETURNING id)
       INSERT INTO file_pieces (content_id, seq, data) SELECT id, ?, ? FROM grown`,
    ),
    upsertFile: sql(
      `INSERT INTO files (cache_id, name, content_id, size, content_type, content_encoding, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (cache_id, name) DO UPDATE SET content_id = excluded.content_id, size = excluded.size, content_type = excluded.content_type,
         content_encoding = excluded.content_encoding, created_at = excluded.created_at`,
    ),
    deleteUnusedFileContent: sql(
      'DELETE FROM file_contents WHERE id = ? AND NOT EXISTS (SELECT 1 FROM files WHERE files.content_id = file_contents.id)',
    ),
    deleteAbandonedFileContents: sql(
      `DELETE FROM file_contents WHERE id IN (
         SELECT id FROM file_contents WHERE written_at <= ? AND NOT EXISTS (SELECT 1 FROM files WHERE files.content_id = file_contents.id) LIMIT ?
       ) RETURNING size`,
    ),

    stats: sql(
      `SELECT (SELECT count(*) FROM paths) AS paths,
              (SELECT count(*) FROM nars) AS nars, (SELECT coalesce(sum(nar_size), 0) FROM nars) AS nar_bytes,
              c.n AS chunks, c.bytes AS chunk_bytes, c.stored AS stored_bytes
       FROM (SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes, coalesce(sum(stored_size), 0) AS stored FROM chunks) AS c`,
    ),

    // The chunks given and every chunk stored as a delta on one of them, through any chain.
    markChunksDamaged: list(
      `WITH RECURSIVE hurt(id) AS (
         SELECT c.id FROM ${d.listRows([['id', 'bytea']])}
         UNION SELECT chunk_bases.chunk_id FROM chunk_bases JOIN hurt ON chunk_bases.base_id = hurt.id
       )
       UPDATE chunks SET damaged_at = ? WHERE id IN (SELECT id FROM hurt) AND damaged_at IS NULL`,
    ),
    markNarsDamaged: list(
      `WITH RECURSIVE hurt(id) AS (
         SELECT c.id FROM ${d.listRows([['id', 'bytea']])}
         UNION SELECT chunk_bases.chunk_id FROM chunk_bases JOIN hurt ON chunk_bases.base_id = hurt.id
       )
       UPDATE nars SET damaged_at = ? WHERE damaged_at IS NULL
         AND id IN (SELECT nar_id FROM nar_chunks WHERE chunk_id IN (SELECT id FROM hurt))`,
    ),
    flagChunksDamaged: list(`UPDATE chunks SET damaged_at = coalesce(damaged_at, ?) WHERE id ${d.anyOf('bytea')}`),
    clearChunksDamaged: list(`UPDATE chunks SET damaged_at = NULL WHERE id ${d.anyOf('bytea')}`),
    chunks: sql('SELECT * FROM chunks WHERE id > ? ORDER BY id LIMIT ?'),
    chunk: sql('SELECT * FROM chunks WHERE id = ?'),
    existingChunks: list(`SELECT id FROM chunks WHERE id ${d.anyOf('bytea')}`),
    chunksToRecompress: sql(
      `SELECT * FROM chunks WHERE zstd_level IS NULL AND id > ? AND damaged_at IS NULL AND unreferenced_since IS NULL
         AND encoding = 'zstd'
       ORDER BY id LIMIT ?`,
    ),
    narsToRecompress: sql(
      `SELECT * FROM nars WHERE id IN (
         SELECT nar_chunks.nar_id FROM chunks JOIN nar_chunks ON nar_chunks.chunk_id = chunks.id
         WHERE chunks.zstd_level IS NULL AND chunks.damaged_at IS NULL AND chunks.unreferenced_since IS NULL
           AND chunks.encoding = 'zstd' AND nar_chunks.nar_id > ?)
       ORDER BY id LIMIT ?`,
    ),
    recordRecompressed: list(
      `UPDATE chunks SET stored_size = c.stored_size, zstd_level = c.zstd_level
       FROM ${d.listRows([
         ['id', 'bytea'],
         ['old_stored_size', 'bigint'],
         ['stored_size', 'bigint'],
         ['zstd_level', 'int'],
       ])}
       WHERE chunks.id = c.id AND chunks.stored_size = c.old_stored_size AND chunks.encoding = 'zstd' RETURNING chunks.id`,
    ),
    usableBases: list(
      `SELECT id FROM chunks WHERE id ${d.anyOf('bytea')} AND unreferenced_since IS NULL AND damaged_at IS NULL`,
    ),
    recordDeltas: list(
      `UPDATE chunks SET encoding = 'delta', stored_size = c.stored_size, zstd_level = c.zstd_level, delta_depth = c.delta_depth
       FROM ${d.listRows([
         ['id', 'bytea'],
         ['old_stored_size', 'bigint'],
         ['stored_size', 'bigint'],
         ['zstd_level', 'int'],
         ['delta_depth', 'int'],
       ])}
       WHERE chunks.id = c.id AND chunks.stored_size = c.old_stored_size AND chunks.encoding = 'zstd'
       RETURNING chunks.id, chunks.size`,
    ),
    // The deltas built directly on these chunks get 1 + their deepest base's depth (a base became a delta).
    refreshDependantDepths: list(
      `UPDATE chunks SET delta_depth = 1 + (
         SELECT max(b.delta_depth) FROM chunk_bases JOIN chunks AS b ON b.id = chunk_bases.base_id
         WHERE chunk_bases.chunk_id = chunks.id
       )
       WHERE encoding = 'delta' AND id IN (SELECT chunk_id FROM chunk_bases WHERE base_id ${d.anyOf('bytea')})
       RETURNING id`,
    ),
    insertChunkBases: list(
      `INSERT INTO chunk_bases (chunk_id, position, base_id) SELECT c.chunk_id, c.position, c.base_id FROM ${d.listRows(
        [
          ['chunk_id', 'bytea'],
          ['position', 'int'],
          ['base_id', 'bytea'],
        ],
      )} WHERE true ON CONFLICT (chunk_id, position) DO UPDATE SET base_id = excluded.base_id`,
    ),
    setChunkLevels: list(`UPDATE chunks SET zstd_level = ? WHERE id ${d.anyOf('bytea')}`),
    // Resemblance sketches (src/delta/resemblance.ts): a row per super-feature j, feature = j * 2^32 + value, from
    // a list element per chunk (its id, then its features f0, f1, ...). Only a chunk with no sketch recorded gets
    // one, and not one deleted meanwhile (GC).
    insertChunkFeatures: list(
      `INSERT INTO chunk_features (feature, chunk_id)
       SELECT CASE j.i ${SUPER_FEATURES.map((j) => `WHEN ${j} THEN c.f${j}`).join(' ')} END, c.id
       FROM ${d.listRows([['id', 'bytea'], ...SUPER_FEATURES.map((j): ListColumn => [`f${j}`, 'bigint'])])}
       CROSS JOIN (${SUPER_FEATURES.map((j) => `SELECT ${j} AS i`).join(' UNION ALL ')}) AS j
       WHERE EXISTS (SELECT 1 FROM chunks WHERE chunks.id = c.id)
         AND NOT EXISTS (SELECT 1 FROM chunk_features WHERE chunk_features.chunk_id = c.id)
       ON CONFLICT DO NOTHING`,
    ),
    chunksWithoutSketch: sql(
      `SELECT * FROM chunks WHERE id > ? AND damaged_at IS NULL AND unreferenced_since IS NULL
         AND NOT EXISTS (SELECT 1 FROM chunk_features WHERE chunk_features.chunk_id = chunks.id)
       ORDER BY id LIMIT ?`,
    ),
    // Parameters: per super-feature its feature and how many of its rows to read at most, then the limit. The
    // bound keeps a value that very many chunks share (that of all-zero chunks, say) from making this a scan.
    similarChunks: sql(
      `SELECT chunk_id, count(*) AS matches FROM (${SUPER_FEATURES.map(
        (j) => `SELECT chunk_id FROM (SELECT chunk_id FROM chunk_features WHERE feature = ? LIMIT ?) AS f${j}`,
      ).join(' UNION ALL ')}) AS found
       GROUP BY chunk_id ORDER BY matches DESC, chunk_id LIMIT ?`,
    ),
    // Delta encoding (src/maintenance/delta-encode.ts): plain chunks in use with a sketch, not found unworthy since
    // something changed, newest first, a row per super-feature.
    deltaCandidates: sql(
      `SELECT chunks.*, chunk_features.feature FROM chunks JOIN chunk_features ON chunk_features.chunk_id = chunks.id
       WHERE chunks.id IN (
         SELECT id FROM chunks WHERE encoding = 'zstd' AND delta_tried_at IS NULL
           AND (created_at < ? OR (created_at = ? AND id > ?))
           AND damaged_at IS NULL AND unreferenced_since IS NULL
           AND EXISTS (SELECT 1 FROM chunk_features WHERE chunk_features.chunk_id = chunks.id)
           AND NOT EXISTS (SELECT 1 FROM chunk_bases WHERE chunk_bases.chunk_id = chunks.id)
         ORDER BY created_at DESC, id LIMIT ?
       ) ORDER BY chunks.created_at DESC, chunks.id, chunk_features.feature`,
    ),
    // Delta bases by place (src/maintenance/delta-bases.ts).
    narPackage: sql('SELECT package, created_at FROM nars WHERE id = ?'),
    setNarPackage: sql('UPDATE nars SET package = ? WHERE id = ? AND package IS NULL'),
    // The chunks of the package's NAR before the one given: a newer NAR may give them bases now.
    retryChunksOfPreviousNar: sql(
      `UPDATE chunks SET delta_tried_at = NULL WHERE delta_tried_at IS NOT NULL AND id IN (
         SELECT chunk_id FROM nar_chunks WHERE nar_id = (
           SELECT id FROM nars WHERE package = ? AND created_at < ? ORDER BY created_at DESC LIMIT 1))`,
    ),
    narsWithoutPackage: sql(
      `SELECT id, created_at, (SELECT store_path FROM paths WHERE paths.nar_id = nars.id LIMIT 1) AS store_path
       FROM nars WHERE package IS NULL AND id > ? ORDER BY id LIMIT ?`,
    ),
    // The newest NAR using the chunk whose package is known, and the next NAR of that package.
    chunkNewestNar: sql(
      `SELECT nars.id, nars.nar_size, nars.created_at, nars.package FROM nar_chunks JOIN nars ON nars.id = nar_chunks.nar_id
       WHERE nar_chunks.chunk_id = ? AND nars.package IS NOT NULL AND nars.unreferenced_since IS NULL
       ORDER BY nars.created_at DESC LIMIT 1`,
    ),
    nextNarOfPackage: sql(
      `SELECT id, nar_size, created_at FROM nars WHERE package = ? AND created_at > ? AND unreferenced_since IS NULL
       ORDER BY created_at LIMIT 1`,
    ),
    // Other NARs of a package, the newest first, each with a store path naming it.
    otherNarsOfPackage: sql(
      `SELECT id, nar_size, created_at, (SELECT store_path FROM paths WHERE paths.nar_id = nars.id LIMIT 1) AS store_path
       FROM nars WHERE package = ? AND id <> ? AND unreferenced_since IS NULL ORDER BY created_at DESC LIMIT ?`,
    ),
    narChunkTable: sql('SELECT chunk_table FROM nars WHERE id = ?'),
    markDeltaTried: list(`UPDATE chunks SET delta_tried_at = ? WHERE encoding = 'zstd' AND id ${d.anyOf('bytea')}`),
    // Chunks sharing a super-feature with new sketches: one of these may be their base now.
    retryChunksWithFeatures: list(
      `UPDATE chunks SET delta_tried_at = NULL WHERE delta_tried_at IS NOT NULL AND id IN (
         SELECT chunk_id FROM chunk_features WHERE feature ${d.anyOf('bigint')})`,
    ),
    // The longest chain of bases below a chunk (its own rows included, reserved ones too), bounded.
    deltaDepthBelow: sql(chainWalk('chunk_id', 'base_id')),
    // The longest chain of chunks built on a chunk, transitively, bounded.
    deltaHeightAbove: sql(chainWalk('base_id', 'chunk_id')),
    pendingDeltas: sql(
      `SELECT chunks.*, chunk_bases.base_id FROM chunks JOIN chunk_bases ON chunk_bases.chunk_id = chunks.id
       WHERE chunks.id IN (
         SELECT id FROM chunks WHERE id > ? AND encoding = 'zstd'
           AND EXISTS (SELECT 1 FROM chunk_bases WHERE chunk_bases.chunk_id = chunks.id)
         ORDER BY id LIMIT ?
       ) ORDER BY chunks.id, chunk_bases.position`,
    ),
    // A chunk may be reserved (delta-encode.ts) only while plain with no bases recorded: one pass at a time encodes it.
    reservableChunk: sql(
      `SELECT 1 AS found FROM chunks WHERE id = ? AND encoding = 'zstd'
         AND NOT EXISTS (SELECT 1 FROM chunk_bases WHERE chunk_bases.chunk_id = chunks.id)`,
    ),
    chunkBasesOf: list(
      `SELECT chunk_id, position, base_id FROM chunk_bases WHERE chunk_id ${d.anyOf('bytea')} ORDER BY chunk_id, position`,
    ),
    dropPlainChunkBases: list(
      `DELETE FROM chunk_bases WHERE chunk_id ${d.anyOf('bytea')}
         AND EXISTS (SELECT 1 FROM chunks WHERE chunks.id = chunk_bases.chunk_id AND chunks.encoding = 'zstd')`,
    ),
    // The bases, at every depth, of a NAR's chunks stored (or being stored) as deltas.
    narDeltaBases: sql(
      `WITH RECURSIVE walk(id, steps) AS (
         SELECT chunk_bases.base_id, 1 FROM nar_chunks JOIN chunk_bases ON chunk_bases.chunk_id = nar_chunks.chunk_id
           WHERE nar_chunks.nar_id = ?
         UNION SELECT chunk_bases.base_id, walk.steps + 1 FROM chunk_bases JOIN walk ON chunk_bases.chunk_id = walk.id
           WHERE walk.steps < ${MAX_CHAIN_WALK}
       ) SELECT DISTINCT id FROM walk`,
    ),
    narChunks: sql(
      'SELECT chunks.* FROM nar_chunks JOIN chunks ON chunks.id = nar_chunks.chunk_id WHERE nar_chunks.nar_id = ?',
    ),
    setNarDamaged: sql(
      'UPDATE nars SET damaged_at = CASE WHEN ? THEN coalesce(damaged_at, ?) ELSE NULL END WHERE id = ?',
    ),
    damagedNarCount: sql('SELECT count(*) AS n FROM nars WHERE damaged_at IS NOT NULL'),

    expirePaths: sql(
      `${LIVE_PATHS} DELETE FROM paths WHERE cache_id = ? AND hash_part NOT IN (SELECT hash_part FROM live)`,
    ),
    // What expirePaths would delete, the longest unused first.
    // Only paths past retention and unpinned can be expired: checked first, so that while there are none the closure walk is not run.
    expirablePaths: sql(
      `${LIVE_PATHS} SELECT ${PATH_COLUMNS} FROM paths JOIN nars ON nars.id = paths.nar_id
       WHERE paths.cache_id = ? AND NOT paths.pinned AND paths.last_access < ? AND paths.hash_part NOT IN (SELECT hash_part FROM live)
       ORDER BY paths.last_access, paths.hash_part LIMIT ?`,
    ),

    cacheUsage: sql(`SELECT ${cacheUsageColumns('CAST(? AS BIGINT)')}`),
    insertStorageSample: sql(
      `INSERT INTO storage_samples (cache_id, at, paths, nar_bytes, stored_bytes) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (cache_id, at) DO NOTHING`,
    ),
    storageSamples: sql('SELECT * FROM storage_samples WHERE cache_id = ? AND at >= ? ORDER BY at DESC LIMIT ?'),
    deleteStorageSamples: sql('DELETE FROM storage_samples WHERE at < ?'),
    recentPaths: sql(
      `SELECT ${PATH_COLUMNS} FROM paths JOIN nars ON nars.id = paths.nar_id WHERE paths.cache_id = ?
       ORDER BY paths.created_at DESC, paths.hash_part LIMIT ?`,
    ),
    pinnedPaths: sql(
      `SELECT ${PATH_COLUMNS} FROM paths JOIN nars ON nars.id = paths.nar_id WHERE paths.cache_id = ? AND paths.pinned
       ORDER BY paths.store_path${d.bytewise} LIMIT ?`,
    ),
    searchPaths: sql(
      `SELECT ${PATH_COLUMNS} FROM paths JOIN nars ON nars.id = paths.nar_id
       WHERE paths.cache_id = ? AND lower(paths.store_path) LIKE ? ESCAPE '!'
       ORDER BY paths.store_path${d.bytewise} LIMIT ?`,
    ),
    // By hash part, the order of the index on ref_hash: a path that every path refers to has its first few read, not all sorted.
    referrersOf: sql(
      `SELECT ${PATH_COLUMNS} FROM path_refs
       JOIN paths ON paths.cache_id = path_refs.cache_id AND paths.hash_part = path_refs.hash_part
       JOIN nars ON nars.id = paths.nar_id
       WHERE path_refs.cache_id = ? AND path_refs.ref_hash = ? ORDER BY path_refs.hash_part LIMIT ?`,
    ),
    closureSize: sql(
      `WITH RECURSIVE closure(hash_part) AS (
         SELECT CAST(? AS TEXT)
         UNION
         SELECT path_refs.ref_hash FROM closure CROSS JOIN path_refs WHERE path_refs.hash_part = closure.hash_part AND path_refs.cache_id = ?
       )
       SELECT count(*) AS paths, coalesce(sum(nars.nar_size), 0) AS nar_bytes FROM closure
       JOIN paths ON paths.cache_id = ? AND paths.hash_part = closure.hash_part JOIN nars ON nars.id = paths.nar_id`,
    ),
    markUnreferencedNars: sql(
      'UPDATE nars SET unreferenced_since = ? WHERE unreferenced_since IS NULL AND NOT EXISTS (SELECT 1 FROM paths WHERE paths.nar_id = nars.id)',
    ),
    unreferencedNars: sql(
      'SELECT id, nar_size FROM nars WHERE unreferenced_since <= ? AND NOT EXISTS (SELECT 1 FROM paths WHERE paths.nar_id = nars.id) LIMIT ?',
    ),
    chunksOfNars: list(`SELECT DISTINCT chunk_id FROM nar_chunks WHERE nar_id ${d.anyOf('bigint')}`),
    deleteNars: list(`DELETE FROM nars WHERE id ${d.anyOf('bigint')}`),
    markUnreferencedChunks: list(
      `UPDATE chunks SET unreferenced_since = ? WHERE id ${d.anyOf('bytea')} AND unreferenced_since IS NULL
         AND NOT EXISTS (SELECT 1 FROM nar_chunks WHERE nar_chunks.chunk_id = chunks.id)`,
    ),
    deleteUnreferencedChunks: sql(
      `DELETE FROM chunks WHERE id IN (
         SELECT id FROM chunks WHERE unreferenced_since <= ? AND NOT EXISTS (SELECT 1 FROM nar_chunks WHERE nar_chunks.chunk_id = chunks.id)
           AND NOT EXISTS (SELECT 1 FROM chunk_bases WHERE chunk_bases.base_id = chunks.id) LIMIT ?
       ) RETURNING *`,
    ),

    noteChunkDeletions: list(
      `INSERT INTO chunk_deletions (id, noted_at)
       SELECT c.id, CAST(? AS BIGINT) FROM ${d.listRows([['id', 'bytea']])} WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE chunks.id = c.id)
       ON CONFLICT (id) DO UPDATE SET noted_at = excluded.noted_at, done_at = NULL
       RETURNING id`,
    ),
    finishChunkDeletions: list(`UPDATE chunk_deletions SET done_at = ? WHERE id ${d.anyOf('bytea')}`),
    finishUnfinishedChunkDeletions: sql('UPDATE chunk_deletions SET done_at = ? WHERE done_at IS NULL'),
    forgetChunkDeletions: sql('DELETE FROM chunk_deletions WHERE done_at < ?'),

    upsertIngestHold: sql(
      `INSERT INTO ingest_holds (holder, busy_since, renewed_at) VALUES (?, ?, ?)
       ON CONFLICT (holder) DO UPDATE SET busy_since = excluded.busy_since, renewed_at = excluded.renewed_at`,
    ),
    deleteIngestHold: sql('DELETE FROM ingest_holds WHERE holder = ?'),
    deleteDeadIngestHolds: sql('DELETE FROM ingest_holds WHERE renewed_at < ?'),
    ingestHoldFloor: sql('SELECT min(busy_since) AS floor FROM ingest_holds WHERE holder <> ?'),

    // A row comes back only when the lease was inserted or updated for the holder.
    acquireLease: sql(
      `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE leases.expires_at < ? OR leases.holder = excluded.holder
       RETURNING holder`,
    ),
    releaseLease: sql('DELETE FROM leases WHERE name = ? AND holder = ?'),
  } satisfies Record<string, SqlStatement>;
}

export type MetadataStatements = ReturnType<typeof metadataStatements>;
