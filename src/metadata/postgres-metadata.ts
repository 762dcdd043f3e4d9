import pg from 'pg';
import { NarwhalError } from '../errors.ts';
import { POSTGRES_MIGRATIONS } from './postgres-schema.ts';
import { NO_DAMAGED_CHUNK, PATH_COLUMNS, PATH_IDENTITY_COLUMNS, pathUpload, blob, chunksDeletedError, fileUploadGoneError, storedSizeDelta, toNarOwners, toCache, toCacheFile, toChunk, toNar, toPath, toToken } from './metadata-rows.ts';
import type {
  CacheFile,
  CacheRecord,
  CacheSettings,
  ChunkRecord,
  PutPathResult,
  TokenRecord,
  MetadataStore,
  NarOwners,
  NarRecord,
  NewNar,
  NewPath,
  PathRecord,
  RecompressedChunk,
  StoreStats,
} from './metadata-store.ts';

type Row = Record<string, unknown>;
type Client = pg.PoolClient;

/** pg_advisory_xact_lock keys (arbitrary, fixed): one for migrations, one that serializes writers. */
const MIGRATE_LOCK = '7953874520930000001';
const WRITE_LOCK = '7953874520930000002';

const INT8_OID = 20;

/**
 * The metadata backend for several replicas sharing one PostgreSQL database. Same semantics as
 * SqliteMetadata: every multi-statement method, and every single statement whose outcome GC or
 * ingest depends on, runs in a transaction that first takes one advisory lock (WRITE_LOCK), so
 * writers are serialized across processes exactly as SQLite's BEGIN IMMEDIATE serializes them;
 * reads and single-row writes that race harmlessly run without it. Hence commitNar stays
 * idempotent when replicas commit the same NAR at once, and GC runs in several replicas are as
 * safe as GC runs in several processes on one SQLite file.
 */
export class PostgresMetadata implements MetadataStore {
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /** Connects and brings the schema up to date (once, when several replicas start together). */
  static async open(url: string): Promise<PostgresMetadata> {
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      // BIGINT columns hold sizes and millisecond times, all far below 2^53: plain numbers.
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID && format !== 'binary' ? (text: string) => Number(text) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // An idle connection that breaks (server restart) is dropped by the pool; the next query reconnects.
    pool.on('error', (err) => process.stderr.write(`narwhal: metadata database connection lost: ${err.message}\n`));
    const store = new PostgresMetadata(pool);
    try {
      await store.#migrate();
    } catch (err) {
      await pool.end();
      if (err instanceof NarwhalError) throw err;
      // pg's messages name the host, user or SQL state, never the password.
      throw new NarwhalError('unavailable', `cannot open the metadata database: ${(err as Error).message}`, { cause: err });
    }
    return store;
  }

  async #migrate(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
      const rows = (await client.query('SELECT version FROM schema_version')).rows as Row[];
      if (rows.length === 0) await client.query('INSERT INTO schema_version (version) VALUES (0)');
      const version = rows.length === 0 ? 0 : Number(rows[0].version);
      if (version > POSTGRES_MIGRATIONS.length) {
        throw new NarwhalError('internal', `the metadata database has schema version ${version}, newer than this Narwhal knows (${POSTGRES_MIGRATIONS.length})`);
      }
      for (let v = version; v < POSTGRES_MIGRATIONS.length; v++) await client.query(POSTGRES_MIGRATIONS[v]);
      if (version < POSTGRES_MIGRATIONS.length) await client.query('UPDATE schema_version SET version = $1', [POSTGRES_MIGRATIONS.length]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
  }

  async #query(sql: string, params: unknown[] = []): Promise<Row[]> {
    try {
      return (await this.#pool.query(sql, params)).rows as Row[];
    } catch (err) {
      throw storageFullError(err);
    }
  }

  async #run(sql: string, params: unknown[] = []): Promise<number> {
    try {
      return (await this.#pool.query(sql, params)).rowCount ?? 0;
    } catch (err) {
      throw storageFullError(err);
    }
  }

