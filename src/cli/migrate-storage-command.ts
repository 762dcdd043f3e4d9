import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultStorage, openChunkStore } from '../context/backends.ts';
import { migrateStorage, type MigrationProgress } from '../maintenance/migrate-storage.ts';
import { NarwhalError } from '../errors.ts';
import { parseStorageUrl, formatStorageLocation, type StorageLocation } from '../storage/storage-url.ts';
import { STORE_OPTIONS } from './options.ts';
import { Progress } from '../runtime/progress.ts';

/** Seconds between progress lines. */
const PROGRESS_EVERY_MS = 2000;

/**
 * `narwhal migrate-storage --from URL --to URL [--data-dir DIR]`: copies the chunks --from has
 * and --to lacks. Either side left out is the data dir's own chunk store (defaultStorage).
 * Progress goes to stderr, the summary to stdout; exit status 1 when a chunk was corrupt.
 */
export async function migrateStorageCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      'data-dir': STORE_OPTIONS['data-dir'],
    },
    strict: true,
  });
  const local = defaultStorage(values['data-dir']);
  if (values.from === undefined && values.to === undefined)
    throw new NarwhalError('bad-request', 'migrate-storage needs --from URL or --to URL (or both)');
  const fromUrl = values.from ?? local;
  const toUrl = values.to ?? local;
  const fromShown = shown(parseStorageUrl(fromUrl));
  const toShown = shown(parseStorageUrl(toUrl));
  if (fromShown === toShown)
    throw new NarwhalError('bad-request', `--from and --to are the same storage: ${fromShown}`);

  const from = await openChunkStore(fromUrl);
  try {
    const to = await openChunkStore(toUrl);
    try {
      process.stderr.write(`narwhal: copying chunks from ${fromShown} to ${toShown}\n`);
      const started = Date.now();
      let lastLine = started;
      // On a terminal a line redrawn in place (the chunks to come are not counted); otherwise a line now and then.
      const bar = new Progress('migrate-storage');
      const result = await migrateStorage(from, to, {
        onProgress: (p) => {
          if (bar.enabled) return bar.update({ done: p.seen, detail: `chunks seen; ${describe(p)}` });
          if (Date.now() - lastLine < PROGRESS_EVERY_MS) return;
          lastLine = Date.now();
          process.stderr.write(`narwhal: ${describe(p)} (${((lastLine - started) / 1000).toFixed(0)} s)\n`);
        },
      });
      bar.finish();
      process.stdout.write(`${describe(result)}\n`);
      for (const id of result.corrupt) process.stdout.write(`corrupt chunk not copied: ${id}\n`);
      return result.corrupt.length > 0 ? 1 : 0;
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
}

/** Canonical, so that two spellings of one place compare equal. */
function shown(location: StorageLocation): string {
  return location.kind === 's3'
    ? formatStorageLocation(location)
    : formatStorageLocation({ ...location, path: resolve(location.path) });
}

function describe(p: Readonly<MigrationProgress>): string {
  const parts = [
    `${p.seen} chunks seen`,
    `${p.copied} copied (${(p.copiedBytes / 1e6).toFixed(1)} MB)`,
    `${p.present} already there`,
  ];
  if (p.vanished > 0) parts.push(`${p.vanished} vanished`);
  if (p.corrupt.length > 0) parts.push(`${p.corrupt.length} corrupt`);
  return parts.join(', ');
}
