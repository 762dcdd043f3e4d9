import { parseArgs } from 'node:util';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { parseDurationOrZero } from '../tenancy/duration.ts';
import { describeGc, runGc } from '../maintenance/gc.ts';
import { STORE_OPTIONS } from './options.ts';
import { printJsonOr } from './output.ts';

export async function gcCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...STORE_OPTIONS, grace: { type: 'string', default: '1h' }, json: { type: 'boolean', default: false } },
    strict: true,
  });
  const graceMs = parseDurationOrZero(values.grace);
  const nw = await openNarwhal({ dataDir: values['data-dir'], storage: values.storage, database: values.database });
  try {
    const report = await runGc(nw, { graceMs });
    printJsonOr(values.json, report, () => `${describeGc(report)}\n`);
  } finally {
    await closeNarwhal(nw);
  }
  return 0;
}