  /** Runs `body` in a transaction holding WRITE_LOCK. */
  async #write<T>(body: (tx: Tx) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken: unknown;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
      const result = await body(new Tx(client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        // The connection is unusable: the pool must not hand it out again.
        broken = rollbackErr;
      }
      throw storageFullError(err);
    } finally {
      client.release(broken instanceof Error ? broken : undefined);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  /** The schema version, the count of migrations applied. */
  async schemaVersion(): Promise<number> {
    return Number((await this.#query('SELECT version FROM schema_version'))[0].version);
  }

  async getCache(name: string): Promise<CacheRecord | undefined> {
    const [row] = await this.#query('SELECT * FROM caches WHERE name = $1', [name]);
    return row && toCache(row);
  }

  async createCache(name: string, settings: CacheSettings): Promise<CacheRecord | undefined> {
    const [row] = await this.#query(
      `INSERT INTO caches (name, is_public, priority, signing_key, trusted_keys, require_signature, retention, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING RETURNING *`,
      [name, settings.isPublic, settings.priority, settings.signingKey, settings.trustedKeys.join('\n'), settings.requireSignature, settings.retention, Date.now()],
    );
    return row && toCache(row);
  }

  async updateCache(name: string, changes: Partial<CacheSettings>): Promise<CacheRecord | undefined> {
    return this.#write(async (tx) => {
      const [row] = await tx.query('SELECT * FROM caches WHERE name = $1', [name]);
      if (!row) return undefined;
      const next = { ...toCache(row), ...changes };
      await tx.query(
        'UPDATE caches SET is_public = $1, priority = $2, signing_key = $3, trusted_keys = $4, require_signature = $5, retention = $6 WHERE name = $7',
        [next.isPublic, next.priority, next.signingKey, next.trustedKeys.join('\n'), next.requireSignature, next.retention, name],
      );
      return next;
    });
  }

  async deleteCache(name: string): Promise<boolean> {
    return this.#write(async (tx) => (await tx.run('DELETE FROM caches WHERE name = $1', [name])) > 0);
  }

  async listCaches(): Promise<CacheRecord[]> {
    return (await this.#query('SELECT * FROM caches ORDER BY name')).map(toCache);
  }

  async createToken(token: TokenRecord, secretHash: Uint8Array): Promise<void> {
    await this.#run(
      'INSERT INTO tokens (id, secret_hash, name, caches, perms, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
      [token.id, bytes(secretHash), token.name, token.caches.join(','), token.perms.join(','), token.createdAt, token.expiresAt, token.revokedAt],
    );
  }

  async findTokenBySecretHash(secretHash: Uint8Array): Promise<TokenRecord | undefined> {
    const [row] = await this.#query('SELECT * FROM tokens WHERE secret_hash = $1', [bytes(secretHash)]);
    return row && toToken(row);
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (await this.#query('SELECT * FROM tokens ORDER BY created_at, id')).map(toToken);
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    return (await this.#run('UPDATE tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2', [at, id])) > 0;
  }

  async cacheHasNar(cacheId: number, narId: number): Promise<boolean> {
    return (await this.#query('SELECT 1 AS found FROM paths WHERE nar_id = $1 AND cache_id = $2 LIMIT 1', [narId, cacheId])).length > 0;
  }

  async narOwners(narId: number): Promise<NarOwners> {
    return toNarOwners(await this.#query(
      'SELECT DISTINCT cache_id, 1 AS used FROM paths WHERE nar_id = $1 UNION SELECT cache_id, 0 AS used FROM nar_upload_caches WHERE nar_id = $1',
      [narId],
    ));
  }

  async cacheHasChunk(cacheId: number, chunkId: Uint8Array): Promise<boolean> {
    const rows = await this.#query(
      `SELECT 1 AS found FROM nar_chunks JOIN paths ON paths.nar_id = nar_chunks.nar_id
       WHERE nar_chunks.chunk_id = $1 AND paths.cache_id = $2 LIMIT 1`,
      [bytes(chunkId), cacheId],
    );
    return rows.length > 0;
  }

  async getNar(narHash: string): Promise<NarRecord | undefined> {
    const [row] = await this.#query('SELECT * FROM nars WHERE nar_hash = $1', [narHash]);
    return row && toNar(row);
  }

  async mayReuseChunk(id: Uint8Array): Promise<boolean> {
    const rows = await this.#query('SELECT 1 AS found FROM chunks WHERE id = $1 AND unreferenced_since IS NULL AND damaged_at IS NULL', [bytes(id)]);
    return rows.length > 0;
  }

  async getNarByUpload(fileHash: string, suffix: string): Promise<NarRecord | undefined> {
    const [row] = await this.#query(
      'SELECT nars.* FROM nar_uploads JOIN nars ON nars.id = nar_uploads.nar_id WHERE file_hash = $1 AND suffix = $2',
      [fileHash, suffix],
    );
    return row && toNar(row);
  }

