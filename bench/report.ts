/**
 * Renders one run's results as docs/benchmarks.md (tables, the machine, the exact command) with
 * SVG charts beside it in benchmarks/, and the raw figures as benchmarks/results.json. Only the part
 * of benchmarks.md between the markers is rewritten: sections written by hand outside them stay.
 */
import { uiTable } from './measure-ui.ts';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { count, mb, rate, seconds, table, times } from './format.ts';
import type { MetricsScrapeCost } from './measure-metrics.ts';
import type { PerSeries, Results, TimedSystem } from './results.ts';
import { groupedBarChart, type BarGroup } from './svg-chart.ts';
import { DELTA_SECTION, renderDeltaSection } from './report-deltas.ts';
import { renderUpgradeSection, UPGRADE_SECTION } from './report-upgrades.ts';
import { renderTlsSection, TLS_SECTION } from './report-tls.ts';
import { PULL_THROUGH_SECTION, renderPullThroughSection } from './report-pull-through.ts';

export const CHART_DIR = 'benchmarks';
export const REPORT_FILE = 'benchmarks.md';

/** One colour per system in every chart: Narwhal stands out, each baseline keeps its colour. */
function systemColor(id: string): string | undefined {
  if (/castr/.test(id)) return '#8C510A';
  if (/deltas/.test(id)) return '#7B3294';
  if (/narwhal/i.test(id)) return /none/.test(id) ? '#F4A582' : '#D55E00';
  if (/^(raw|static-none)$/.test(id)) return '#999999';
  if (/zstd/.test(id)) return '#E69F00';
  if (/xz/.test(id)) return '#009E73';
  if (/casync-sha256/.test(id)) return '#56B4E9';
  if (/casync/.test(id)) return '#CC79A7';
  if (/nginx/i.test(id)) return '#0072B2';
  return undefined;
}

export const SECTIONS = [
  '## Targets',
  '## Machine and software',
  '## Dataset',
  '## 1. Storage',
  '## 2. Push',
  '## 3. Substitute',
  '## 4. Lookups',
  '## 5. Memory',
  DELTA_SECTION,
  UPGRADE_SECTION,
  PULL_THROUGH_SECTION,
  TLS_SECTION,
  '## Method',
];

/** Where the generated part of the report begins and ends; what lies outside is kept. */
export const BEGIN_MARK = '<!-- bench:begin -->';
export const END_MARK = '<!-- bench:end -->';

/**
 * The report file after a run: `generated` between the markers, in place of what they held, and
 * the rest of `existing` (hand-written sections) unchanged. A file that does not exist yet, or has
 * no markers (a report from before them, generated whole), becomes the generated part alone. A
 * file with one marker, or with them in the wrong order, is refused rather than guessed at.
 */
export function mergeReport(existing: string | undefined, generated: string): string {
  const block = `${BEGIN_MARK}\n${generated.endsWith('\n') ? generated : `${generated}\n`}${END_MARK}\n`;
  if (existing === undefined) return block;
  const begin = existing.indexOf(BEGIN_MARK);
  const end = existing.indexOf(END_MARK);
  if (begin < 0 && end < 0) return block;
  if (
    begin < 0 ||
    end < begin ||
    existing.indexOf(BEGIN_MARK, begin + 1) >= 0 ||
    existing.indexOf(END_MARK, end + 1) >= 0
  ) {
    throw new Error(
      `${REPORT_FILE}: expected one ${BEGIN_MARK} followed by one ${END_MARK}; fix the markers and write the report again from results.json`,
    );
  }
  let after = end + END_MARK.length;
  if (existing[after] === '\n') after++;
  return existing.slice(0, begin) + block + existing.slice(after);
}

