import pg from 'pg';
import { NarwhalError } from '../errors.ts';
import { POSTGRES_MIGRATIONS } from './postgres-schema.ts';
import { SqlMetadata } from './sql-metadata.ts';
import { postgresDialect, type SqlStatement } from './sql-dialect.ts';
import type { Row } from './metadata-rows.ts';
import type { SqlRunner, SqlStep, SqlWork } from './sql-work.ts';

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
export class PostgresMetadata extends SqlMetadata {
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    super(postgresDialect, new PostgresRunner(pool));
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
          oid === INT8_OID && format !== 'binary'
            ? (text: string) => Number(text)
            : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // An idle connection that breaks (server restart) is dropped by the pool; the next query reconnects.
    pool.on('error', (err) => process.stderr.write(`narwhal: metadata database connection lost: ${err.message}\n`));
    try {
      await migrate(pool);
    } catch (err) {
      await pool.end();
      if (err instanceof NarwhalError) throw err;
      // pg's messages name the host, user or SQL state, never the password.
      throw new NarwhalError('unavailable', `cannot open the metadata database: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return new PostgresMetadata(pool);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  /** The schema version, the count of migrations applied. */
  async schemaVersion(): Promise<number> {
    return Number(((await this.#pool.query('SELECT version FROM schema_version')).rows as Row[])[0].version);
  }
}

async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const rows = (await client.query('SELECT version FROM schema_version')).rows as Row[];
    if (rows.length === 0) await client.query('INSERT INTO schema_version (version) VALUES (0)');
    const version = rows.length === 0 ? 0 : Number(rows[0].version);
    if (version > POSTGRES_MIGRATIONS.length) {
      throw new NarwhalError(
        'internal',
        `the metadata database has schema version ${version}, newer than this Narwhal knows (${POSTGRES_MIGRATIONS.length})`,
      );
    }
    for (let v = version; v < POSTGRES_MIGRATIONS.length; v++) await client.query(POSTGRES_MIGRATIONS[v]);
    if (version < POSTGRES_MIGRATIONS.length)
      await client.query('UPDATE schema_version SET version = $1', [POSTGRES_MIGRATIONS.length]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Runs over the pool: reads and `atomic` works query it directly (an `atomic` work must run
 * one statement, atomic by itself: the dialect's arrays make one statement of what SQLite loops
 * over); `write` runs the work in a transaction holding WRITE_LOCK.
 */
class PostgresRunner implements SqlRunner {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async get(statement: SqlStatement, params: readonly unknown[] = []): Promise<Row | undefined> {
    return (await this.all(statement, params))[0];
  }

  async all(statement: SqlStatement, params: readonly unknown[] = []): Promise<Row[]> {
    try {
      return (await execute(this.#pool, { kind: 'all', statement, params })) as Row[];
    } catch (err) {
      throw storageFullError(err);
    }
  }

  async atomic<T>(work: SqlWork<T>): Promise<T> {
    try {
      return await drive(this.#pool, work, 1);
    } catch (err) {
      throw storageFullError(err);
    }
  }

  async write<T>(work: SqlWork<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken: unknown;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
      const result = await drive(client, work, Infinity);
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
}

async function drive<T>(db: pg.Pool | pg.PoolClient, work: SqlWork<T>, maxSteps: number): Promise<T> {
  let step = work.next();
  for (let n = 1; !step.done; n++) {
    if (n > maxSteps) throw new Error(`an atomic work ran more than ${maxSteps} statement(s) outside a transaction`);
    step = work.next(await execute(db, step.value));
  }
  return step.value;
}

async function execute(db: pg.Pool | pg.PoolClient, { kind, statement, params }: SqlStep): Promise<unknown> {
  const result = await db.query(statement.text, params.map(postgresDialect.parameter));
  if (kind === 'get') return result.rows[0];
  if (kind === 'all') return result.rows;
  return result.rowCount ?? 0;
}

function storageFullError(err: unknown): unknown {
  if ((err as { code?: unknown }).code === '53100') {
    return new NarwhalError('storage-full', 'the metadata database is full', { cause: err });
  }
  return err;
}
