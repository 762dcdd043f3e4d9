import { parseArgs } from 'node:util';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { STORE_OPTIONS } from './options.ts';

export async function statsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...STORE_OPTIONS, json: { type: 'boolean', default: false } },
    strict: true,
  });
  const nw = await openNarwhal({ dataDir: values['data-dir'], storage: values.storage, database: values.database });
  try {
    const stats = await nw.meta.stats();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(stats)}\n`);
    } else {
      const ratio = stats.storedBytes > 0 ? (stats.narBytes / stats.storedBytes).toFixed(2) : '-';
      process.stdout.write(
        `paths        ${stats.paths}\n` +
          `nars         ${stats.nars}\n` +
          `nar bytes    ${stats.narBytes}\n` +
          `chunks       ${stats.chunks}\n` +
          `chunk bytes  ${stats.chunkBytes}\n` +
          `stored bytes ${stats.storedBytes}\n` +
          `ratio        ${ratio} (NAR bytes / stored bytes)\n`,
      );
    }
  } finally {
    await closeNarwhal(nw);
  }
  return 0;
}
