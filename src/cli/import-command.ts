import { parseArgs } from 'node:util';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal, DEFAULT_CACHE } from '../tenancy/open-narwhal.ts';
import { importCache, type ImportProgress } from '../ingest/import-cache.ts';
import { NarwhalError } from '../errors.ts';
import { STORE_OPTIONS } from './options.ts';
import { Progress } from '../runtime/progress.ts';

/** Milliseconds between progress lines, and paths between them on a fast run. */
const PROGRESS_EVERY_MS = 2000;
const PROGRESS_EVERY_PATHS = 1000;

/**
 * `narwhal import DIR [--cache NAME]`: imports a static binary cache directory (`nix copy --to
 * file://DIR`) into the cache, checking every NAR. Progress goes to stderr, the summary and the
 * failures to stdout; exit status 1 when a path or file failed.
 */
export async function importCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...STORE_OPTIONS, cache: { type: 'string', default: DEFAULT_CACHE } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1)
    throw new NarwhalError('bad-request', 'import needs exactly one directory: narwhal import DIR [--cache NAME]');
  const dir = positionals[0];
  const nw = await openNarwhal({ dataDir: values['data-dir'], storage: values.storage, database: values.database });
  try {
    const cache = await nw.meta.getCache(values.cache);
    if (!cache) throw new NarwhalError('not-found', `no cache named ${values.cache}`);
    process.stderr.write(`narwhal: importing ${dir} into cache ${cache.name}\n`);
    const started = Date.now();
    let lastLine = started;
    // On a terminal a bar; otherwise a line now and then, for logs.
    const bar = new Progress('import');
    const result = await importCache(nw, cache, dir, {
      onProgress: (p) => {
        if (bar.enabled) return bar.update({ done: p.done, total: p.total, detail: `${p.failed} failed` });
        if (p.done % PROGRESS_EVERY_PATHS !== 0 && Date.now() - lastLine < PROGRESS_EVERY_MS) return;
        lastLine = Date.now();
        process.stderr.write(`narwhal: ${describe(p)} (${((lastLine - started) / 1000).toFixed(0)} s)\n`);
      },
    });
    bar.finish();
    process.stdout.write(`${describe(result)}; ${result.files} logs and listings\n`);
    for (const failure of result.failures) process.stdout.write(`failed: ${failure.what}: ${failure.reason}\n`);
    return result.failed > 0 ? 1 : 0;
  } finally {
    await closeNarwhal(nw);
  }
}

function describe(p: Readonly<ImportProgress>): string {
  return (
    `${p.done}/${p.total} paths: ${p.imported} imported, ${p.present} already present, ${p.failed} failed` +
    ` (${(p.bytesRead / 1e6).toFixed(1)} MB read, ${(p.narBytes / 1e6).toFixed(1)} MB of NARs)`
  );
}
