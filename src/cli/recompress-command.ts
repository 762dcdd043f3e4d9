import { parseArgs } from 'node:util';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { DEFAULT_RECOMPRESS_LEVEL, describeRecompression, recompressChunks } from '../maintenance/recompress.ts';
import { parseZstdLevel, STORE_OPTIONS } from './options.ts';
import { printJsonOr } from './output.ts';

/** `narwhal recompress`: one recompression run over every chunk still as ingested (src/maintenance/recompress.ts). */
export async function recompressCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      level: { type: 'string', default: String(DEFAULT_RECOMPRESS_LEVEL) },
      deltas: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const level = parseZstdLevel('--level', values.level);
  const nw = await openNarwhal({ dataDir: values['data-dir'], storage: values.storage, database: values.database });
  try {
    const report = await recompressChunks(nw, { level, deltas: values.deltas });
    printJsonOr(values.json, report, () => `${describeRecompression(report)}\n`);
  } finally {
    await closeNarwhal(nw);
  }
  return 0;
}
