/**
 * What differs between the SQL of SQLite and PostgreSQL, one name per difference. The statement
 * catalogue (metadata-statements.ts) is written once with `?` placeholders and these fragments;
 * everything else (upserts, RETURNING, UPDATE ... FROM, recursive CTEs) is the same in both.
 */

/** SQL as sent to the database; `perElement`: run once per element of its list parameters (see SqlDialect.anyOf). */
export interface SqlStatement {
  readonly text: string;
  readonly perElement: boolean;
}

/** A column of a list parameter: its name and its PostgreSQL type. */
export type ListColumn = readonly [name: string, type: 'bytea' | 'bigint' | 'text' | 'int'];

export interface SqlDialect {
  readonly name: 'sqlite' | 'postgres';
  /** A statement over a `?` text; PostgreSQL numbers the placeholders `$1..$n`. */
  statement(text: string): SqlStatement;
  /**
   * A statement with list parameters (arrays): PostgreSQL sends each list as one array and runs
   * the statement once; SQLite has no arrays and runs it once per element (its prepared
   * statement is cached, so a loop costs no parsing), summing changes and joining rows.
   */
  listStatement(text: string): SqlStatement;
  /** `column <anyOf>`: the column equals an element of a list parameter. */
  anyOf(type: ListColumn[1]): string;
  /** A FROM item `c` with the columns given, one row per element of their list parameters. */
  listRows(columns: readonly ListColumn[]): string;
  /**
   * Whether the elements of one list statement must be distinct: a single PostgreSQL INSERT ...
   * ON CONFLICT may not touch a row twice, while SQLite's one statement per element may.
   */
  readonly distinctLists: boolean;
  /** Text compared byte by byte, as SQLite's default BINARY collation does; PostgreSQL's default follows the locale. */
  readonly bytewise: string;
  /** Whether a WITH clause may hold an INSERT/UPDATE (PostgreSQL): one statement then does what SQLite does in two. */
  readonly writableCtes: boolean;
  /**
   * A parameter as the driver takes it: SQLite stores booleans as 0/1; pg takes BYTEA values
   * as Buffers (in arrays too), so other Uint8Arrays become Buffers over the same bytes.
   */
  parameter(value: unknown): unknown;
}

export const sqliteDialect: SqlDialect = {
  name: 'sqlite',
  statement: (text) => ({ text, perElement: false }),
  listStatement: (text) => ({ text, perElement: true }),
  anyOf: () => '= ?',
  listRows: (columns) => `(SELECT ${columns.map(([name]) => `? AS ${name}`).join(', ')}) AS c`,
  distinctLists: false,
  bytewise: '',
  writableCtes: false,
  parameter: (value) => (typeof value === 'boolean' ? (value ? 1 : 0) : value),
};

export const postgresDialect: SqlDialect = {
  name: 'postgres',
  statement: (text) => ({ text: numberPlaceholders(text), perElement: false }),
  listStatement: (text) => ({ text: numberPlaceholders(text), perElement: false }),
  anyOf: (type) => `= ANY(?::${type}[])`,
  listRows: (columns) =>
    `unnest(${columns.map(([, type]) => `?::${type}[]`).join(', ')}) AS c(${columns.map(([name]) => name).join(', ')})`,
  distinctLists: true,
  bytewise: ' COLLATE "C"',
  writableCtes: true,
  parameter: (value) => (Array.isArray(value) ? value.map(byteaValue) : byteaValue(value)),
};

function numberPlaceholders(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

function byteaValue(value: unknown): unknown {
  return value instanceof Uint8Array && !Buffer.isBuffer(value)
    ? Buffer.from(value.buffer, value.byteOffset, value.byteLength)
    : value;
}