  async commitNar(nar: NewNar): Promise<NarRecord> {
    const now = Date.now();
    // Distinct by id: one INSERT ... ON CONFLICT may not touch a row twice.
    const chunks = [...new Map(nar.chunks.map((chunk) => [Buffer.from(chunk.id).toString('hex'), chunk])).values()];
    return this.#write(async (tx) => {
      if (nar.ingestStartedAt !== undefined && chunks.length > 0) {
        const deleted = await tx.query(
          'SELECT 1 AS found FROM chunk_deletions WHERE id = ANY($1::bytea[]) AND (done_at IS NULL OR done_at >= $2) LIMIT 1',
          [chunks.map((c) => bytes(c.id)), nar.ingestStartedAt],
        );
        if (deleted.length > 0) throw chunksDeletedError();
      }
      // Damage is rare: when no chunk is flagged, the repair bookkeeping below is skipped.
      const anyDamage = (await tx.query('SELECT 1 AS found FROM chunks WHERE damaged_at IS NOT NULL LIMIT 1')).length > 0;
      const [existing] = await tx.query('SELECT id, damaged_at FROM nars WHERE nar_hash = $1', [nar.narHash]);
      let narId: number;
      if (existing) {
        narId = Number(existing.id);
        // Uploaded again (its narinfo is likely to follow): GC's grace starts anew.
        await tx.run('UPDATE nars SET unreferenced_since = NULL WHERE id = $1 AND unreferenced_since IS NOT NULL', [narId]);
      } else {
        // WRITE_LOCK makes the lookup above final; ON CONFLICT guards against a writer that does not take it.
        const [inserted] = await tx.query(
          `INSERT INTO nars (nar_hash, nar_size, chunk_count, stored_size, chunk_table, created_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (nar_hash) DO UPDATE SET unreferenced_since = NULL RETURNING id`,
          [nar.narHash, nar.narSize, nar.chunkTable.length / 40, nar.storedSize, bytes(nar.chunkTable), now],
        );
        narId = Number(inserted.id);
      }
      const written = chunks.filter((chunk) => chunk.written);
      // A chunk this ingest wrote again may now have another stored size than its record (one
      // recompressed, then repaired): the NARs that use it follow.
      const resized = new Map<string, number>();
      if (written.length > 0) {
        const sizes = new Map(written.map((c) => [Buffer.from(c.id).toString('hex'), c.storedSize]));
        const rows = await tx.query('SELECT id, stored_size FROM chunks WHERE id = ANY($1::bytea[])', [written.map((c) => bytes(c.id))]);
        for (const row of rows) {
          const hex = (row.id as Buffer).toString('hex');
          const change = sizes.get(hex)! - Number(row.stored_size);
          if (change !== 0) resized.set(hex, change);
        }
      }
      let repaired: Buffer[] = [];
      if (!existing || anyDamage || resized.size > 0) {
        if (anyDamage && written.length > 0) {
          const rows = await tx.query('SELECT id FROM chunks WHERE id = ANY($1::bytea[]) AND damaged_at IS NOT NULL', [written.map((c) => bytes(c.id))]);
          repaired = rows.map((row) => row.id as Buffer);
        }
        // A chunk this NAR uses is referenced again; one this ingest wrote is whole again, as written.
        for (const [group, isWritten] of [[written, true], [chunks.filter((chunk) => !chunk.written), false]] as const) {
          if (group.length === 0) continue;
          await tx.run(
            `INSERT INTO chunks (id, size, stored_size, created_at)
             SELECT id, size, stored_size, $4::bigint FROM unnest($1::bytea[], $2::bigint[], $3::bigint[]) AS c(id, size, stored_size)
             ON CONFLICT (id) DO UPDATE SET unreferenced_since = NULL, damaged_at = CASE WHEN $5::boolean THEN NULL ELSE chunks.damaged_at END,
               stored_size = CASE WHEN $5 THEN excluded.stored_size ELSE chunks.stored_size END,
               zstd_level = CASE WHEN $5 AND chunks.stored_size <> excluded.stored_size THEN NULL ELSE chunks.zstd_level END
             WHERE chunks.unreferenced_since IS NOT NULL OR ($5 AND (chunks.damaged_at IS NOT NULL OR chunks.stored_size <> excluded.stored_size))`,
            [group.map((c) => bytes(c.id)), group.map((c) => c.size), group.map((c) => c.storedSize), now, isWritten],
          );
        }
        if (!existing && chunks.length > 0) {
          await tx.run(
            'INSERT INTO nar_chunks (chunk_id, nar_id) SELECT unnest($1::bytea[]), $2::bigint ON CONFLICT DO NOTHING',
            [chunks.map((c) => bytes(c.id)), narId],
          );
        }
        // A new NAR counted its chunks at the sizes written.
        await moveNarStoredSizes(tx, resized, existing ? undefined : narId);
      }
      if (anyDamage || (existing && existing.damaged_at !== null)) {
        if (repaired.length > 0) {
          await tx.run(
            `UPDATE nars SET damaged_at = NULL WHERE damaged_at IS NOT NULL
               AND id IN (SELECT nar_id FROM nar_chunks WHERE chunk_id = ANY($1::bytea[])) AND ${NO_DAMAGED_CHUNK}`,
            [repaired],
          );
        }
        // This NAR was just read whole, except where it reused a chunk flagged meanwhile.
        await tx.run(`UPDATE nars SET damaged_at = CASE WHEN ${NO_DAMAGED_CHUNK} THEN NULL ELSE coalesce(damaged_at, $1) END WHERE id = $2`, [now, narId]);
      }
      if (nar.upload) {
        await tx.run(
          'INSERT INTO nar_uploads (file_hash, suffix, nar_id, file_size) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
          [nar.upload.fileHash, nar.upload.suffix, narId, nar.upload.fileSize],
        );
      }
      if (nar.uploadedTo !== undefined) {
        await tx.run('INSERT INTO nar_upload_caches (cache_id, nar_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [nar.uploadedTo, narId]);
      }
      return toNar((await tx.query('SELECT * FROM nars WHERE id = $1', [narId]))[0]);
    });
  }

  async getPath(cacheId: number, hashPart: string): Promise<PathRecord | undefined> {
    const [row] = await this.#query(`SELECT ${PATH_COLUMNS} FROM paths JOIN nars ON nars.id = paths.nar_id WHERE cache_id = $1 AND hash_part = $2`, [cacheId, hashPart]);
    return row && toPath(row);
  }

  async existingPaths(cacheId: number, hashParts: string[]): Promise<Map<string, string>> {
    if (hashParts.length === 0) return new Map();
    const rows = await this.#query('SELECT hash_part, store_path FROM paths WHERE cache_id = $1 AND hash_part = ANY($2::text[])', [cacheId, hashParts]);
    return new Map(rows.map((row) => [String(row.hash_part), String(row.store_path)]));
  }

  async putPath(path: NewPath, options: { replace?: boolean } = {}): Promise<PutPathResult> {
    const now = Date.now();
    return this.#write(async (tx): Promise<PutPathResult> => {
      if ((await tx.query('SELECT 1 AS found FROM nars WHERE id = $1', [path.narId])).length === 0) return 'no-nar';
      const refs = [...new Set(path.references.map((ref) => ref.slice(0, 32)))].filter((h) => h !== path.hashPart);
      if (refs.length > 0) {
        const present = await tx.query('SELECT hash_part FROM paths WHERE cache_id = $1 AND hash_part = ANY($2::text[])', [path.cacheId, refs]);
        if (present.length < refs.length) return 'missing-reference';
      }
      const [existing] = await tx.query(`SELECT ${PATH_IDENTITY_COLUMNS} FROM paths WHERE cache_id = $1 AND hash_part = $2`, [path.cacheId, path.hashPart]);
      const upload = pathUpload(existing, path);
      if (upload.kind === 'unchanged') return 'unchanged';
      if (upload.kind === 'different' && !options.replace) return 'exists';
      if (upload.kind === 'more-sigs') {
        await tx.run('UPDATE paths SET sigs = $1 WHERE cache_id = $2 AND hash_part = $3', [upload.sigs.join('\n'), path.cacheId, path.hashPart]);
        return 'stored';
      }
      await tx.run(
        `INSERT INTO paths (cache_id, hash_part, store_path, nar_id, refs, deriver, system, sigs, ca, created_at, last_access)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (cache_id, hash_part) DO UPDATE SET
           store_path = excluded.store_path, nar_id = excluded.nar_id, refs = excluded.refs,
           deriver = excluded.deriver, system = excluded.system, sigs = excluded.sigs, ca = excluded.ca,
           created_at = excluded.created_at, last_access = excluded.last_access`,
        [path.cacheId, path.hashPart, path.storePath, path.narId, path.references.join(' '), path.deriver, path.system, path.sigs.join('\n'), path.ca, now, now],
      );
      await tx.run('DELETE FROM path_refs WHERE cache_id = $1 AND hash_part = $2', [path.cacheId, path.hashPart]);
      if (refs.length > 0) {
        await tx.run('INSERT INTO path_refs (cache_id, hash_part, ref_hash) SELECT $1::bigint, $2::text, unnest($3::text[])', [path.cacheId, path.hashPart, refs]);
      }
      await tx.run('UPDATE nars SET unreferenced_since = NULL WHERE id = $1 AND unreferenced_since IS NOT NULL', [path.narId]);
      return 'stored';
    });
  }

  async listPaths(cacheId: number): Promise<PathRecord[]> {
    // COLLATE "C": byte order, as SQLite sorts text.
    const rows = await this.#query(`SELECT ${PATH_COLUMNS} FROM paths JOIN nars ON nars.id = paths.nar_id WHERE cache_id = $1 ORDER BY store_path COLLATE "C"`, [cacheId]);
    return rows.map(toPath);
  }

  async setPathPinned(cacheId: number, hashPart: string, pinned: boolean): Promise<boolean> {
    return this.#write(async (tx) => (await tx.run('UPDATE paths SET pinned = $1 WHERE cache_id = $2 AND hash_part = $3', [pinned, cacheId, hashPart])) > 0);
  }

  async deletePaths(cacheId: number, hashParts: string[]): Promise<{ deleted: string[]; referrers: string[] }> {
    const doomed = [...new Set(hashParts)];
    if (doomed.length === 0) return { deleted: [], referrers: [] };
    return this.#write(async (tx) => {
      const referring = await tx.query('SELECT DISTINCT hash_part FROM path_refs WHERE cache_id = $1 AND ref_hash = ANY($2::text[])', [cacheId, doomed]);
      const doomedSet = new Set(doomed);
      const referrers = referring.map((row) => String(row.hash_part)).filter((h) => !doomedSet.has(h));
      if (referrers.length > 0) return { deleted: [], referrers };
      const removed = await tx.query('DELETE FROM paths WHERE cache_id = $1 AND hash_part = ANY($2::text[]) RETURNING hash_part', [cacheId, doomed]);
      const removedSet = new Set(removed.map((row) => String(row.hash_part)));
      return { deleted: doomed.filter((h) => removedSet.has(h)), referrers: [] };
    });
  }

  async recordPathAccess(cacheId: number, hashPart: string, at: number, staleBefore: number): Promise<void> {
    await this.#run('UPDATE paths SET last_access = $1 WHERE cache_id = $2 AND hash_part = $3 AND last_access < $4', [at, cacheId, hashPart, staleBefore]);
  }

  async recordNarAccess(cacheId: number, narId: number, at: number, staleBefore: number): Promise<void> {
    // Read first: a NAR is served far more often than its paths' access times go stale. The update
    // may touch several rows, so it takes WRITE_LOCK: row locks taken in an order of its own could
    // deadlock with a GC transaction.
    const stale = await this.#query('SELECT 1 AS found FROM paths WHERE nar_id = $1 AND cache_id = $2 AND last_access < $3 LIMIT 1', [narId, cacheId, staleBefore]);
    if (stale.length === 0) return;
    await this.#write((tx) => tx.run('UPDATE paths SET last_access = $1 WHERE nar_id = $2 AND cache_id = $3 AND last_access < $4', [at, narId, cacheId, staleBefore]));
  }

  async getFile(cacheId: number, name: string): Promise<CacheFile | undefined> {
    const [row] = await this.#query('SELECT content_id, size, content_type, content_encoding FROM files WHERE cache_id = $1 AND name = $2', [cacheId, name]);
    return row && toCacheFile(row);
  }

  async getFilePiece(contentId: number, seq: number): Promise<Uint8Array | undefined> {
    const [row] = await this.#query('SELECT data FROM file_pieces WHERE content_id = $1 AND seq = $2', [contentId, seq]);
    return row && blob(row.data);
  }

  async startFileUpload(): Promise<number> {
    return Number((await this.#query('INSERT INTO file_contents (written_at) VALUES ($1) RETURNING id', [Date.now()]))[0].id);
  }

  async appendFilePiece(contentId: number, seq: number, data: Uint8Array): Promise<void> {
    // One statement, so atomic without WRITE_LOCK: no piece is added to a content GC deleted.
    const added = await this.#run(
      `WITH grown AS (UPDATE file_contents SET size = size + $3, written_at = $4 WHERE id = $1 RETURNING id)
       INSERT INTO file_pieces (content_id, seq, data) SELECT id, $2, $5 FROM grown`,
      [contentId, seq, data.length, Date.now(), bytes(data)],
    );
    if (added === 0) throw fileUploadGoneError();
  }

  async commitFile(cacheId: number, name: string, file: CacheFile): Promise<void> {
    await this.#write(async (tx) => {
      const [content] = await tx.query('SELECT size FROM file_contents WHERE id = $1', [file.contentId]);
      if (!content || Number(content.size) !== file.size) throw fileUploadGoneError();
      const [previous] = await tx.query('SELECT content_id FROM files WHERE cache_id = $1 AND name = $2', [cacheId, name]);
      await tx.run(
        `INSERT INTO files (cache_id, name, content_id, size, content_type, content_encoding, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (cache_id, name) DO UPDATE SET content_id = excluded.content_id, size = excluded.size, content_type = excluded.content_type,
           content_encoding = excluded.content_encoding, created_at = excluded.created_at`,
        [cacheId, name, file.contentId, file.size, file.contentType, file.contentEncoding, Date.now()],
      );
      if (previous) await deleteUnusedFileContent(tx, Number(previous.content_id));
    });
  }

  async discardFileUpload(contentId: number): Promise<void> {
    await this.#write((tx) => deleteUnusedFileContent(tx, contentId));
  }

  async deleteAbandonedFileContents(before: number, limit: number): Promise<{ contents: number; bytes: number }> {
    const rows = await this.#write((tx) => tx.query(
      `DELETE FROM file_contents WHERE id IN (
         SELECT id FROM file_contents WHERE written_at <= $1 AND NOT EXISTS (SELECT 1 FROM files WHERE files.content_id = file_contents.id) LIMIT $2
       ) RETURNING size`,
      [before, limit],
    ));
    return { contents: rows.length, bytes: rows.reduce((sum, row) => sum + Number(row.size), 0) };
  }

  async stats(): Promise<StoreStats> {
    const [row] = await this.#query(
      `SELECT (SELECT count(*) FROM paths) AS paths,
              (SELECT count(*) FROM nars) AS nars, (SELECT coalesce(sum(nar_size), 0) FROM nars) AS nar_bytes,
              c.n AS chunks, c.bytes AS chunk_bytes, c.stored AS stored_bytes
       FROM (SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes, coalesce(sum(stored_size), 0) AS stored FROM chunks) AS c`,
    );
    return {
      paths: Number(row.paths),
      nars: Number(row.nars),
      narBytes: Number(row.nar_bytes),
      chunks: Number(row.chunks),
      chunkBytes: Number(row.chunk_bytes),
      storedBytes: Number(row.stored_bytes),
    };
  }

  async markChunksDamaged(ids: Uint8Array[], at: number): Promise<number> {
    if (ids.length === 0) return 0;
    const list = ids.map(bytes);
    return this.#write(async (tx) => {
      await tx.run('UPDATE chunks SET damaged_at = $1 WHERE id = ANY($2::bytea[]) AND damaged_at IS NULL', [at, list]);
      return tx.run('UPDATE nars SET damaged_at = $1 WHERE damaged_at IS NULL AND id IN (SELECT nar_id FROM nar_chunks WHERE chunk_id = ANY($2::bytea[]))', [at, list]);
    });
  }

  async setChunksDamaged(ids: Uint8Array[], damaged: boolean, at: number): Promise<void> {
    if (ids.length === 0) return;
    await this.#write(async (tx) => {
      if (damaged) await tx.run('UPDATE chunks SET damaged_at = coalesce(damaged_at, $1) WHERE id = ANY($2::bytea[])', [at, ids.map(bytes)]);
      else await tx.run('UPDATE chunks SET damaged_at = NULL WHERE id = ANY($1::bytea[])', [ids.map(bytes)]);
    });
  }

  async listChunks(after: Uint8Array, limit: number): Promise<ChunkRecord[]> {
    return (await this.#query('SELECT * FROM chunks WHERE id > $1 ORDER BY id LIMIT $2', [bytes(after), limit])).map(toChunk);
  }

  async getChunk(id: Uint8Array): Promise<ChunkRecord | undefined> {
    const [row] = await this.#query('SELECT * FROM chunks WHERE id = $1', [bytes(id)]);
    return row && toChunk(row);
  }

  async chunksToRecompress(after: Uint8Array, limit: number): Promise<ChunkRecord[]> {
    return (await this.#query(
      `SELECT * FROM chunks WHERE zstd_level IS NULL AND id > $1 AND damaged_at IS NULL AND unreferenced_since IS NULL
       ORDER BY id LIMIT $2`,
      [bytes(after), limit],
    )).map(toChunk);
  }

  async recordRecompressed(chunks: RecompressedChunk[]): Promise<number> {
    if (chunks.length === 0) return 0;
    return this.#write(async (tx) => {
      const updated = await tx.query(
        `UPDATE chunks SET stored_size = c.stored_size, zstd_level = c.zstd_level
         FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::int[]) AS c(id, old_stored_size, stored_size, zstd_level)
         WHERE chunks.id = c.id AND chunks.stored_size = c.old_stored_size
         RETURNING chunks.id, c.stored_size - c.old_stored_size AS change`,
        [chunks.map((c) => bytes(c.id)), chunks.map((c) => c.oldStoredSize), chunks.map((c) => c.storedSize), chunks.map((c) => c.zstdLevel)],
      );
      const changes = new Map(updated.map((row) => [(row.id as Buffer).toString('hex'), Number(row.change)]));
      await moveNarStoredSizes(tx, changes);
      return changes.size;
    });
  }

  async setChunkLevels(ids: Uint8Array[], zstdLevel: number): Promise<void> {
    if (ids.length === 0) return;
    await this.#run('UPDATE chunks SET zstd_level = $2 WHERE id = ANY($1::bytea[])', [ids.map(bytes), zstdLevel]);
  }

  async listNars(afterId: number, limit: number): Promise<NarRecord[]> {
    return (await this.#query('SELECT * FROM nars WHERE id > $1 ORDER BY id LIMIT $2', [afterId, limit])).map(toNar);
  }

  async narChunks(narId: number): Promise<ChunkRecord[]> {
    const rows = await this.#query('SELECT chunks.* FROM nar_chunks JOIN chunks ON chunks.id = nar_chunks.chunk_id WHERE nar_chunks.nar_id = $1', [narId]);
    return rows.map(toChunk);
  }

  async setNarDamaged(narId: number, damaged: boolean, at: number): Promise<void> {
    await this.#run('UPDATE nars SET damaged_at = CASE WHEN $1::boolean THEN coalesce(damaged_at, $2::bigint) ELSE NULL END WHERE id = $3', [damaged, at, narId]);
  }

  async damagedNarCount(): Promise<number> {
    return Number((await this.#query('SELECT count(*) AS n FROM nars WHERE damaged_at IS NOT NULL'))[0].n);
  }

  async expirePaths(cacheId: number, accessedBefore: number): Promise<number> {
    return this.#write((tx) => tx.run(
      `WITH RECURSIVE live(hash_part) AS (
         SELECT hash_part FROM paths WHERE cache_id = $1 AND (pinned OR last_access >= $2)
         UNION
         SELECT path_refs.ref_hash FROM path_refs JOIN live ON path_refs.hash_part = live.hash_part WHERE path_refs.cache_id = $1
       )
       DELETE FROM paths WHERE cache_id = $1 AND hash_part NOT IN (SELECT hash_part FROM live)`,
      [cacheId, accessedBefore],
    ));
  }

  async markUnreferencedNars(at: number): Promise<number> {
    return this.#write((tx) => tx.run(
      'UPDATE nars SET unreferenced_since = $1 WHERE unreferenced_since IS NULL AND NOT EXISTS (SELECT 1 FROM paths WHERE paths.nar_id = nars.id)',
      [at],
    ));
  }

  async deleteUnreferencedNars(before: number, at: number, limit: number): Promise<{ nars: number; narBytes: number }> {
    return this.#write(async (tx) => {
      const doomed = await tx.query(
        'SELECT id, nar_size FROM nars WHERE unreferenced_since <= $1 AND NOT EXISTS (SELECT 1 FROM paths WHERE paths.nar_id = nars.id) LIMIT $2',
        [before, limit],
      );
      if (doomed.length === 0) return { nars: 0, narBytes: 0 };
      const narIds = doomed.map((row) => Number(row.id));
      const chunkIds = (await tx.query('SELECT DISTINCT chunk_id FROM nar_chunks WHERE nar_id = ANY($1::bigint[])', [narIds])).map((row) => row.chunk_id);
      await tx.run('DELETE FROM nars WHERE id = ANY($1::bigint[])', [narIds]);
      if (chunkIds.length > 0) {
        await tx.run(
          `UPDATE chunks SET unreferenced_since = $1 WHERE id = ANY($2::bytea[]) AND unreferenced_since IS NULL
             AND NOT EXISTS (SELECT 1 FROM nar_chunks WHERE nar_chunks.chunk_id = chunks.id)`,
          [at, chunkIds],
        );
      }
      return { nars: doomed.length, narBytes: doomed.reduce((sum, row) => sum + Number(row.nar_size), 0) };
    });
  }

  async deleteUnreferencedChunks(before: number, limit: number): Promise<ChunkRecord[]> {
    const rows = await this.#write((tx) => tx.query(
      `DELETE FROM chunks WHERE id IN (
         SELECT id FROM chunks WHERE unreferenced_since <= $1 AND NOT EXISTS (SELECT 1 FROM nar_chunks WHERE nar_chunks.chunk_id = chunks.id) LIMIT $2
       ) RETURNING *`,
      [before, limit],
    ));
    return rows.map(toChunk);
  }

  async existingChunks(ids: Uint8Array[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.#query('SELECT id FROM chunks WHERE id = ANY($1::bytea[])', [ids.map(bytes)]);
    return new Set(rows.map((row) => (row.id as Buffer).toString('hex')));
  }

  async noteChunkDeletions(ids: Uint8Array[], at: number): Promise<Uint8Array[]> {
    if (ids.length === 0) return [];
    // Under WRITE_LOCK, like commitNar: a record cannot appear between the check and the note.
    const rows = await this.#write((tx) => tx.query(
      `INSERT INTO chunk_deletions (id, noted_at)
       SELECT id, $2::bigint FROM unnest($1::bytea[]) AS c(id) WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE chunks.id = c.id)
       ON CONFLICT (id) DO UPDATE SET noted_at = excluded.noted_at, done_at = NULL
       RETURNING id`,
      [distinctIds(ids), at],
    ));
    return rows.map((row) => blob(row.id));
  }

  async finishChunkDeletions(ids: Uint8Array[], at: number): Promise<void> {
    if (ids.length === 0) return;
    await this.#run('UPDATE chunk_deletions SET done_at = $2 WHERE id = ANY($1::bytea[])', [ids.map(bytes), at]);
  }

  async tidyChunkDeletions(before: number, at: number): Promise<void> {
    await this.#write(async (tx) => {
      await tx.run('UPDATE chunk_deletions SET done_at = $1 WHERE done_at IS NULL', [at]);
      await tx.run('DELETE FROM chunk_deletions WHERE done_at < $1', [before]);
    });
  }

  async renewIngestHold(holder: string, busySince: number | null, at: number): Promise<void> {
    await this.#run(
      `INSERT INTO ingest_holds (holder, busy_since, renewed_at) VALUES ($1, $2, $3)
       ON CONFLICT (holder) DO UPDATE SET busy_since = excluded.busy_since, renewed_at = excluded.renewed_at`,
      [holder, busySince, at],
    );
  }

  async releaseIngestHold(holder: string): Promise<void> {
    await this.#run('DELETE FROM ingest_holds WHERE holder = $1', [holder]);
  }

  async ingestHoldFloor(aliveSince: number, exceptHolder: string): Promise<number | undefined> {
    return this.#write(async (tx) => {
      await tx.run('DELETE FROM ingest_holds WHERE renewed_at < $1', [aliveSince]);
      const [row] = await tx.query('SELECT min(busy_since) AS floor FROM ingest_holds WHERE holder <> $1', [exceptHolder]);
      return row.floor === null ? undefined : Number(row.floor);
    });
  }

  async tryAcquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    // One statement, so atomic: a row comes back only when it was inserted or updated for us.
    const rows = await this.#query(
      `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE leases.expires_at < $4 OR leases.holder = excluded.holder
       RETURNING holder`,
      [name, holder, now + ttlMs, now],
    );
    return rows.length === 1 && rows[0].holder === holder;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.#run('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
  }
}

