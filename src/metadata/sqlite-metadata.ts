import type { SQLInputValue, StatementSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { SQLITE_MIGRATIONS } from './sqlite-schema.ts';
import { SqliteDatabase } from '../runtime/sqlite-database.ts';
import { SqlMetadata } from './sql-metadata.ts';
import { sqliteDialect, type SqlStatement } from './sql-dialect.ts';
import type { Row } from './metadata-rows.ts';
import type { SqlRunner, SqlStep, SqlWork } from './sql-work.ts';

/**
 * The embedded metadata backend: one SQLite file in WAL mode, so `narwhal stats` and other
 * commands can read while the server writes. node:sqlite is synchronous; every statement is
 * short, and each method runs in one transaction (see SqliteRunner).
 */
export class SqliteMetadata extends SqlMetadata {
  readonly #sqlite: SqliteDatabase;

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const sqlite = new SqliteDatabase(path, 'the metadata database is full');
    super(sqliteDialect, new SqliteRunner(sqlite));
    this.#sqlite = sqlite;
    sqlite.db.exec('PRAGMA foreign_keys = ON');
    sqlite.transaction(() => {
      const version = this.#userVersion();
      for (let v = version; v < SQLITE_MIGRATIONS.length; v++) sqlite.db.exec(SQLITE_MIGRATIONS[v]);
      if (version < SQLITE_MIGRATIONS.length) sqlite.db.exec(`PRAGMA user_version = ${SQLITE_MIGRATIONS.length}`);
    });
  }

  #userVersion(): number {
    return Number((this.#sqlite.db.prepare('PRAGMA user_version').get() as Row).user_version);
  }

  async close(): Promise<void> {
    this.#sqlite.close();
  }

  async checkpoint(): Promise<void> {
    // Only when no other connection reads: otherwise SQLITE_BUSY, and the next idle time retries.
    try {
      this.#sqlite.db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    } catch (err) {
      if ((err as { errcode?: number }).errcode !== 5) throw err;
    }
  }

  async schemaVersion(): Promise<number> {
    return this.#userVersion();
  }
}

/**
 * Drives works synchronously: each step is answered at once from a cached prepared statement, so
 * a work runs to its end without yielding to the event loop (see SqlWork), inside one
 * BEGIN IMMEDIATE transaction for `atomic` and `write`.
 */
class SqliteRunner implements SqlRunner {
  readonly #sqlite: SqliteDatabase;

  constructor(sqlite: SqliteDatabase) {
    this.#sqlite = sqlite;
  }

  async get(statement: SqlStatement, params: readonly unknown[] = []): Promise<Row | undefined> {
    return this.#execute({ kind: 'get', statement, params }) as Row | undefined;
  }

  async all(statement: SqlStatement, params: readonly unknown[] = []): Promise<Row[]> {
    return this.#execute({ kind: 'all', statement, params }) as Row[];
  }

  async atomic<T>(work: SqlWork<T>): Promise<T> {
    return this.#sqlite.transaction(() => this.#drive(work));
  }

  async write<T>(work: SqlWork<T>): Promise<T> {
    return this.#sqlite.transaction(() => this.#drive(work));
  }

  #drive<T>(work: SqlWork<T>): T {
    let step = work.next();
    while (!step.done) step = work.next(this.#execute(step.value));
    return step.value;
  }

  #execute({ kind, statement, params }: SqlStep): unknown {
    const prepared = this.#sqlite.sql(statement.text);
    const values = parameters(params);
    if (!statement.perElement) return execute(prepared, kind, values);
    // A list statement: once per element of its list parameters (the arrays among params), with
    // one array of values rebound each time (node:sqlite copies them at the call).
    const lists = values.flatMap((value, at) => (Array.isArray(value) ? [at] : []));
    const length = (params[lists[0]] as unknown[]).length;
    const element = values.slice();
    const rows: unknown[] = [];
    let changes = 0;
    for (let i = 0; i < length; i++) {
      for (const at of lists) element[at] = (params[at] as SQLInputValue[])[i];
      const result = execute(prepared, kind, element);
      if (kind === 'get' && result !== undefined) return result;
      if (kind === 'all') rows.push(...(result as unknown[]));
      else if (kind === 'run') changes += result as number;
    }
    return kind === 'all' ? rows : kind === 'run' ? changes : undefined;
  }
}

function execute(prepared: StatementSync, kind: SqlStep['kind'], params: SQLInputValue[]): unknown {
  if (kind === 'get') return prepared.get(...params);
  if (kind === 'all') return prepared.all(...params);
  return Number(prepared.run(...params).changes);
}

/** The parameters as node:sqlite binds them (booleans as 0/1); copied only when one is a boolean. Lists are left as they are. */
function parameters(params: readonly unknown[]): SQLInputValue[] {
  for (const param of params)
    if (typeof param === 'boolean') return params.map(sqliteDialect.parameter) as SQLInputValue[];
  return params as SQLInputValue[];
}
