import { parseArgs } from 'node:util';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { parseDurationOrZero } from '../tenancy/duration.ts';
import { describeGc, runGc } from '../maintenance/gc.ts';
import { STORE_OPTIONS } from './options.ts';
import { printJsonOr } from './output.ts';
import { Progress } from '../runtime/progress.ts';

export async function gcCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...STORE_OPTIONS, grace: { type: 'string', default: '1h' }, json: { type: 'boolean', default: false } },
    strict: true,
  });
  const graceMs = parseDurationOrZero(values.grace);
  const nw = await openNarwhal({ dataDir: values['data-dir'], storage: values.storage, database: values.database });
  try {
    const progress = new Progress('gc', { quiet: values.json });
    const report = await runGc(nw, {
      graceMs,
      onProgress: (r) =>
        progress.update({
          done: r.paths + r.nars + r.chunks + r.files,
          detail: `deleted: ${r.paths} paths, ${r.nars} NARs, ${r.chunks} chunks, ${r.files} files`,
        }),
    });
    progress.finish();
    printJsonOr(values.json, report, () => `${describeGc(report)}\n`);
  } finally {
    await closeNarwhal(nw);
  }
  return 0;
}
