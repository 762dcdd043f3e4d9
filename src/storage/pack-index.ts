import type { SQLInputValue, StatementSync } from 'node:sqlite';
import { SqliteDatabase } from '../runtime/sqlite-database.ts';
import { FRAME_HEADER_BYTES } from './pack-format.ts';

/** Where a chunk's zstd frame sits: `length` bytes at `offset` of pack file `pack`. */
export interface PackLocation {
  pack: string;
  offset: number;
  length: number;
}

/** A frame's place and the frameCrc of its bytes when written; undefined for frames indexed before CRCs were. */
export interface LocatedFrame extends PackLocation {
  crc: number | undefined;
}

export interface IndexedChunk extends LocatedFrame {
  id: Uint8Array;
  /** When the frame was written, ms since the epoch. */
  writtenAt: number;
}

export interface PackUsage {
  name: string;
  /** The pack file's length when it was sealed. */
  bytes: number;
  sealedAt: number;
  /** Bytes still indexed in it, frame headers included. */
  liveBytes: number;
  liveChunks: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS packs (
  name TEXT PRIMARY KEY,
  bytes INTEGER NOT NULL,
  sealed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
  id BLOB PRIMARY KEY,
  pack TEXT NOT NULL,
  offset INTEGER NOT NULL,
  length INTEGER NOT NULL,
  written_at INTEGER NOT NULL,
  crc INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks (pack);
`;

/** Indexes made before frames' CRCs were recorded lack the column; their frames keep NULL. */
const ADD_CRC = 'ALTER TABLE chunks ADD COLUMN crc INTEGER';

type Row = Record<string, SQLInputValue>;

/**
 * The pack store's index (`index.sqlite` beside the packs): which pack holds each chunk, and the
 * sealed packs. Only sealed packs are named here, so a frame is indexed only once its pack is
 * durable. SQLite in WAL mode lets a CLI command (gc, verify) share it with a running server.
 */
export class PackIndex {
  readonly #sqlite: SqliteDatabase;

  constructor(path: string) {
    this.#sqlite = new SqliteDatabase(path, 'the chunk store is full');
    this.#sqlite.db.exec(SCHEMA);
    // In a transaction, which takes the write lock first: server processes opening an old index
    // together (`serve --processes`) add the column once.
    this.#transaction(() => {
      const columns = this.#sql("SELECT name FROM pragma_table_info('chunks')").all() as Row[];
      if (!columns.some((column) => column.name === 'crc')) this.#sqlite.db.exec(ADD_CRC);
    });
  }

  lookup(id: Uint8Array): LocatedFrame | undefined {
    const row = this.#sql('SELECT pack, offset, length, crc FROM chunks WHERE id = ?').get(id) as Row | undefined;
    return row && { pack: row.pack as string, offset: Number(row.offset), length: Number(row.length), crc: crcOf(row) };
  }

  /** lookup of several chunks in one statement, in order: a NAR's chunks and bases are looked up together. */
  lookupMany(ids: Uint8Array[]): (LocatedFrame | undefined)[] {
    const found: (LocatedFrame | undefined)[] = ids.map(() => undefined);
    if (ids.length === 0) return found;
    // The ids go as one blob, cut into 32-byte ids by a recursive count: one parameter however many.
    const rows = this.#sql(
      `WITH RECURSIVE ask(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM ask WHERE i + 1 < ?)
       SELECT ask.i AS i, pack, offset, length, crc FROM ask JOIN chunks ON chunks.id = substr(?, ask.i * 32 + 1, 32)`,
    ).all(ids.length, Buffer.concat(ids)) as Row[];
    for (const row of rows)
      found[Number(row.i)] = {
        pack: row.pack as string,
        offset: Number(row.offset),
        length: Number(row.length),
        crc: crcOf(row),
      };
    return found;
  }

  /** Names sealed packs and indexes the chunks written into them; a chunk already indexed moves to its new frame. */
  recordSealed(packs: { name: string; bytes: number }[], chunks: IndexedChunk[], sealedAt: number): void {
    this.#transaction(() => {
      const addPack = this.#sql('INSERT OR REPLACE INTO packs (name, bytes, sealed_at) VALUES (?, ?, ?)');
      for (const pack of packs) addPack.run(pack.name, pack.bytes, sealedAt);
      const add = this.#sql(
        'INSERT OR REPLACE INTO chunks (id, pack, offset, length, written_at, crc) VALUES (?, ?, ?, ?, ?, ?)',
      );
      for (const c of chunks) add.run(c.id, c.pack, c.offset, c.length, c.writtenAt, c.crc ?? null);
    });
  }

  recordCrc(id: Uint8Array, crc: number): void {
    this.#sql('UPDATE chunks SET crc = ? WHERE id = ? AND crc IS NULL').run(crc, id);
  }

  /** Un-indexes the chunk; returns the frame's length, or undefined when it was not indexed. */
  delete(id: Uint8Array): number | undefined {
    const row = this.#sql('DELETE FROM chunks WHERE id = ? RETURNING length').get(id) as Row | undefined;
    return row && Number(row.length);
  }

  /** Un-indexes the chunk only if its frame was written at or before `notAfter`. */
  deleteUnlessNewer(id: Uint8Array, notAfter: number): number | undefined {
    const row = this.#sql('DELETE FROM chunks WHERE id = ? AND written_at <= ? RETURNING length').get(id, notAfter) as
      | Row
      | undefined;
    return row && Number(row.length);
  }

  /** Up to `limit` chunks with ids after `after`, in id order. */
  page(after: Uint8Array, limit: number): IndexedChunk[] {
    const rows = this.#sql(
      'SELECT id, pack, offset, length, written_at, crc FROM chunks WHERE id > ? ORDER BY id LIMIT ?',
    ).all(after, limit) as Row[];
    return rows.map(toChunk);
  }

  chunksIn(pack: string): IndexedChunk[] {
    return (
      this.#sql('SELECT id, pack, offset, length, written_at, crc FROM chunks WHERE pack = ? ORDER BY offset').all(
        pack,
      ) as Row[]
    ).map(toChunk);
  }

  hasPack(name: string): boolean {
    return this.#sql('SELECT 1 FROM packs WHERE name = ?').get(name) !== undefined;
  }

  packNames(): Set<string> {
    return new Set((this.#sql('SELECT name FROM packs').all() as Row[]).map((row) => row.name as string));
  }

  usage(): PackUsage[] {
    const rows = this.#sql(
      `SELECT p.name, p.bytes, p.sealed_at, COUNT(c.id) AS live_chunks, COALESCE(SUM(c.length), 0) + ${FRAME_HEADER_BYTES} * COUNT(c.id) AS live_bytes
       FROM packs p LEFT JOIN chunks c ON c.pack = p.name GROUP BY p.name ORDER BY p.name`,
    ).all() as Row[];
    return rows.map((row) => ({
      name: row.name as string,
      bytes: Number(row.bytes),
      sealedAt: Number(row.sealed_at),
      liveBytes: Number(row.live_bytes),
      liveChunks: Number(row.live_chunks),
    }));
  }

  /**
   * Names the new pack and points each chunk at its copy there, unless the chunk changed since it
   * was copied (deleted, or rewritten elsewhere); then forgets `from` if nothing is left in it.
   * Returns whether `from` was forgotten (its file may go).
   */
  relocate(
    from: string,
    to: { name: string; bytes: number },
    moved: { id: Uint8Array; old: PackLocation; offset: number }[],
    sealedAt: number,
  ): boolean {
    return this.#transaction(() => {
      this.#sql('INSERT OR REPLACE INTO packs (name, bytes, sealed_at) VALUES (?, ?, ?)').run(
        to.name,
        to.bytes,
        sealedAt,
      );
      const update = this.#sql('UPDATE chunks SET pack = ?, offset = ? WHERE id = ? AND pack = ? AND offset = ?');
      for (const m of moved) update.run(to.name, m.offset, m.id, m.old.pack, m.old.offset);
      return this.#forgetIfEmpty(from);
    });
  }

  /** Forgets the pack if no chunk is indexed in it; returns whether it did. */
  forgetIfEmpty(name: string): boolean {
    return this.#transaction(() => this.#forgetIfEmpty(name));
  }

  #forgetIfEmpty(name: string): boolean {
    const result = this.#sql(
      'DELETE FROM packs WHERE name = ? AND NOT EXISTS (SELECT 1 FROM chunks WHERE pack = ?)',
    ).run(name, name);
    return Number(result.changes) > 0;
  }

  /** Gives the log's space back (after compaction rewrote many rows); skipped while another connection reads. */
  checkpoint(): void {
    try {
      this.#sqlite.db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    } catch (err) {
      if ((err as { errcode?: number }).errcode !== 5) throw err;
    }
  }

  close(): void {
    this.#sqlite.close();
  }

  #sql(sql: string): StatementSync {
    return this.#sqlite.sql(sql);
  }

  #transaction<T>(body: () => T): T {
    return this.#sqlite.transaction(body);
  }
}

function toChunk(row: Row): IndexedChunk {
  return {
    id: new Uint8Array(row.id as Uint8Array),
    pack: row.pack as string,
    offset: Number(row.offset),
    length: Number(row.length),
    writtenAt: Number(row.written_at),
    crc: crcOf(row),
  };
}

function crcOf(row: Row): number | undefined {
  return row.crc === null ? undefined : Number(row.crc);
}
