/**
 * What cross-chunk context inside one NAR could save on the chunks that stay plain (issue 19's
 * mass-rebuild target): for the newest step's NARs of a series (the plain keyframes of reverse
 * deltas), the distinct chunks' frames at level 19 alone, against each compressed with chunks
 * of the same NAR as dictionary, and against whole-NAR compression.
 *
 *   node bench/delta-study/intra-nar.ts [quick|full] [--series rebuild]
 */
import { constants, zstdCompressSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import type { ModeName } from '../modes.ts';
import { studyDataset } from './dataset.ts';
import { loadSeries } from './model.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { series: { type: 'string', default: 'rebuild' }, level: { type: 'string', default: '19' } },
});
const mode = (positionals[0] ?? 'full') as ModeName;
const level = Number(values.level);
const ds = await studyDataset(mode, (line) => process.stderr.write(`${line}\n`));
const size = (data: Uint8Array, dictionary?: Uint8Array, long = false): number => {
  const params: Record<number, number> = { [constants.ZSTD_c_compressionLevel]: level };
  if (long) {
    params[constants.ZSTD_c_enableLongDistanceMatching] = 1;
    params[constants.ZSTD_c_windowLog] = 27;
  }
  return (dictionary ? zstdCompressSync(data, { params, dictionary }) : zstdCompressSync(data, { params })).length;
};
for (const series of ds.series.filter((s) => values.series.split(',').includes(s.id))) {
  const model = await loadSeries(series);
  const lastStep = model.nars[model.nars.length - 1].step;
  const seen = new Set<number>();
  const totals = { plain: 0, before4: 0, group4: 0, group2: 0, wholeNar: 0, raw: 0, chunks: 0 };
  for (const nar of model.nars.filter((n) => n.step === lastStep)) {
    const order: number[] = [];
    for (const id of nar.ids) {
      if (seen.has(id)) continue;
      seen.add(id);
      order.push(id);
    }
    const data = order.map((id) => model.chunks[id]);
    totals.chunks += order.length;
    for (let i = 0; i < data.length; i++) {
      totals.raw += data[i].length;
      totals.plain += size(data[i]);
      // Unbounded chain: the 4 chunks before it as dictionary.
      totals.before4 += i === 0 ? size(data[i]) : size(data[i], Buffer.concat(data.slice(Math.max(0, i - 4), i)));
      // Depth <= 3: groups of 4, the last plain, each other one with the rest of its group after it as dictionary.
      for (const [g, total] of [
        [4, 'group4'],
        [2, 'group2'],
      ] as const) {
        const end = Math.min(data.length, (Math.floor(i / g) + 1) * g);
        totals[total] += i === end - 1 ? size(data[i]) : size(data[i], Buffer.concat(data.slice(i + 1, end)));
      }
    }
    totals.wholeNar += size(Buffer.concat(data), undefined, true);
  }
  const mb = (b: number): string => (b / 1e6).toFixed(2);
  console.log(
    `${series.id}, newest step, ${totals.chunks} distinct chunks, ${mb(totals.raw)} MB, level ${level}: plain per chunk ${mb(totals.plain)} MB; ` +
      `4 chunks before as dictionary (unbounded chains) ${mb(totals.before4)}; groups of 4 (depth <= 3) ${mb(totals.group4)}; ` +
      `groups of 2 (depth 1) ${mb(totals.group2)}; whole NAR (distinct chunks, --long) ${mb(totals.wholeNar)}`,
  );
}
