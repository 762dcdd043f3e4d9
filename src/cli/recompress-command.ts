import { parseArgs } from 'node:util';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { DEFAULT_RECOMPRESS_LEVEL, describeRecompression, recompressChunks } from '../maintenance/recompress.ts';
import { parseZstdLevel, STORE_OPTIONS } from './options.ts';
import { printJsonOr } from './output.ts';
import { Progress } from '../runtime/progress.ts';
import { limitCheckWorkers } from '../serving/chunk-check.ts';

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
  // One run, whose main thread bounds it: a second check worker added its heap and kept bases, not speed.
  limitCheckWorkers(1);
  const nw = await openNarwhal({ dataDir: values['data-dir'], storage: values.storage, database: values.database });
  try {
    const progress = new Progress('recompress', { quiet: values.json });
    // The chunks not yet at the level are not counted up front: the bar runs over all chunks.
    const total = progress.enabled ? (await nw.meta.stats()).chunks : undefined;
    const report = await recompressChunks(nw, {
      level,
      deltas: values.deltas,
      onProgress: (chunks) => progress.update({ done: chunks, total, detail: 'chunks read' }),
    });
    progress.finish();
    printJsonOr(values.json, report, () => `${describeRecompression(report)}\n`);
  } finally {
    await closeNarwhal(nw);
  }
  return 0;
}
