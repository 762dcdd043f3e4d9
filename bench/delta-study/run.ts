/**
 * The delta-encoding study (issue 19): for each series of the bench (bench/modes.ts), stored bytes
 * of the distinct chunks' frames under plain zstd and under delta policies, with the reads a
 * client's fetch of the newest and oldest version then needs, and encode speed on one core.
 *
 *   node bench/delta-study/run.ts [quick|full] [--series id,...] [--no-l19]
 *
 * Writes bench/delta-study/results.md and prints it. Single-threaded; `xz -9` of the NARs runs
 * beside it in one child process (cached in the work directory, see xz.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ModeName } from '../modes.ts';
import { studyDataset, studyWorkDir } from './dataset.ts';
import { type Outcome, type Policy, plainSizes, simulate } from './encode.ts';
import { type SeriesModel, loadSeries } from './model.ts';
import { xzSizes } from './xz.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    series: { type: 'string' },
    'no-l19': { type: 'boolean', default: false },
    core: { type: 'boolean', default: false },
    'no-xz': { type: 'boolean', default: false },
  },
});
const mode = (positionals[0] ?? 'quick') as ModeName;
if (mode !== 'quick' && mode !== 'full') throw new Error('mode is quick or full');
const t0 = performance.now();
const log = (line: string): void =>
  void process.stderr.write(`[delta-study ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);

interface Row {
  group: string;
  label: string;
  storedBytes: number;
  deltas?: number;
  chunks?: number;
  readsNewest?: number;
  readsOldest?: number;
  /** MB of NAR per second of one core, for the whole series (repeated chunks included). */
  speed?: number;
}

const fwd = (
  selection: Policy['selection'],
  dictChunks: number,
  level: number,
  extra: Partial<Policy> = {},
): Policy => ({
  direction: 'forward',
  depthLimit: 1,
  selection,
  dictChunks,
  level,
  margin: 0.9,
  ...extra,
});

const describe = (p: Policy): string =>
  `${p.direction} depth ≤${p.depthLimit}, ${p.selection === 'sf' ? '(a) features' : p.selection === 'prev' ? '(b) features + prev. version' : p.selection === 'pos' ? '(c) same place in prev. version' : '(d) best of a-c'}, ${p.dictChunks === 1 ? 'single base' : `${p.dictChunks} chunks as dictionary`}, level ${p.level}, margin ${Math.round(p.margin * 100)}%`;

/** The policies measured, in groups (level 19 ones last, they are slow). */
function policies(): { group: string; policy: Policy }[] {
  const out: { group: string; policy: Policy }[] = [];
  for (const level of [9, 3]) {
    for (const sel of ['sf', 'prev', 'pos', 'best'] as const) {
      for (const k of level === 9 ? [1, 3, 5] : [1, 5])
        out.push({ group: `forward, level ${level}`, policy: fwd(sel, k, level) });
    }
  }
  out.push({ group: 'direction and depth, level 9', policy: fwd('prev', 5, 9, { depthLimit: 3 }) });
  out.push({ group: 'direction and depth, level 9', policy: fwd('prev', 5, 9, { direction: 'reverse' }) });
  out.push({
    group: 'direction and depth, level 9',
    policy: fwd('prev', 5, 9, { direction: 'reverse', depthLimit: 3 }),
  });
  out.push({
    group: 'direction and depth, level 9',
    policy: fwd('pos', 5, 9, { direction: 'reverse', depthLimit: 3 }),
  });
  for (const margin of [1, 0.75, 0.5]) out.push({ group: 'margin, level 9', policy: fwd('prev', 5, 9, { margin }) });
  if (!values['no-l19']) {
    out.push({ group: 'level 19', policy: fwd('prev', 5, 19, { direction: 'reverse', depthLimit: 3 }) });
  }
  // --core: the rows the recommendation rests on, for series too large for the whole matrix.
  const core = new Set(['sf:1:9', 'prev:1:9', 'prev:5:9', 'pos:5:9', 'best:5:9']);
  return values.core
    ? out
        .filter(
          ({ group, policy: p }) =>
            !group.startsWith('forward') || core.has(`${p.selection}:${p.dictChunks}:${p.level}`),
        )
        .filter(({ group }) => group !== 'margin, level 9' && group !== 'level 19')
    : out;
}

const mb = (b: number): string =>
  b >= 100e6 ? (b / 1e6).toFixed(0) : b >= 10e6 ? (b / 1e6).toFixed(1) : (b / 1e6).toFixed(2);

async function studySeries(model: SeriesModel): Promise<Row[]> {
  const rows: Row[] = [];
  const narMBs = model.narBytes / 1e6;
  rows.push({ group: 'reference', label: 'raw NAR bytes', storedBytes: model.narBytes });
  rows.push({ group: 'reference', label: 'distinct chunks, uncompressed', storedBytes: model.distinctBytes });
  const plain = new Map<number, { sizes: Float64Array; seconds: number }>();
  const levels = values['no-l19'] ? [3, 9] : [3, 9, 19];
  for (const level of levels) {
    const p = plainSizes(model, level);
    plain.set(level, p);
    let total = 0;
    for (const s of p.sizes) total += s;
    rows.push({
      group: 'plain',
      label: `plain zstd ${level} per chunk${level === 19 ? " (today's recompressed Narwhal)" : ''}`,
      storedBytes: total,
      chunks: p.sizes.length,
      deltas: 0,
      readsNewest: 0,
      readsOldest: 0,
      speed: narMBs / p.seconds,
    });
    log(`${model.id}: plain level ${level}: ${mb(total)} MB in ${p.seconds.toFixed(1)} s`);
  }
  for (const { group, policy } of policies()) {
    const p = plain.get(policy.level);
    if (p === undefined) continue;
    const o: Outcome = simulate(model, policy, p.sizes);
    const speed = narMBs / (o.seconds + p.seconds + model.sketchSeconds);
    rows.push({
      group,
      label: describe(policy),
      storedBytes: o.storedBytes,
      deltas: o.deltas,
      chunks: o.chunks,
      readsNewest: o.readsNewest,
      readsOldest: o.readsOldest,
      speed,
    });
    log(
      `${model.id}: ${describe(policy)}: ${mb(o.storedBytes)} MB, ${o.deltas}/${o.chunks} deltas, reads ${o.readsNewest.toFixed(2)}/${o.readsOldest.toFixed(2)}, ${o.seconds.toFixed(1)} s`,
    );
  }
  return rows;
}

