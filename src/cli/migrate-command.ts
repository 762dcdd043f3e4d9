import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { openMetadataStore } from '../context/backends.ts';
import { STORE_OPTIONS } from './options.ts';

/**
 * `narwhal migrate`: brings the metadata database's schema up to date and prints its version.
 * Opening a store migrates it anyway (once, when replicas start together); this runs that step
 * alone, e.g. before rolling out a new version.
 */
export async function migrateCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'data-dir': STORE_OPTIONS['data-dir'],
      database: STORE_OPTIONS.database,
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const meta = await openMetadataStore(values.database ?? `sqlite:${join(values['data-dir'], 'narwhal.sqlite')}`);
  try {
    const version = await meta.schemaVersion();
    process.stdout.write(
      values.json ? `${JSON.stringify({ schemaVersion: version })}\n` : `schema version ${version}\n`,
    );
  } finally {
    await meta.close();
  }
  return 0;
}