export async function writeReport(results: Results, outDir: string): Promise<string> {
  const { markdown, charts } = renderReport(results);
  const file = join(outDir, REPORT_FILE);
  let existing: string | undefined;
  try {
    existing = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // Merged before anything is written, so that bad markers leave the old report and charts as they were.
  const merged = mergeReport(existing, markdown);
  await mkdir(join(outDir, CHART_DIR), { recursive: true });
  for (const [name, svg] of Object.entries(charts)) await writeFile(join(outDir, CHART_DIR, name), svg);
  await writeFile(join(outDir, CHART_DIR, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(file, merged);
  return file;
}

export function renderReport(r: Results): { markdown: string; charts: Record<string, string> } {
  const charts: Record<string, string> = {};
  const md: string[] = [];
  const seriesCols = [...r.series.map((s) => s.id), 'total'];
  const seriesHeads = [...r.series.map((s) => s.title), 'total'];
  const pick = <T>(p: PerSeries<T>, id: string): T | undefined => (id === 'total' ? p.total : p.series[id]);
  const narBytesOf = (id: string): number =>
    id === 'total' ? r.totals.narBytes : (r.series.find((s) => s.id === id)?.narBytes ?? 0);
  const chart = (name: string, svg: string): string => {
    charts[name] = svg;
    return `![${name.replace(/\.svg$/, '')}](${CHART_DIR}/${name})`;
  };

  md.push('# Narwhal benchmarks', '');
  md.push(
    `Generated by \`${r.run.command}\` (mode **${r.run.mode}**) on ${r.run.startedAt.slice(0, 10)}, commit ${r.run.commit}; the run took ${seconds(r.run.seconds)}.`,
    'Every system was measured in this same run, on the same store paths, on the machine below. Performance is',
    'reported as ratios against the baselines of the same run: absolute times depend on the machine and on',
    `whatever else ran on it (load average ${r.run.settings['load average before']} before, ${r.run.settings['load average after']} after).`,
    '',
    `Reproduce: \`npm ci && ${r.run.command}\` as root on Debian 12 (it installs nix-bin, casync, nginx-light, wrk, apache2-utils, curl, zstd, xz-utils and time when missing). \`npm run bench\` is the full benchmark, \`npm run bench -- --quick\` a few-minute version.`,
    '',
  );

  md.push('## Targets', '');
  md.push(
    table(
      ['issue', 'target', 'measured', 'required', 'status'],
      r.targets.map((t) => [
        String(t.issue ?? 3),
        t.name,
        t.measured,
        t.required,
        t.status === 'met' ? '**met**' : t.status === 'missed' ? '**missed**' : 'not measured',
      ]),
      ['r', 'l', 'r', 'r', 'l'],
    ),
  );
  md.push('');

  md.push('## Machine and software', '');
  md.push(
    table(
      ['', ''],
      [...Object.entries(r.run.machine), ...Object.entries(r.run.versions), ...Object.entries(r.run.settings)].map(
        ([k, v]) => [k, v],
      ),
      ['l', 'l'],
    ),
  );
  md.push('');

  md.push('## Dataset', '');
  md.push(
    table(
      ['series', 'releases / generations', 'store paths', 'regular files', 'NAR bytes', 'largest NAR'],
      [
        ...r.series.map((s) => [
          s.title,
          s.steps.join(', '),
          count(s.paths),
          count(s.regularFiles),
          mb(s.narBytes),
          mb(s.largestNarBytes),
        ]),
        [
          'total',
          '',
          count(r.totals.paths),
          count(r.series.reduce((a, s) => a + s.regularFiles, 0)),
          mb(r.totals.narBytes),
          mb(r.totals.largestNar.narBytes),
        ],
      ],
      ['l', 'l', 'r', 'r', 'r', 'r'],
    ),
  );
  md.push(
    '',
    'Release series are consecutive published versions of npm packages (`npm pack`, cached in `.cache/bench/`), each',
    'unpacked and added with `nix-store --add`. The mass rebuild builds the same package contents once per',
    'generation with trivial derivations (sandbox off) that depend on a new `bench-base` each time: only the store',
    'paths embedded in the outputs change (RPATH-like strings and data paths inside ELF binaries, interpreter lines',
    'on a quarter of the scripts, nix-support files, self-references), as when a low-level dependency changes in',
    `nixpkgs. The largest NAR is \`${r.totals.largestNar.storePath}\`.`,
    '',
  );

  // 1. Storage
  md.push('## 1. Storage', '');
  const storageKeys = r.storage.filter((s) => s.id !== 'static-none');
  const narwhalTotal = r.storage.find((s) => s.id === 'narwhal')?.usage.total.apparent ?? 0;
  md.push(
    chart(
      'storage.svg',
      groupedBarChart({
        title: 'Bytes stored per series',
        subtitle: 'MB on disk (sum of file sizes) that each series added to each store; smaller is better',
        keys: storageKeys.map((s) => ({ key: s.id, label: s.label, color: systemColor(s.id) })),
        groups: seriesCols.map((id, i) => ({
          label: seriesHeads[i],
          values: Object.fromEntries(storageKeys.map((s) => [s.id, (pick(s.usage, id)?.apparent ?? NaN) / 1e6])),
        })),
        format: (v) => `${v.toFixed(1)} MB`,
      }),
    ),
    '',
  );
  md.push(
    table(
      ['system', ...seriesHeads.map((h) => `${h}: stored (raw/stored)`), 'total allocated (du)'],
      r.storage.map((s) => [
        s.label,
        ...seriesCols.map((id) => {
          const u = pick(s.usage, id);
          return u ? `${mb(u.apparent)} (${times(narBytesOf(id) / u.apparent)})` : '-';
        }),
        mb(s.usage.total.allocated),
      ]),
    ),
  );
  md.push(
    '',
    'Stored bytes are the sizes of every file the system keeps (NAR files and narinfos; chunk packs or files, indexes and the',
    'metadata database), measured after each series was pushed into one shared store per system, so a series is',
    "charged with what it added. The last column is the file system's allocation (4 KiB blocks) for the whole dataset.",
    'Narwhal is weighed after each series was pushed and then recompressed (chunks ingested at zstd 1 rewritten at',
    'zstd 19 and the packs compacted, what `narwhal serve` does once uploads pause; timed in the push table), the row "as pushed" before that,',
    'from a second Narwhal that received the same pushes with `compression=none` and was not recompressed.',
    '"With deltas" is the same store after the delta pass that followed each recompression (section 6).',
    `Narwhal's own \`stats --json\` after the push, recompression and delta pass: ${Object.entries(r.narwhalStats)
      .map(([k, v]) => `${k} ${count(v)}`)
      .join(', ')}; so of its`,
    `${mb(narwhalTotal)} on disk, ${mb(r.narwhalStats.storedBytes ?? 0)} are chunk frames and ${mb(narwhalTotal - (r.narwhalStats.storedBytes ?? 0))} the metadata database, the`,
    'pack index and the frame headers (SQLite with its write-ahead log, as the running server left them).',
    '',
  );
  md.push('### Alternatives considered', '');
  const shipped = r.chunking.find((c) => c.shipped);
  const chunkTotal = (c: (typeof r.chunking)[number], id: string): number => {
    const f = pick(c.figures, id);
    return f ? f.storedBytes + f.indexBytes : NaN;
  };
  md.push(
    table(
      [
        'chunking',
        'zstd level',
        ...seriesHeads.map((h) => `${h}: stored (raw/stored)`),
        'distinct chunks',
        'vs shipped',
        'pass time',
      ],
      r.chunking.map((c) => [
        c.shipped ? `**${c.label}**` : c.label,
        String(c.zstdLevel),
        ...seriesCols.map((id) => `${mb(chunkTotal(c, id))} (${times(narBytesOf(id) / chunkTotal(c, id))})`),
        count(c.figures.total.chunks),
        shipped ? times(chunkTotal(c, 'total') / chunkTotal(shipped, 'total')) : '-',
        seconds(c.seconds),
      ]),
    ),
  );
  md.push(
    '',
    "Computed in-process with Narwhal's chunker (`src/chunking/chunker.ts`) and chunk codec (`src/storage/chunk-codec.ts`)",
    'on the same NARs: distinct chunks, each one zstd frame, plus 40 bytes per chunk reference (a caibx entry); no',
    'database or file-system overhead, so compare rows with each other rather than with the table above. "Cut at',
    'both ends of files" forces chunk boundaries where regular files\' contents start and end inside the NAR and runs',
    'the content-defined chunker between them. "vs shipped" is total stored bytes relative to the bold row',
    '(smaller is better); the pass time covers chunking, hashing and compressing at every level listed for that row.',
    '',
  );

  // 2. Push
  md.push('## 2. Push', '');
  const xzPush = r.push.find((p) => p.id === 'static-xz');
  md.push(
    chart(
      'push.svg',
      timedChart(
        'nix copy --to, wall time per series',
        `seconds; smaller is better${xzPush ? ` (xz, ${seconds(xzPush.seconds.total)} in total, is left out of the chart)` : ''}`,
        r.push.filter((p) => p !== xzPush),
        seriesCols,
        seriesHeads,
      ),
    ),
    '',
  );
  md.push(timedTable(r.push, seriesCols, seriesHeads, r.totals.narBytes, undefined), '');
  md.push(
    'Each series is pushed with one `nix copy --to` per release or generation, oldest first, as a release flow publishes',
    "them (Nix 2.8, no daemon; Narwhal's delta pass keeps plain the NAR of a package stored last), series after series",
    'into one store; the total is their sum. Nix dumps, compresses and uploads each NAR; the static caches write files locally.',
    '"then narwhal recompress" is the recompression run after each series (`narwhal recompress`, all cores), which',
    '`narwhal serve` does by itself on one core once no upload has come for a minute; pushes do not wait for it.',
    '',
  );
  md.push('### Ingest throughput on the same NAR files', '');
  md.push(
    chart(
      'ingest.svg',
      groupedBarChart({
        title: 'Ingest throughput',
        subtitle: 'MB of NAR per second, same NAR files, one after the other; larger is better',
        keys: r.ingest.map((i) => ({ key: i.id, label: i.label, color: systemColor(i.id) })),
        groups: seriesCols.map((id, k) => ({
          label: seriesHeads[k],
          values: Object.fromEntries(
            r.ingest.map((i) => [i.id, (pick(i.narBytes, id) ?? 0) / 1e6 / (pick(i.seconds, id) ?? NaN)]),
          ),
        })),
        format: (v) => `${v.toFixed(1)} MB/s`,
      }),
    ),
    '',
  );
  const casync = r.ingest.find((i) => i.id === 'casync');
  md.push(
    table(
      ['ingest', ...seriesHeads, 'total MB/s', 'vs casync make'],
      r.ingest.map((i) => [
        i.label,
        ...seriesCols.map(
          (id) =>
            `${seconds(pick(i.seconds, id) ?? NaN)} (${rate(pick(i.narBytes, id) ?? 0, pick(i.seconds, id) ?? 0)})`,
        ),
        rate(i.narBytes.total, i.seconds.total),
        casync ? times(casync.seconds.total / i.seconds.total) : '-',
      ]),
    ),
    '',
  );
  md.push(
    'Narwhal receives each NAR uncompressed by `curl -T` to `PUT nar/<narhash>.nar` (it validates, hashes, chunks and',
    'stores it); casync runs `casync make --store=STORE INDEX.caibx NAR` per NAR into one shared store. Wall time',
    'includes starting curl or casync for each NAR. Each round ingests into fresh stores, system after system, after a',
    '`sync`; each figure is the round with the median total (rounds: see Machine and software). The castr row is the same PUTs into a Narwhal that stores a file per',
    "chunk in casync's layout (`--storage DIR`), the local store before pack files became the default.",
    '',
  );

  // 3. Substitute
  md.push('## 3. Substitute', '');
  md.push(
    chart(
      'substitute.svg',
      timedChart(
        'nix copy --from into a fresh store, wall time per series',
        'seconds; smaller is better',
        r.substitute,
        seriesCols,
        seriesHeads,
      ),
    ),
    '',
  );
  md.push(
    timedTable(
      r.substitute,
      seriesCols,
      seriesHeads,
      r.totals.narBytes,
      r.substitute.find((s) => s.id === 'nginx-zstd'),
    ),
    '',
  );
  md.push(
    'Each release (or generation) is one `nix copy --from URL --to /fresh/root --no-check-sigs PATHS` (a new client',
    'cache per round), release after release and series after series into one fresh store, and a series is the sum of',
    'its releases; every path is checked to be valid there afterwards. The servers take',
    'turns over several rounds (a new store and client cache each time, `sync` before each) and each figure is the',
    'median of its rounds. The fresh stores are deleted after the last round (see measure-substitute.ts for why).',
    `Totals of each round in order: ${r.substitute.map((s) => `${s.label} ${(s.roundTotals ?? []).map((t) => t.toFixed(1)).join(', ')} s`).join('; ')}.`,
    'Narwhal checks each stored frame it serves against the CRC-32 its pack store recorded when writing it, so its first',
    'round, with nothing served before, does the same work as the later ones (src/serving/chunk-damage.ts).',
    '',
  );
  md.push(`### Downloads of the largest NAR (${mb(r.totals.largestNar.narBytes)})`, '');
  md.push(
    table(
      ['server', 'file', 'bytes sent', `time (median)`, 'MB/s sent', 'MB/s of NAR'],
      r.downloads.map((d) => [
        d.system,
        d.what,
        mb(d.bytes),
        seconds(d.seconds),
        rate(d.bytes, d.seconds),
        rate(d.narBytes, d.seconds),
      ]),
    ),
    '',
    '`curl -o /dev/null` over loopback; "MB/s of NAR" counts the NAR bytes the client ends up with per second.',
    '',
  );

  // 4. Lookups
  md.push('## 4. Lookups', '');
  const lookupSystems = [...new Set(r.lookups.map((l) => l.system))];
  md.push(
    chart(
      'lookups.svg',
      groupedBarChart({
        title: 'narinfo lookups',
        subtitle: `requests per second (${r.lookupSettings}); larger is better`,
        keys: lookupSystems.map((s) => ({ key: s, label: s, color: systemColor(s) })),
        groups: [...new Set(r.lookups.map((l) => `${l.method} (${l.tool})`))].map((g) => ({
          label: g,
          values: Object.fromEntries(
            r.lookups.filter((l) => `${l.method} (${l.tool})` === g).map((l) => [l.system, l.requestsPerSecond]),
          ),
        })),
        format: (v) => `${count(v)}/s`,
      }),
    ),
    '',
  );
  md.push(
    table(
      ['server', 'method', 'load generator', 'requests/s', 'requests', 'errors', 'mean latency', 'vs nginx'],
      r.lookups.map((l) => {
        const base = r.lookups.find((b) => b.method === l.method && b.tool === l.tool && b.system.startsWith('nginx'));
        return [
          l.system,
          l.method,
          l.tool,
          count(l.requestsPerSecond),
          count(l.requests),
          count(l.errors),
          l.latencyAvg,
          base ? times(l.requestsPerSecond / base.requestsPerSecond) : '-',
        ];
      }),
    ),
    '',
    '"Narwhal" is the server every other figure uses, with its default single process, after it took the pushes and',
    'served the substitutions. "Narwhal --processes auto" is a server started on the same data dir for this phase, with',
    'a process per core as nginx runs a worker per core; the lookup targets are judged on it.',
    `Every server gets the same load (${r.lookupSettings}) with keep-alive connections. wrk cycles through the narinfos of`,
    `all ${count(r.totals.paths)} store paths in the same order; Debian's wrk 4.1.0 cannot time HEAD (it waits for the body that a`,
    'HEAD answer announces: wg/wrk issue 198), so HEAD is measured with ApacheBench (`ab -k -i`) on one narinfo, and',
    "GET once more with `ab -k` on the same narinfo for comparison. Requests/s and latency are the median round's;",
    '"requests" and "errors" (non-2xx answers, failed requests, socket errors) add up all rounds.',
    '',
  );

  if (r.metricsScrape) md.push(...metricsScrapeSection(r.metricsScrape));
  if (r.ui && r.ui.length > 0) {
    md.push(`### Web UI page times (server time, ${count(r.ui[0].paths)} paths)`, '', uiTable(r.ui), '');
    md.push('Made by `bench/measure-ui.ts`; what it builds and times: benchmarks.md, "Web UI pages".', '');
  }

  // 5. Memory
  md.push('## 5. Memory', '');
  md.push(
    chart(
      'memory.svg',
      groupedBarChart({
        title: 'Peak RSS of the Narwhal server process',
        subtitle: 'MB (VmHWM), one server process per phase; smaller is better',
        keys: [{ key: 'rss', label: 'peak RSS of narwhal serve', color: systemColor('narwhal') }],
        groups: r.memory.map((m): BarGroup => ({ label: m.id, values: { rss: m.peakRssBytes / 1e6 } })),
        format: (v) => `${v.toFixed(0)} MB`,
      }),
    ),
    '',
  );
  md.push(
    table(
      ['phase', 'id', 'NAR bytes', 'wall time', 'peak RSS'],
      r.memory.map((m) => [
        m.label,
        m.id,
        m.narBytes > 0 ? mb(m.narBytes) : '-',
        m.seconds !== undefined ? seconds(m.seconds) : '-',
        mb(m.peakRssBytes),
      ]),
    ),
    '',
    'Peak RSS is VmHWM from /proc/PID/status of the `narwhal serve` process (summed over its processes, were',
    'there several). The idle, largest-NAR and synthetic phases each run in a fresh process (a restarted one for',
    "serving); the push and PUT rows are the processes that received the whole dataset. The synthetic NAR is a directory of the dataset's real files over and over, each",
    'repeat varied in 4 bytes of every 4 KiB so that no chunk repeats.',
    '',
  );

  md.push(...renderDeltaSection(r));
  md.push(...renderUpgradeSection(r));
  md.push(...renderPullThroughSection(r));
  md.push(...renderTlsSection(r));

  md.push('## Method', '');
  md.push(
    '- Every figure comes from one invocation of `bench/run.ts`; systems run one at a time, never concurrently.',
    '- Nix runs as root without a daemon (`build-users-group =`, `sandbox = false`, `substituters =`) with a fresh',
    '  XDG cache per client, because Nix caches narinfo lookups per URL.',
    "- The static caches are `nix copy --to file://DIR?compression=...` (xz with `parallel-compression=true`, Nix 2.8's",
    "  preset 6), served by Debian's nginx with its defaults (worker_processes auto, sendfile), access log off.",
    "- casync is Debian's `casync make` with its defaults (16/64/256 KiB chunks, SHA-512/256 ids, zstd) into one",
    '  store for all NARs, as nix-casync stored them; the `--digest=sha256` row uses the chunk-id hash Narwhal uses.',
    '- Narwhal runs as `narwhal serve --data-dir DIR --listen 127.0.0.1:0`, its shipped settings, started from this',
    '  checkout (one lookup row adds `--processes auto`).',
    ...r.notes.map((n) => `- ${n}`),
    '',
  );
  return { markdown: md.join('\n'), charts };
}

function timedChart(title: string, subtitle: string, systems: TimedSystem[], cols: string[], heads: string[]): string {
  return groupedBarChart({
    title,
    subtitle,
    keys: systems.map((s) => ({ key: s.id, label: s.label, color: systemColor(s.id) })),
    groups: cols.map((id, i) => ({
      label: heads[i],
      values: Object.fromEntries(systems.map((s) => [s.id, id === 'total' ? s.seconds.total : s.seconds.series[id]])),
    })),
    format: (v) => `${v.toFixed(v >= 10 ? 1 : 2)} s`,
  });
}

function timedTable(
  systems: TimedSystem[],
  cols: string[],
  heads: string[],
  narBytes: number,
  baseline: TimedSystem | undefined,
): string {
  return table(
    ['command', ...heads, 'MB/s of NAR', ...(baseline ? [`vs ${baseline.label}`] : [])],
    systems.map((s) => [
      s.label,
      ...cols.map((id) => seconds(id === 'total' ? s.seconds.total : (s.seconds.series[id] ?? NaN))),
      rate(narBytes, s.seconds.total),
      ...(baseline ? [times(s.seconds.total / baseline.seconds.total)] : []),
    ]),
  );
}

/** The cost of a 1/s `/metrics` scrape to the lookups (bench/measure-metrics.ts). */
function metricsScrapeSection(m: MetricsScrapeCost): string[] {
  return [
    '### Metrics scrape cost',
    '',
    table(
      ['', 'without scrapes', 'one scrape a second', 'cost'],
      [
        ['narinfo GET/s', count(m.withoutScrapes), count(m.withScrapes), `${m.wallCostPercent.toFixed(1)}%`],
        [
          'narinfo GET per server CPU-second',
          count(m.perCpuSecondWithout),
          count(m.perCpuSecondWith),
          `${m.costPercent.toFixed(1)}%`,
        ],
      ],
    ),
    '',
    `One scrape (${count(m.scrapeBytes)} bytes) takes ${m.scrapeCpuMs.toFixed(2)} ms of server CPU, so a scrape a second takes at most`,
    `${m.boundPercent.toFixed(2)}% of a core from the lookups (target: at most 2%). ${m.settings}.`,
    '',
  ];
}