function table(model: { title: string; narBytes: number; steps: string[] }, rows: Row[], baseline: number): string {
  const lines = [
    `### ${model.title}: ${mb(model.narBytes)} MB of NAR, ${model.steps.length} versions`,
    '',
    '| group | encoding | stored MB | raw/stored | vs plain 19 | deltas | extra reads/chunk, newest | oldest | MB/s/core |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.group} | ${r.label} | ${mb(r.storedBytes)} | ${(model.narBytes / r.storedBytes).toFixed(2)}x | ${baseline > 0 ? (r.storedBytes / baseline).toFixed(3) : '–'} | ${r.deltas === undefined ? '' : `${r.deltas}/${r.chunks}`} | ${r.readsNewest === undefined ? '' : r.readsNewest.toFixed(2)} | ${r.readsOldest === undefined ? '' : r.readsOldest.toFixed(2)} | ${r.speed === undefined ? '' : r.speed.toFixed(1)} |`,
    );
  }
  return lines.join('\n');
}

const ds = await studyDataset(mode, log);
const wanted = values.series?.split(',');
const selected = ds.series
  .filter((s) => wanted === undefined || wanted.includes(s.id))
  .sort((a, b) => a.narBytes - b.narBytes);
// Smallest first: its xz sizes are ready soonest, and partial output is useful early.
const xzAll = values['no-xz']
  ? Promise.resolve(new Map<string, number>())
  : xzSizes(
      selected.flatMap((s) => s.nars),
      studyWorkDir(mode),
      log,
    );
const sections: string[] = [];
const sketchNotes: string[] = [];
const results: { id: string; title: string; narBytes: number; rows: Row[] }[] = [];
for (const series of selected) {
  log(`${series.id}: chunking ${series.nars.length} NARs, ${mb(series.narBytes)} MB`);
  const model = await loadSeries(series);
  log(
    `${series.id}: ${model.chunks.length} distinct chunks, ${mb(model.distinctBytes)} MB; sketches ${(model.distinctBytes / 1e6 / model.sketchSeconds).toFixed(0)} MB/s`,
  );
  const rows = await studySeries(model);
  results.push({ id: series.id, title: series.title, narBytes: series.narBytes, rows });
  sketchNotes.push(
    `${series.id}: sketches at ${(model.distinctBytes / 1e6 / model.sketchSeconds).toFixed(0)} MB/s of distinct chunk bytes on one core.`,
  );
  writeFileSync(
    join(studyWorkDir(mode), `results${wanted === undefined ? '' : `-${wanted.join('+')}`}.json`),
    JSON.stringify(results, null, 1),
  );
}
log('waiting for xz -9');
const xz = await xzAll;
for (const r of results) {
  const series = selected.find((s) => s.id === r.id);
  if (series === undefined) continue;
  r.rows.splice(2, 0, {
    group: 'reference',
    label: 'xz -9 of each whole NAR (static xz cache)',
    storedBytes: series.nars.reduce((sum, n) => sum + (xz.get(n.narHash) ?? NaN), 0),
  });
  const baseline = r.rows.find((x) => x.label.startsWith('plain zstd 19'))?.storedBytes ?? 0;
  sections.push(table(series, r.rows, baseline));
}
sections.push(sketchNotes.join('\n'));

// Totals over the release series, per encoding label present in all of them.
const releases = results.filter((r) => r.id !== 'rebuild');
if (releases.length > 1) {
  const narBytes = releases.reduce((s, r) => s + r.narBytes, 0);
  const rows: Row[] = releases[0].rows.map((row) => ({
    group: row.group,
    label: row.label,
    storedBytes: releases.reduce((s, r) => s + (r.rows.find((x) => x.label === row.label)?.storedBytes ?? NaN), 0),
  }));
  const baseline = rows.find((r) => r.label.startsWith('plain zstd 19'))?.storedBytes ?? 0;
  sections.push(
    table(
      { title: `All release series (${releases.map((r) => r.id).join(', ')})`, narBytes, steps: ['-'] },
      rows,
      baseline,
    ),
  );
}
const md = [
  `# Delta study results (${mode})`,
  '',
  'Stored bytes are the distinct chunks\' frames only (no metadata). "vs plain 19": stored bytes over plain zstd 19 per chunk (today\'s recompressed Narwhal).',
  '"extra reads/chunk": distinct base frames outside the NAR that a read of the whole newest (oldest) version needs, per distinct chunk of that NAR.',
  'MB/s/core: MB of NAR (whole series, repeated chunks included) over the CPU seconds of sketches, plain frames at that level (the margin needs them) and base selection with delta compression.',
  `Run ${new Date().toISOString()}, ${((performance.now() - t0) / 1000).toFixed(0)} s.`,
  '',
  ...sections.flatMap((s) => [s, '']),
].join('\n');
writeFileSync(join(import.meta.dirname, wanted === undefined ? 'results.md' : `results-${wanted.join('+')}.md`), md);
process.stdout.write(md);
