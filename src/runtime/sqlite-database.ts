import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { NarwhalError } from '../errors.ts';

const SQLITE_BUSY = 5;
const SQLITE_FULL = 13;
const BUSY_TIMEOUT_MS = 10_000;

/**
 * Switching a new database file to WAL needs it to itself, and SQLite answers busy at once rather
 * than waiting the busy timeout: two processes opening a fresh data dir together (`serve
 * --processes 2`) saw "database is locked". So it is retried for as long as the timeout.
 */
function enableWal(db: DatabaseSync): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      db.exec('PRAGMA journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { errcode?: number }).errcode !== SQLITE_BUSY || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

/**
 * A node:sqlite connection as Narwhal's databases use it: WAL, so that CLI commands read while a
 * server writes; `synchronous = FULL`, so that an acknowledged commit survives power loss; a busy
 * timeout for writers in other processes; prepared statements kept; and transactions whose
 * SQLITE_FULL becomes 'storage-full' (HTTP 507) with the owner's message.
 */
export class SqliteDatabase {
  readonly db: DatabaseSync;
  readonly #fullMessage: string;
  readonly #statements = new Map<string, StatementSync>();

  constructor(path: string, fullMessage: string) {
    this.#fullMessage = fullMessage;
    this.db = new DatabaseSync(path);
    this.db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    enableWal(this.db);
    this.db.exec('PRAGMA synchronous = FULL');
  }

  sql(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  transaction<T>(body: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const result = body();
      this.db.exec('COMMIT');
      return result;
    } catch (err) {
      // After some errors (SQLITE_FULL among them) SQLite has already rolled back by itself.
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      const { code, errcode } = err as { code?: unknown; errcode?: unknown };
      if (code === 'ERR_SQLITE_ERROR' && typeof errcode === 'number' && (errcode & 0xff) === SQLITE_FULL) {
        throw new NarwhalError('storage-full', this.#fullMessage, { cause: err });
      }
      throw err;
    }
  }

  close(): void {
    this.db.close();
  }
}
