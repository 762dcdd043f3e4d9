import type { SqlStatement } from './sql-dialect.ts';
import type { Row } from './metadata-rows.ts';

/** One statement for the backend to run: the step's result is sent back into the work. */
export interface SqlStep {
  readonly kind: 'get' | 'all' | 'run';
  readonly statement: SqlStatement;
  readonly params: readonly unknown[];
}

/**
 * A metadata method's body, written once for both backends as a generator that yields each
 * statement it wants run (`yield* get(...)`) and receives the result. The backend drives it:
 * PostgreSQL awaits each query; SQLite answers each step synchronously. Being a plain (not async)
 * generator, the body cannot await anything, so under SQLite a whole work runs between its
 * BEGIN and COMMIT within one turn of the event loop: no other method's statements can slip into
 * the transaction on the shared connection (node:sqlite has no async transactions).
 */
export type SqlWork<T> = Generator<SqlStep, T, unknown>;

/** The first row, or undefined. With a list statement under SQLite: the first row any element finds. */
export function* get(
  statement: SqlStatement,
  params: readonly unknown[] = [],
): Generator<SqlStep, Row | undefined, unknown> {
  return (yield { kind: 'get', statement, params }) as Row | undefined;
}

export function* all(statement: SqlStatement, params: readonly unknown[] = []): Generator<SqlStep, Row[], unknown> {
  return (yield { kind: 'all', statement, params }) as Row[];
}

/** How many rows the statement changed. */
export function* run(statement: SqlStatement, params: readonly unknown[] = []): Generator<SqlStep, number, unknown> {
  return (yield { kind: 'run', statement, params }) as number;
}

/**
 * Runs statements and works for SqlMetadata. `get`, `all`: one read, outside any transaction
 * (the hot path: no work to drive). `atomic`: one statement's worth of atomicity (SQLite: a
 * transaction; PostgreSQL: no WRITE_LOCK, and the work must run a single statement). `write`:
 * one transaction serialized with every other writer.
 */
export interface SqlRunner {
  get(statement: SqlStatement, params?: readonly unknown[]): Promise<Row | undefined>;
  all(statement: SqlStatement, params?: readonly unknown[]): Promise<Row[]>;
  atomic<T>(work: SqlWork<T>): Promise<T>;
  write<T>(work: SqlWork<T>): Promise<T>;
}
