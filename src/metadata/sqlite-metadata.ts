import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { SQLITE_MIGRATIONS } from './sqlite-schema.ts';
import { SqliteDatabase } from '../runtime/sqlite-database.ts';
import { NO_DAMAGED_CHUNK, PATH_COLUMNS, PATH_IDENTITY_COLUMNS, pathUpload, blob, chunksDeletedError, fileUploadGoneError, storedSizeDelta, toCache, toCacheFile, toChunk, toNar, toPath, toToken } from './metadata-rows.ts';
import type {
  CacheFile,
  CacheRecord,
  CacheSettings,
  ChunkRecord,
  PutPathResult,
  TokenRecord,
  MetadataStore,
  NarRecord,
  NewChunk,
  NewNar,
  NewPath,
  PathRecord,
  RecompressedChunk,
  StoreStats,
} from './metadata-store.ts';

type Row = Record<string, SQLInputValue>;

/**
 * The embedded metadata backend: one SQLite file in WAL mode, so `narwhal stats` and other
 * commands can read while the server writes. node:sqlite is synchronous; every statement here is
 * short, and each method runs in one transaction.
 */
export class SqliteMetadata implements MetadataStore {
  readonly #sqlite: SqliteDatabase;
  readonly #db: DatabaseSync;

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#sqlite = new SqliteDatabase(path, 'the metadata database is full');
    this.#db = this.#sqlite.db;
    this.#db.exec('PRAGMA foreign_keys = ON');
    this.#migrate();
  }

  #migrate(): void {
    this.#transaction(() => {
      const version = Number((this.#db.prepare('PRAGMA user_version').get() as Row).user_version);
      for (let v = version; v < SQLITE_MIGRATIONS.length; v++) this.#db.exec(SQLITE_MIGRATIONS[v]);
      if (version < SQLITE_MIGRATIONS.length) this.#db.exec(`PRAGMA user_version = ${SQLITE_MIGRATIONS.length}`);
    });
  }

  #sql(sql: string): StatementSync {
    return this.#sqlite.sql(sql);
  }

  #transaction<T>(body: () => T): T {
    return this.#sqlite.transaction(body);
  }

  async close(): Promise<void> {
    this.#db.close();
  }

  async checkpoint(): Promise<void> {
    // Only when no other connection reads: otherwise SQLITE_BUSY, and the next idle time retries.
    try {
      this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    } catch (err) {
      if ((err as { errcode?: number }).errcode !== 5) throw err;
    }
  }

  async schemaVersion(): Promise<number> {
    return Number((this.#db.prepare('PRAGMA user_version').get() as Row).user_version);
  }

  async getCache(name: string): Promise<CacheRecord | undefined> {
    const row = this.#sql('SELECT * FROM caches WHERE name = ?').get(name) as Row | undefined;
    return row && toCache(row);
  }

  async createCache(name: string, settings: CacheSettings): Promise<CacheRecord | undefined> {
    const row = this.#sql(
      `INSERT INTO caches (name, is_public, priority, signing_key, trusted_keys, require_signature, retention, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING *`,
    ).get(
      name,
      settings.isPublic ? 1 : 0,
      settings.priority,
      settings.signingKey,
      settings.trustedKeys.join('\n'),
      settings.requireSignature ? 1 : 0,
      settings.retention,
      Date.now(),
    ) as Row | undefined;
    return row && toCache(row);
  }

  async updateCache(name: string, changes: Partial<CacheSettings>): Promise<CacheRecord | undefined> {
    return this.#transaction(() => {
      const row = this.#sql('SELECT * FROM caches WHERE name = ?').get(name) as Row | undefined;
      if (!row) return undefined;
      const next = { ...toCache(row), ...changes };
      this.#sql(
        `UPDATE caches SET is_public = ?, priority = ?, signing_key = ?, trusted_keys = ?, require_signature = ?, retention = ? WHERE name = ?`,
      ).run(next.isPublic ? 1 : 0, next.priority, next.signingKey, next.trustedKeys.join('\n'), next.requireSignature ? 1 : 0, next.retention, name);
      return next;
    });
  }

  async deleteCache(name: string): Promise<boolean> {
    return Number(this.#sql('DELETE FROM caches WHERE name = ?').run(name).changes) > 0;
  }

  async listCaches(): Promise<CacheRecord[]> {
    return (this.#sql('SELECT * FROM caches ORDER BY name').all() as Row[]).map(toCache);
  }

  async createToken(token: TokenRecord, secretHash: Uint8Array): Promise<void> {
    this.#sql(
      `INSERT INTO tokens (id, secret_hash, name, caches, perms, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(token.id, secretHash, token.name, token.caches.join(','), token.perms.join(','), token.createdAt, token.expiresAt, token.revokedAt);
  }

  async findTokenBySecretHash(secretHash: Uint8Array): Promise<TokenRecord | undefined> {
    const row = this.#sql('SELECT * FROM tokens WHERE secret_hash = ?').get(secretHash) as Row | undefined;
    return row && toToken(row);
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (this.#sql('SELECT * FROM tokens ORDER BY created_at, id').all() as Row[]).map(toToken);
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    const result = this.#sql('UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?').run(at, id);
    return Number(result.changes) > 0;
  }

  async cacheHasNar(cacheId: number, narId: number): Promise<boolean> {
    return this.#sql('SELECT 1 AS found FROM paths WHERE nar_id = ? AND cache_id = ? LIMIT 1').get(narId, cacheId) !== undefined;
  }

  async narCacheIds(narId: number): Promise<number[]> {
    const rows = this.#sql('SELECT cache_id FROM paths WHERE nar_id = ? UNION SELECT cache_id FROM nar_upload_caches WHERE nar_id = ?').all(narId, narId) as Row[];
    return rows.map((row) => Number(row.cache_id));
  }

  async cacheHasChunk(cacheId: number, chunkId: Uint8Array): Promise<boolean> {
    const row = this.#sql(
      `SELECT 1 AS found FROM nar_chunks JOIN paths ON paths.nar_id = nar_chunks.nar_id
       WHERE nar_chunks.chunk_id = ? AND paths.cache_id = ? LIMIT 1`,
    ).get(chunkId, cacheId);
    return row !== undefined;
  }

  async getNar(narHash: string): Promise<NarRecord | undefined> {
    const row = this.#sql('SELECT * FROM nars WHERE nar_hash = ?').get(narHash) as Row | undefined;
    return row && toNar(row);
  }

  async mayReuseChunk(id: Uint8Array): Promise<boolean> {
    const row = this.#sql('SELECT 1 AS found FROM chunks WHERE id = ? AND unreferenced_since IS NULL AND damaged_at IS NULL').get(id);
    return row !== undefined;
  }

  async getNarByUpload(fileHash: string, suffix: string): Promise<NarRecord | undefined> {
    const row = this.#sql(
      'SELECT nars.* FROM nar_uploads JOIN nars ON nars.id = nar_uploads.nar_id WHERE file_hash = ? AND suffix = ?',
    ).get(fileHash, suffix) as Row | undefined;
    return row && toNar(row);
  }

  async commitNar(nar: NewNar): Promise<NarRecord> {
    const now = Date.now();
    const id = this.#transaction(() => {
      if (nar.ingestStartedAt !== undefined) this.#refuseDeletedChunks(nar.chunks, nar.ingestStartedAt);
      // Damage is rare: when no chunk is flagged, the repair bookkeeping below is skipped.
      const anyDamage = this.#sql('SELECT 1 AS found FROM chunks WHERE damaged_at IS NOT NULL LIMIT 1').get() !== undefined;
      const existing = this.#sql('SELECT id, damaged_at FROM nars WHERE nar_hash = ?').get(nar.narHash) as Row | undefined;
      let narId: number;
      if (existing) {
        narId = Number(existing.id);
        // Uploaded again (its narinfo is likely to follow): GC's grace starts anew.
        this.#sql('UPDATE nars SET unreferenced_since = NULL WHERE id = ? AND unreferenced_since IS NOT NULL').run(narId);
      } else {
        const inserted = this.#sql(
          `INSERT INTO nars (nar_hash, nar_size, chunk_count, stored_size, chunk_table, created_at)
           VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
        ).get(nar.narHash, nar.narSize, nar.chunkTable.length / 40, nar.storedSize, nar.chunkTable, now) as Row;
        narId = Number(inserted.id);
      }
      // A chunk this ingest wrote again may now have another stored size than its record (one
      // recompressed, then repaired): the NARs that use it follow.
      const resized = new Map<string, number>();
      const recordedSize = this.#sql('SELECT stored_size FROM chunks WHERE id = ?');
      for (const chunk of nar.chunks) {
        if (!chunk.written) continue;
        const row = recordedSize.get(chunk.id) as Row | undefined;
        if (row && Number(row.stored_size) !== chunk.storedSize) resized.set(Buffer.from(chunk.id).toString('hex'), chunk.storedSize - Number(row.stored_size));
      }
      const repaired: Uint8Array[] = [];
      if (!existing || anyDamage || resized.size > 0) {
        // A chunk this NAR uses is referenced again; one this ingest wrote is whole again, as written.
        const addChunk = this.#sql(
          `INSERT INTO chunks (id, size, stored_size, created_at) VALUES (?1, ?2, ?3, ?4)
           ON CONFLICT (id) DO UPDATE SET unreferenced_since = NULL, damaged_at = CASE WHEN ?5 THEN NULL ELSE chunks.damaged_at END,
             stored_size = CASE WHEN ?5 THEN excluded.stored_size ELSE chunks.stored_size END,
             zstd_level = CASE WHEN ?5 AND chunks.stored_size <> excluded.stored_size THEN NULL ELSE chunks.zstd_level END
           WHERE chunks.unreferenced_since IS NOT NULL OR (?5 AND (chunks.damaged_at IS NOT NULL OR chunks.stored_size <> excluded.stored_size))`,
        );
        const isDamaged = this.#sql('SELECT 1 AS found FROM chunks WHERE id = ? AND damaged_at IS NOT NULL');
        const addUse = this.#sql('INSERT INTO nar_chunks (chunk_id, nar_id) VALUES (?, ?)');
        for (const chunk of nar.chunks) {
          const written = chunk.written ? 1 : 0;
          if (anyDamage && written && isDamaged.get(chunk.id)) repaired.push(chunk.id);
          addChunk.run(chunk.id, chunk.size, chunk.storedSize, now, written);
          if (!existing) addUse.run(chunk.id, narId);
        }
        // A new NAR counted its chunks at the sizes written.
        this.#moveNarStoredSizes(resized, existing ? undefined : narId);
      }
      if (anyDamage || (existing && existing.damaged_at !== null)) {
        const heal = this.#sql(
          `UPDATE nars SET damaged_at = NULL WHERE damaged_at IS NOT NULL
             AND id IN (SELECT nar_id FROM nar_chunks WHERE chunk_id = ?) AND ${NO_DAMAGED_CHUNK}`,
        );
        for (const chunkId of repaired) heal.run(chunkId);
        // This NAR was just read whole, except where it reused a chunk flagged meanwhile.
        this.#sql(`UPDATE nars SET damaged_at = CASE WHEN ${NO_DAMAGED_CHUNK} THEN NULL ELSE coalesce(damaged_at, ?) END WHERE id = ?`).run(now, narId);
      }
      if (nar.upload) {
        this.#sql(
          `INSERT INTO nar_uploads (file_hash, suffix, nar_id, file_size) VALUES (?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
        ).run(nar.upload.fileHash, nar.upload.suffix, narId, nar.upload.fileSize);
      }
      if (nar.uploadedTo !== undefined) {
        this.#sql('INSERT INTO nar_upload_caches (cache_id, nar_id) VALUES (?, ?) ON CONFLICT DO NOTHING').run(nar.uploadedTo, narId);
      }
      return narId;
    });
    return toNar(this.#sql('SELECT * FROM nars WHERE id = ?').get(id) as Row);
  }

  async getPath(cacheId: number, hashPart: string): Promise<PathRecord | undefined> {
    const row = this.#sql(
      `SELECT ${PATH_COLUMNS} FROM paths JOIN nars ON nars.id = paths.nar_id
       WHERE cache_id = ? AND hash_part = ?`,
    ).get(cacheId, hashPart) as Row | undefined;
    return row && toPath(row);
  }

  async existingPaths(cacheId: number, hashParts: string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    const query = this.#sql('SELECT store_path FROM paths WHERE cache_id = ? AND hash_part = ?');
    for (const hashPart of hashParts) {
      const row = query.get(cacheId, hashPart) as Row | undefined;
      if (row) found.set(hashPart, String(row.store_path));
    }
    return found;
  }

  async putPath(path: NewPath, options: { replace?: boolean } = {}): Promise<PutPathResult> {
    const now = Date.now();
    return this.#transaction((): PutPathResult => {
      if (!this.#sql('SELECT 1 AS found FROM nars WHERE id = ?').get(path.narId)) return 'no-nar';
      const refs = [...new Set(path.references.map((ref) => ref.slice(0, 32)))].filter((h) => h !== path.hashPart);
      const present = this.#sql('SELECT 1 AS found FROM paths WHERE cache_id = ? AND hash_part = ?');
      if (refs.some((h) => !present.get(path.cacheId, h))) return 'missing-reference';
      const existing = this.#sql(`SELECT ${PATH_IDENTITY_COLUMNS} FROM paths WHERE cache_id = ? AND hash_part = ?`).get(path.cacheId, path.hashPart) as Row | undefined;
      const upload = pathUpload(existing, path);
      if (upload.kind === 'unchanged') return 'unchanged';
      if (upload.kind === 'different' && !options.replace) return 'exists';
      if (upload.kind === 'more-sigs') {
        this.#sql('UPDATE paths SET sigs = ? WHERE cache_id = ? AND hash_part = ?').run(upload.sigs.join('\n'), path.cacheId, path.hashPart);
        return 'stored';
      }
      this.#sql(
        `INSERT INTO paths (cache_id, hash_part, store_path, nar_id, refs, deriver, system, sigs, ca, created_at, last_access)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (cache_id, hash_part) DO UPDATE SET
           store_path = excluded.store_path, nar_id = excluded.nar_id, refs = excluded.refs,
           deriver = excluded.deriver, system = excluded.system, sigs = excluded.sigs, ca = excluded.ca,
           created_at = excluded.created_at, last_access = excluded.last_access`,
      ).run(
        path.cacheId,
        path.hashPart,
        path.storePath,
        path.narId,
        path.references.join(' '),
        path.deriver,
        path.system,
        path.sigs.join('\n'),
        path.ca,
        now,
        now,
      );
      this.#sql('DELETE FROM path_refs WHERE cache_id = ? AND hash_part = ?').run(path.cacheId, path.hashPart);
      const addRef = this.#sql('INSERT INTO path_refs (cache_id, hash_part, ref_hash) VALUES (?, ?, ?)');
      for (const ref of refs) addRef.run(path.cacheId, path.hashPart, ref);
      this.#sql('UPDATE nars SET unreferenced_since = NULL WHERE id = ? AND unreferenced_since IS NOT NULL').run(path.narId);
      return 'stored';
    });
  }

  async listPaths(cacheId: number): Promise<PathRecord[]> {
    const rows = this.#sql(`SELECT ${PATH_COLUMNS} FROM paths JOIN nars ON nars.id = paths.nar_id WHERE cache_id = ? ORDER BY store_path`).all(cacheId);
    return (rows as Row[]).map(toPath);
  }

  async setPathPinned(cacheId: number, hashPart: string, pinned: boolean): Promise<boolean> {
    const result = this.#sql('UPDATE paths SET pinned = ? WHERE cache_id = ? AND hash_part = ?').run(pinned ? 1 : 0, cacheId, hashPart);
    return Number(result.changes) > 0;
  }

  async deletePaths(cacheId: number, hashParts: string[]): Promise<{ deleted: string[]; referrers: string[] }> {
    return this.#transaction(() => {
      const doomed = new Set(hashParts);
      const referrers = new Set<string>();
      const findReferrers = this.#sql('SELECT hash_part FROM path_refs WHERE cache_id = ? AND ref_hash = ?');
      for (const hashPart of doomed) {
        for (const row of findReferrers.all(cacheId, hashPart) as Row[]) {
          if (!doomed.has(String(row.hash_part))) referrers.add(String(row.hash_part));
        }
      }
      if (referrers.size > 0) return { deleted: [], referrers: [...referrers] };
      const remove = this.#sql('DELETE FROM paths WHERE cache_id = ? AND hash_part = ?');
      return { deleted: [...doomed].filter((hashPart) => Number(remove.run(cacheId, hashPart).changes) > 0), referrers: [] };
    });
  }

  async recordPathAccess(cacheId: number, hashPart: string, at: number, staleBefore: number): Promise<void> {
    this.#transaction(() => this.#sql('UPDATE paths SET last_access = ? WHERE cache_id = ? AND hash_part = ? AND last_access < ?').run(at, cacheId, hashPart, staleBefore));
  }

  async recordNarAccess(cacheId: number, narId: number, at: number, staleBefore: number): Promise<void> {
    // Read first: a NAR is served far more often than its paths' access times go stale.
    const stale = this.#sql('SELECT 1 AS found FROM paths WHERE nar_id = ? AND cache_id = ? AND last_access < ? LIMIT 1').get(narId, cacheId, staleBefore);
    if (stale) this.#transaction(() => this.#sql('UPDATE paths SET last_access = ? WHERE nar_id = ? AND cache_id = ? AND last_access < ?').run(at, narId, cacheId, staleBefore));
  }

  async getFile(cacheId: number, name: string): Promise<CacheFile | undefined> {
    const row = this.#sql('SELECT content_id, size, content_type, content_encoding FROM files WHERE cache_id = ? AND name = ?').get(cacheId, name) as Row | undefined;
    return row && toCacheFile(row);
  }

  async getFilePiece(contentId: number, seq: number): Promise<Uint8Array | undefined> {
    const row = this.#sql('SELECT data FROM file_pieces WHERE content_id = ? AND seq = ?').get(contentId, seq) as Row | undefined;
    return row && (row.data as Uint8Array);
  }

  async startFileUpload(): Promise<number> {
    return Number((this.#sql('INSERT INTO file_contents (written_at) VALUES (?) RETURNING id').get(Date.now()) as Row).id);
  }

  async appendFilePiece(contentId: number, seq: number, data: Uint8Array): Promise<void> {
    this.#transaction(() => {
      const grown = this.#sql('UPDATE file_contents SET size = size + ?, written_at = ? WHERE id = ?').run(data.length, Date.now(), contentId);
      if (Number(grown.changes) === 0) throw fileUploadGoneError();
      this.#sql('INSERT INTO file_pieces (content_id, seq, data) VALUES (?, ?, ?)').run(contentId, seq, data);
    });
  }

  async commitFile(cacheId: number, name: string, file: CacheFile): Promise<void> {
    this.#transaction(() => {
      const content = this.#sql('SELECT size FROM file_contents WHERE id = ?').get(file.contentId) as Row | undefined;
      if (!content || Number(content.size) !== file.size) throw fileUploadGoneError();
      const previous = this.#sql('SELECT content_id FROM files WHERE cache_id = ? AND name = ?').get(cacheId, name) as Row | undefined;
      this.#sql(
        `INSERT INTO files (cache_id, name, content_id, size, content_type, content_encoding, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (cache_id, name) DO UPDATE SET content_id = excluded.content_id, size = excluded.size, content_type = excluded.content_type,
           content_encoding = excluded.content_encoding, created_at = excluded.created_at`,
      ).run(cacheId, name, file.contentId, file.size, file.contentType, file.contentEncoding, Date.now());
      if (previous) this.#deleteUnusedFileContent(Number(previous.content_id));
    });
  }

  async discardFileUpload(contentId: number): Promise<void> {
    this.#transaction(() => this.#deleteUnusedFileContent(contentId));
  }

  #deleteUnusedFileContent(contentId: number): void {
    this.#sql('DELETE FROM file_contents WHERE id = ? AND NOT EXISTS (SELECT 1 FROM files WHERE content_id = ?)').run(contentId, contentId);
  }

  async deleteAbandonedFileContents(before: number, limit: number): Promise<{ contents: number; bytes: number }> {
    const rows = this.#transaction(() => this.#sql(
      `DELETE FROM file_contents WHERE id IN (
         SELECT id FROM file_contents WHERE written_at <= ? AND NOT EXISTS (SELECT 1 FROM files WHERE files.content_id = file_contents.id) LIMIT ?
       ) RETURNING size`,
    ).all(before, limit) as Row[]);
    return { contents: rows.length, bytes: rows.reduce((sum, row) => sum + Number(row.size), 0) };
  }

  async stats(): Promise<StoreStats> {
    const paths = this.#sql('SELECT count(*) AS n FROM paths').get() as Row;
    const nars = this.#sql('SELECT count(*) AS n, coalesce(sum(nar_size), 0) AS bytes FROM nars').get() as Row;
    const chunks = this.#sql(
      'SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes, coalesce(sum(stored_size), 0) AS stored FROM chunks',
    ).get() as Row;
    return {
      paths: Number(paths.n),
      nars: Number(nars.n),
      narBytes: Number(nars.bytes),
      chunks: Number(chunks.n),
      chunkBytes: Number(chunks.bytes),
      storedBytes: Number(chunks.stored),
    };
  }

  async markChunksDamaged(ids: Uint8Array[], at: number): Promise<number> {
    return this.#transaction(() => {
      let nars = 0;
      const markChunk = this.#sql('UPDATE chunks SET damaged_at = ? WHERE id = ? AND damaged_at IS NULL');
      const markNars = this.#sql('UPDATE nars SET damaged_at = ? WHERE damaged_at IS NULL AND id IN (SELECT nar_id FROM nar_chunks WHERE chunk_id = ?)');
      for (const id of ids) {
        markChunk.run(at, id);
        nars += Number(markNars.run(at, id).changes);
      }
      return nars;
    });
  }

  async setChunksDamaged(ids: Uint8Array[], damaged: boolean, at: number): Promise<void> {
    this.#transaction(() => {
      const flag = this.#sql('UPDATE chunks SET damaged_at = coalesce(damaged_at, ?) WHERE id = ?');
      const clear = this.#sql('UPDATE chunks SET damaged_at = NULL WHERE id = ?');
      for (const id of ids) {
        if (damaged) flag.run(at, id);
        else clear.run(id);
      }
    });
  }

  async listChunks(after: Uint8Array, limit: number): Promise<ChunkRecord[]> {
    return (this.#sql('SELECT * FROM chunks WHERE id > ? ORDER BY id LIMIT ?').all(after, limit) as Row[]).map(toChunk);
  }

  async getChunk(id: Uint8Array): Promise<ChunkRecord | undefined> {
    const row = this.#sql('SELECT * FROM chunks WHERE id = ?').get(id) as Row | undefined;
    return row && toChunk(row);
  }

  async chunksToRecompress(after: Uint8Array, limit: number): Promise<ChunkRecord[]> {
    return (this.#sql(
      `SELECT * FROM chunks WHERE zstd_level IS NULL AND id > ? AND damaged_at IS NULL AND unreferenced_since IS NULL
       ORDER BY id LIMIT ?`,
    ).all(after, limit) as Row[]).map(toChunk);
  }

  async recordRecompressed(chunks: RecompressedChunk[]): Promise<number> {
    return this.#transaction(() => {
      const update = this.#sql('UPDATE chunks SET stored_size = ?, zstd_level = ? WHERE id = ? AND stored_size = ?');
      const changes = new Map<string, number>();
      for (const chunk of chunks) {
        if (update.run(chunk.storedSize, chunk.zstdLevel, chunk.id, chunk.oldStoredSize).changes > 0) {
          changes.set(Buffer.from(chunk.id).toString('hex'), chunk.storedSize - chunk.oldStoredSize);
        }
      }
      this.#moveNarStoredSizes(changes);
      return changes.size;
    });
  }

  /** Inside a transaction: moves the stored size of the NARs (but `except`) that use changed chunks. */
  #moveNarStoredSizes(changes: Map<string, number>, except?: number): void {
    if (changes.size === 0) return;
    const users = this.#sql('SELECT nar_id FROM nar_chunks WHERE chunk_id = ?');
    const narIds = new Set<number>();
    for (const hex of changes.keys()) for (const row of users.all(Buffer.from(hex, 'hex')) as Row[]) narIds.add(Number(row.nar_id));
    narIds.delete(except ?? -1);
    const table = this.#sql('SELECT chunk_table FROM nars WHERE id = ?');
    const move = this.#sql('UPDATE nars SET stored_size = stored_size + ? WHERE id = ?');
    for (const narId of narIds) move.run(storedSizeDelta(blob((table.get(narId) as Row).chunk_table), changes), narId);
  }

  async setChunkLevels(ids: Uint8Array[], zstdLevel: number): Promise<void> {
    this.#transaction(() => {
      const set = this.#sql('UPDATE chunks SET zstd_level = ? WHERE id = ?');
      for (const id of ids) set.run(zstdLevel, id);
    });
  }

  async listNars(afterId: number, limit: number): Promise<NarRecord[]> {
    return (this.#sql('SELECT * FROM nars WHERE id > ? ORDER BY id LIMIT ?').all(afterId, limit) as Row[]).map(toNar);
  }

  async narChunks(narId: number): Promise<ChunkRecord[]> {
    const rows = this.#sql('SELECT chunks.* FROM nar_chunks JOIN chunks ON chunks.id = nar_chunks.chunk_id WHERE nar_chunks.nar_id = ?').all(narId);
    return (rows as Row[]).map(toChunk);
  }

  async setNarDamaged(narId: number, damaged: boolean, at: number): Promise<void> {
    this.#sql('UPDATE nars SET damaged_at = CASE WHEN ? THEN coalesce(damaged_at, ?) ELSE NULL END WHERE id = ?').run(damaged ? 1 : 0, at, narId);
  }

  async damagedNarCount(): Promise<number> {
    return Number((this.#sql('SELECT count(*) AS n FROM nars WHERE damaged_at IS NOT NULL').get() as Row).n);
  }

  async expirePaths(cacheId: number, accessedBefore: number): Promise<number> {
    const result = this.#sql(
      `WITH RECURSIVE live(hash_part) AS (
         SELECT hash_part FROM paths WHERE cache_id = ? AND (pinned = 1 OR last_access >= ?)
         UNION
         SELECT path_refs.ref_hash FROM path_refs JOIN live ON path_refs.hash_part = live.hash_part WHERE path_refs.cache_id = ?
       )
       DELETE FROM paths WHERE cache_id = ? AND hash_part NOT IN (SELECT hash_part FROM live)`,
    ).run(cacheId, accessedBefore, cacheId, cacheId);
    return Number(result.changes);
  }

  async markUnreferencedNars(at: number): Promise<number> {
    const result = this.#sql(
      'UPDATE nars SET unreferenced_since = ? WHERE unreferenced_since IS NULL AND NOT EXISTS (SELECT 1 FROM paths WHERE paths.nar_id = nars.id)',
    ).run(at);
    return Number(result.changes);
  }

  async deleteUnreferencedNars(before: number, at: number, limit: number): Promise<{ nars: number; narBytes: number }> {
    return this.#transaction(() => {
      const doomed = this.#sql(
        'SELECT id, nar_size FROM nars WHERE unreferenced_since <= ? AND NOT EXISTS (SELECT 1 FROM paths WHERE paths.nar_id = nars.id) LIMIT ?',
      ).all(before, limit) as Row[];
      const chunksOf = this.#sql('SELECT chunk_id FROM nar_chunks WHERE nar_id = ?');
      const remove = this.#sql('DELETE FROM nars WHERE id = ?');
      const markChunk = this.#sql(
        'UPDATE chunks SET unreferenced_since = ? WHERE id = ? AND unreferenced_since IS NULL AND NOT EXISTS (SELECT 1 FROM nar_chunks WHERE chunk_id = ?)',
      );
      let narBytes = 0;
      for (const row of doomed) {
        const chunkIds = (chunksOf.all(row.id) as Row[]).map((r) => r.chunk_id as Uint8Array);
        remove.run(row.id);
        for (const chunkId of chunkIds) markChunk.run(at, chunkId, chunkId);
        narBytes += Number(row.nar_size);
      }
      return { nars: doomed.length, narBytes };
    });
  }

  async deleteUnreferencedChunks(before: number, limit: number): Promise<ChunkRecord[]> {
    const rows = this.#sql(
      `DELETE FROM chunks WHERE id IN (
         SELECT id FROM chunks WHERE unreferenced_since <= ? AND NOT EXISTS (SELECT 1 FROM nar_chunks WHERE nar_chunks.chunk_id = chunks.id) LIMIT ?
       ) RETURNING *`,
    ).all(before, limit) as Row[];
    return rows.map(toChunk);
  }

  async existingChunks(ids: Uint8Array[]): Promise<Set<string>> {
    const found = new Set<string>();
    const query = this.#sql('SELECT 1 AS found FROM chunks WHERE id = ?');
    for (const id of ids) if (query.get(id)) found.add(Buffer.from(id).toString('hex'));
    return found;
  }

  async noteChunkDeletions(ids: Uint8Array[], at: number): Promise<Uint8Array[]> {
    return this.#transaction(() => {
      const note = this.#sql(
        `INSERT INTO chunk_deletions (id, noted_at) SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE id = ?)
         ON CONFLICT (id) DO UPDATE SET noted_at = excluded.noted_at, done_at = NULL`,
      );
      return ids.filter((id) => note.run(id, at, id).changes > 0);
    });
  }

  async finishChunkDeletions(ids: Uint8Array[], at: number): Promise<void> {
    this.#transaction(() => {
      const finish = this.#sql('UPDATE chunk_deletions SET done_at = ? WHERE id = ?');
      for (const id of ids) finish.run(at, id);
    });
  }

  async tidyChunkDeletions(before: number, at: number): Promise<void> {
    this.#transaction(() => {
      this.#sql('UPDATE chunk_deletions SET done_at = ? WHERE done_at IS NULL').run(at);
      this.#sql('DELETE FROM chunk_deletions WHERE done_at < ?').run(before);
    });
  }

  /** Throws when a deletion of one of the chunks' files runs or finished at or after `since`. */
  #refuseDeletedChunks(chunks: NewChunk[], since: number): void {
    if (this.#sql('SELECT 1 AS found FROM chunk_deletions LIMIT 1').get() === undefined) return;
    const deleted = this.#sql('SELECT 1 AS found FROM chunk_deletions WHERE id = ? AND (done_at IS NULL OR done_at >= ?)');
    if (chunks.some((chunk) => deleted.get(chunk.id, since) !== undefined)) throw chunksDeletedError();
  }

  async renewIngestHold(holder: string, busySince: number | null, at: number): Promise<void> {
    this.#transaction(() => this.#sql(
      `INSERT INTO ingest_holds (holder, busy_since, renewed_at) VALUES (?, ?, ?)
       ON CONFLICT (holder) DO UPDATE SET busy_since = excluded.busy_since, renewed_at = excluded.renewed_at`,
    ).run(holder, busySince, at));
  }

  async releaseIngestHold(holder: string): Promise<void> {
    this.#transaction(() => this.#sql('DELETE FROM ingest_holds WHERE holder = ?').run(holder));
  }

  async ingestHoldFloor(aliveSince: number, exceptHolder: string): Promise<number | undefined> {
    return this.#transaction(() => {
      this.#sql('DELETE FROM ingest_holds WHERE renewed_at < ?').run(aliveSince);
      const row = this.#sql('SELECT min(busy_since) AS floor FROM ingest_holds WHERE holder <> ?').get(exceptHolder) as Row;
      return row.floor === null ? undefined : Number(row.floor);
    });
  }

  async tryAcquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    return this.#transaction(() => {
      this.#sql(
        `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE leases.expires_at < ? OR leases.holder = excluded.holder`,
      ).run(name, holder, now + ttlMs, now);
      const row = this.#sql('SELECT holder FROM leases WHERE name = ?').get(name) as Row | undefined;
      return row?.holder === holder;
    });
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    this.#transaction(() => this.#sql('DELETE FROM leases WHERE name = ? AND holder = ?').run(name, holder));
  }
}

