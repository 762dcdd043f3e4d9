import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { SQLITE_MIGRATIONS } from './sqlite-schema.ts';
import type {
  CacheFile,
  CacheRecord,
  CacheSettings,
  Permission,
  TokenRecord,
  MetadataStore,
  NarRecord,
  NewNar,
  NewPath,
  PathRecord,
  StoreStats,
} from './metadata-store.ts';

type Row = Record<string, SQLInputValue>;

/**
 * The embedded metadata backend: one SQLite file in WAL mode, so `narwhal stats` and other
 * commands can read while the server writes. node:sqlite is synchronous; every statement here is
 * short, and each method runs in one transaction.
 */
export class SqliteMetadata implements MetadataStore {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#db = new DatabaseSync(path);
    this.#db.exec('PRAGMA busy_timeout = 10000');
    this.#db.exec('PRAGMA journal_mode = WAL');
    // FULL: a commit that was acknowledged survives power loss, not only a process crash.
    this.#db.exec('PRAGMA synchronous = FULL');
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
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #transaction<T>(body: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const result = body();
      this.#db.exec('COMMIT');
      return result;
    } catch (err) {
      this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#db.close();
  }

  async getCache(name: string): Promise<CacheRecord | undefined> {
    const row = this.#sql('SELECT * FROM caches WHERE name = ?').get(name) as Row | undefined;
    return row && toCache(row);
  }

  async createCache(name: string, settings: CacheSettings): Promise<CacheRecord | undefined> {
    const row = this.#sql(
      `INSERT INTO caches (name, is_public, priority, signing_key, trusted_keys, require_signature, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING *`,
    ).get(
      name,
      settings.isPublic ? 1 : 0,
      settings.priority,
      settings.signingKey,
      settings.trustedKeys.join('\n'),
      settings.requireSignature ? 1 : 0,
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
        `UPDATE caches SET is_public = ?, priority = ?, signing_key = ?, trusted_keys = ?, require_signature = ? WHERE name = ?`,
      ).run(next.isPublic ? 1 : 0, next.priority, next.signingKey, next.trustedKeys.join('\n'), next.requireSignature ? 1 : 0, name);
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

  async hasChunk(id: Uint8Array): Promise<boolean> {
    return this.#sql('SELECT 1 AS found FROM chunks WHERE id = ?').get(id) !== undefined;
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
      const existing = this.#sql('SELECT id FROM nars WHERE nar_hash = ?').get(nar.narHash) as Row | undefined;
      let narId: number;
      if (existing) {
        narId = Number(existing.id);
      } else {
        const inserted = this.#sql(
          `INSERT INTO nars (nar_hash, nar_size, chunk_count, stored_size, chunk_table, created_at)
           VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
        ).get(nar.narHash, nar.narSize, nar.chunkTable.length / 40, nar.storedSize, nar.chunkTable, now) as Row;
        narId = Number(inserted.id);
        const addChunk = this.#sql(
          `INSERT INTO chunks (id, size, stored_size, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
        );
        const addUse = this.#sql('INSERT INTO nar_chunks (chunk_id, nar_id) VALUES (?, ?)');
        for (const chunk of nar.chunks) {
          addChunk.run(chunk.id, chunk.size, chunk.storedSize, now);
          addUse.run(chunk.id, narId);
        }
      }
      if (nar.upload) {
        this.#sql(
          `INSERT INTO nar_uploads (file_hash, suffix, nar_id, file_size) VALUES (?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
        ).run(nar.upload.fileHash, nar.upload.suffix, narId, nar.upload.fileSize);
      }
      return narId;
    });
    return toNar(this.#sql('SELECT * FROM nars WHERE id = ?').get(id) as Row);
  }

  async getPath(cacheId: number, hashPart: string): Promise<PathRecord | undefined> {
    const row = this.#sql(
      `SELECT paths.*, nars.nar_hash, nars.nar_size FROM paths JOIN nars ON nars.id = paths.nar_id
       WHERE cache_id = ? AND hash_part = ?`,
    ).get(cacheId, hashPart) as Row | undefined;
    return row && toPath(row);
  }

  async existingPaths(cacheId: number, hashParts: string[]): Promise<Set<string>> {
    const found = new Set<string>();
    const query = this.#sql('SELECT 1 AS found FROM paths WHERE cache_id = ? AND hash_part = ?');
    for (const hashPart of hashParts) if (query.get(cacheId, hashPart)) found.add(hashPart);
    return found;
  }

  async putPath(path: NewPath): Promise<void> {
    const now = Date.now();
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
  }

  async getFile(cacheId: number, name: string): Promise<CacheFile | undefined> {
    const row = this.#sql('SELECT * FROM files WHERE cache_id = ? AND name = ?').get(cacheId, name) as Row | undefined;
    if (!row) return undefined;
    return {
      content: row.content as Uint8Array,
      contentType: String(row.content_type),
      contentEncoding: row.content_encoding === null ? null : String(row.content_encoding),
    };
  }

  async putFile(cacheId: number, name: string, file: CacheFile): Promise<void> {
    this.#sql(
      `INSERT INTO files (cache_id, name, content, content_type, content_encoding, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (cache_id, name) DO UPDATE SET content = excluded.content, content_type = excluded.content_type,
         content_encoding = excluded.content_encoding, created_at = excluded.created_at`,
    ).run(cacheId, name, file.content, file.contentType, file.contentEncoding, Date.now());
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
}

function toCache(row: Row): CacheRecord {
  return {
    id: Number(row.id),
    name: String(row.name),
    isPublic: Number(row.is_public) === 1,
    priority: Number(row.priority),
    signingKey: String(row.signing_key),
    trustedKeys: splitList(row.trusted_keys, '\n'),
    requireSignature: Number(row.require_signature) === 1,
    createdAt: Number(row.created_at),
  };
}

function toToken(row: Row): TokenRecord {
  return {
    id: String(row.id),
    name: String(row.name),
    caches: splitList(row.caches, ','),
    perms: splitList(row.perms, ',') as Permission[],
    createdAt: Number(row.created_at),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

function splitList(value: SQLInputValue, separator: string): string[] {
  const text = String(value);
  return text === '' ? [] : text.split(separator);
}

function toNar(row: Row): NarRecord {
  return {
    id: Number(row.id),
    narHash: String(row.nar_hash),
    narSize: Number(row.nar_size),
    chunkCount: Number(row.chunk_count),
    storedSize: Number(row.stored_size),
    chunkTable: row.chunk_table as Uint8Array,
    createdAt: Number(row.created_at),
  };
}

function toPath(row: Row): PathRecord {
  return {
    cacheId: Number(row.cache_id),
    hashPart: String(row.hash_part),
    storePath: String(row.store_path),
    narId: Number(row.nar_id),
    narHash: String(row.nar_hash),
    narSize: Number(row.nar_size),
    references: splitList(row.refs, ' '),
    deriver: row.deriver === null ? null : String(row.deriver),
    system: row.system === null ? null : String(row.system),
    sigs: splitList(row.sigs, '\n'),
    ca: row.ca === null ? null : String(row.ca),
    createdAt: Number(row.created_at),
  };
}
