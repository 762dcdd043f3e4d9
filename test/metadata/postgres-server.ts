/**
 * A PostgreSQL server for tests: NARWHAL_TEST_DATABASE_URL (scripts/test.sh starts one for the
 * whole run), or else one started here with scripts/postgres.sh and stopped when the process
 * exits. Never skips: without a server the tests fail, saying why.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const SCRIPT = join(import.meta.dirname, '../../scripts/postgres.sh');

let serverUrl: string | undefined;

export function testServerUrl(): string {
  if (serverUrl) return serverUrl;
  const fromEnv = process.env.NARWHAL_TEST_DATABASE_URL;
  if (fromEnv) return (serverUrl = fromEnv);
  const dir = mkdtempSync(join(tmpdir(), 'narwhal-test-pg-'));
  let output: string;
  try {
    output = execFileSync('bash', [SCRIPT, 'start', dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
    });
  } catch (err) {
    throw new Error(
      `NARWHAL_TEST_DATABASE_URL is unset and scripts/postgres.sh could not start PostgreSQL: ${(err as { stderr?: string }).stderr ?? err}`,
    );
  }
  // At exit, not in an after() hook: the first caller may be inside a test, whose hooks run when it ends.
  process.once('exit', () => execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore', timeout: 60_000 }));
  const match = /^NARWHAL_TEST_DATABASE_URL=(.+)$/m.exec(output);
  if (!match) throw new Error(`scripts/postgres.sh printed no NARWHAL_TEST_DATABASE_URL: ${output}`);
  return (serverUrl = match[1]);
}

/** A new empty database on the test server: its URL, and a function that drops it. */
export async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const base = new URL(testServerUrl());
  const name = `narwhal_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base.href });
  await admin.connect().catch((err: Error) => {
    throw new Error(`cannot connect to the test PostgreSQL server at ${base.host}: ${err.message}`);
  });
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base.href);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      const client = new pg.Client({ connectionString: base.href });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