/** One transaction's connection. */
class Tx {
  readonly #client: Client;

  constructor(client: Client) {
    this.#client = client;
  }

  async query(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.#client.query(sql, params)).rows as Row[];
  }

  async run(sql: string, params: unknown[] = []): Promise<number> {
    return (await this.#client.query(sql, params)).rowCount ?? 0;
  }
}

/** Inside a transaction: moves the stored size of the NARs (but `except`) that use changed chunks. */
async function moveNarStoredSizes(tx: Tx, changes: Map<string, number>, except?: number): Promise<void> {
  if (changes.size === 0) return;
  const nars = await tx.query(
    'SELECT id, chunk_table FROM nars WHERE id IN (SELECT nar_id FROM nar_chunks WHERE chunk_id = ANY($1::bytea[])) AND id <> $2',
    [[...changes.keys()].map((hex) => Buffer.from(hex, 'hex')), except ?? -1],
  );
  for (const nar of nars) {
    await tx.run('UPDATE nars SET stored_size = stored_size + $1 WHERE id = $2', [storedSizeDelta(blob(nar.chunk_table), changes), nar.id]);
  }
}

/** Inside a transaction: deletes a content (its pieces go with it) unless a file uses it. */
async function deleteUnusedFileContent(tx: Tx, contentId: number): Promise<void> {
  await tx.run('DELETE FROM file_contents WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM files WHERE content_id = $1)', [contentId]);
}

/** A BYTEA parameter (pg sends Buffers as binary strings). */
function bytes(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** BYTEA parameters without repeats: one INSERT ... ON CONFLICT may not touch a row twice. */
function distinctIds(ids: Uint8Array[]): Buffer[] {
  return [...new Map(ids.map((id) => [Buffer.from(id).toString('hex'), bytes(id)])).values()];
}

function storageFullError(err: unknown): unknown {
  if ((err as { code?: unknown }).code === '53100') {
    return new NarwhalError('storage-full', 'the metadata database is full', { cause: err });
  }
  return err;
}
