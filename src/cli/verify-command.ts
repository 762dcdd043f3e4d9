import { parseArgs } from 'node:util';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { damageRemains, verifyStore, type VerifyReport } from '../maintenance/verify.ts';
import { STORE_OPTIONS } from './options.ts';
import { printJsonOr } from './output.ts';
import { Progress } from '../runtime/progress.ts';

/** Exit status 1 when damage remains (missing or corrupt chunks, damaged NARs). */
export async function verifyCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      repair: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const nw = await openNarwhal({ dataDir: values['data-dir'], storage: values.storage, database: values.database });
  let report: VerifyReport;
  try {
    const totals = { chunks: 0, nars: 0 };
    const bars = {
      chunks: new Progress('verify chunks', { quiet: values.json }),
      nars: new Progress('verify NARs', { quiet: values.json }),
    };
    if (bars.chunks.enabled) Object.assign(totals, await nw.meta.stats());
    let pass: 'chunks' | 'nars' = 'chunks';
    report = await verifyStore(nw, {
      repair: values.repair,
      onProgress: (now, checked) => {
        if (now !== pass) bars[pass].finish();
        pass = now;
        bars[now].update({ done: checked, total: totals[now] });
      },
    });
    bars[pass].finish();
  } finally {
    await closeNarwhal(nw);
  }
  printJsonOr(values.json, report, () => describe(report, values.repair));
  return damageRemains(report) ? 1 : 0;
}

function describe(r: VerifyReport, repair: boolean): string {
  return (
    `chunks  ${r.chunks.ok} ok, ${r.chunks.missing} missing, ${r.chunks.corrupt} corrupt, ${r.chunks.baseDamaged} with a damaged base\n` +
    `nars    ${r.nars.ok} ok, ${r.nars.damaged} damaged\n` +
    `flagged ${r.marked} NARs damaged, found ${r.unmarked} whole again\n` +
    `orphans ${r.orphanFiles} chunk files without a record (gc removes them)\n` +
    (repair ? `repair  deleted ${r.repaired} corrupt chunk files\n` : '') +
    (r.nars.damaged > 0
      ? 'Damaged NARs answer 404 until they are uploaded again (e.g. nix copy of their paths).\n'
      : '')
  );
}
