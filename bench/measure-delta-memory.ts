/**
 * Issue 19's memory and serving rows on their own (docs/benchmarks.md, "Delta memory and serving
 * speed"), a few minutes on the quick dataset rather than the whole `npm run bench --quick`:
 *
 *   node bench/measure-delta-memory.ts [--baseline DIR] [--rounds N] [--work DIR] [--keep]
 *                                      [--series ID,ID...] [--at-once-too] [--full]
 *
 * Series are pushed a release at a time, oldest first; --at-once-too adds this checkout with each
 * series pushed in one `nix copy`, as the bench did before (Nix's order, not the versions').
 * --series takes the full dataset's series of those ids instead (for example `swc,typescript`),
 * pushed in that order into the same server, as `npm run bench` does with all of them.
 * --full: the full dataset (`npm run bench`'s four series, 1.5 GB of NAR) instead of the quick one.
 *
 * Per Narwhal measured (this checkout, and with --baseline another checkout of Narwhal with its
 * node_modules, in the same run): every series pushed with `nix copy` into one `narwhal serve`,
 * each followed by `narwhal recompress` and the delta pass `recompress --deltas` under GNU time
 * (CPU seconds, peak RSS), as bench/measure-push.ts does. Then `nix copy --from` of each release
 * from every server and from nginx serving the static zstd cache, the systems taking turns per
 * round (bench/measure-substitute.ts), and curl of the largest NAR; the server's peak RSS is its
 * lifetime peak, as `npm run bench` reports it ("peak RSS of the server serving deltas"). Each
 * Narwhal first runs once on a throwaway data dir (warmUp).
 */
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildDataset, type Dataset } from './dataset.ts';
import { diskUsage } from './disk-usage.ts';
import { loadAverage } from './environment.ts';
import { nixEnv, run } from './exec.ts';
import { mb, table, times } from './format.ts';
import { measureSubstitute, type Substituter } from './measure-substitute.ts';
import { MODES, type Mode } from './modes.ts';
import { REPO } from './sources.ts';
import { deltaPass, pushClientConfig, recompress, startNarwhal, type NarwhalServer } from './systems/narwhal.ts';
import { startNginx } from './systems/nginx.ts';
import { fileStoreUrl, nixCopySeriesTo, nixCopyTo, STATIC_CACHES } from './systems/static-cache.ts';

interface Variant {
  id: string;
  bin: string;
  /** Each series pushed in one `nix copy` (its own order), not a release at a time. */
  atOnce?: boolean;
  server?: NarwhalServer;
  /** Per series: the delta pass's CPU seconds, peak RSS, deltas made. */
  passes: {
    series: string;
    cpuSeconds: number;
    peakRssBytes: number;
    narBytes: number;
    deltas: number;
    /** What the data dir grew by with the series, recompressed, and then after the delta pass. */
    storedPlain: number;
    storedDeltas: number;
  }[];
  pushPeakRssBytes?: number;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      baseline: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      work: { type: 'string' },
      keep: { type: 'boolean', default: false },
      series: { type: 'string' },
      'at-once-too': { type: 'boolean', default: false },
      full: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const rounds = Number(values.rounds);
  const work = resolve(values.work ?? join(tmpdir(), 'narwhal-delta-memory'));
  const t0 = performance.now();
  const log = (line: string): void => {
    process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  };
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const loadBefore = await loadAverage();
  const ds = await buildDataset(
    datasetMode(values.series, values.full),
    work,
    nixEnv(join(work, 'clients', 'dataset')),
    log,
  );
  log(`dataset: ${ds.totalPaths} store paths, ${(ds.totalNarBytes / 1e6).toFixed(1)} MB of NAR`);

  // This checkout's bin itself: node_modules/.bin/narwhal would be wherever node_modules points.
  const variants: Variant[] = [{ id: 'this checkout', bin: join(REPO, 'bin/narwhal.js'), passes: [] }];
  if (values['at-once-too'])
    variants.unshift({ id: 'pushed at once', bin: join(REPO, 'bin/narwhal.js'), atOnce: true, passes: [] });
  if (values.baseline !== undefined)
    variants.unshift({ id: 'baseline', bin: join(resolve(values.baseline), 'bin/narwhal.js'), passes: [] });

  const staticRoot = join(work, 'static');
  const zstd = STATIC_CACHES.find((kind) => kind.id === 'zstd')!;
  const xz = STATIC_CACHES.find((kind) => kind.id === 'xz')!;
  const staticEnv = nixEnv(join(work, 'clients', 'push-static'));
  const xzBytes = new Map<string, number>();
  await mkdir(join(work, 'static-xz'));
  for (const s of ds.series) {
    await nixCopyTo(fileStoreUrl(join(staticRoot, 'zstd'), zstd), s.paths, staticEnv, s.narBytes);
    const before = (await diskUsage(join(work, 'static-xz'))).apparent;
    await nixCopyTo(fileStoreUrl(join(work, 'static-xz'), xz), s.paths, staticEnv, s.narBytes);
    xzBytes.set(s.id, (await diskUsage(join(work, 'static-xz'))).apparent - before);
  }

  try {
    for (const [i, v] of variants.entries()) {
      log(`${v.id}: warm up`);
      await warmUp(ds, v, join(work, `warm-up-${i}`));
      log(`${v.id}: push, recompress, delta pass`);
      v.server = await startNarwhal(join(work, `narwhal-${i}`), [], v.bin);
      await pushAndPass(ds, v, work, log);
      v.pushPeakRssBytes = await v.server.peakRss();
    }
    const nginx = await startNginx(staticRoot, join(work, 'nginx'));
    let substitute: Awaited<ReturnType<typeof measureSubstitute>>;
    try {
      const subs: Substituter[] = [
        ...variants.map((v) => ({ id: v.id, label: `Narwhal (${v.id})`, url: v.server!.cacheUrl })),
        { id: 'nginx', label: 'nginx, static zstd', url: `${nginx.url}/zstd` },
      ];
      substitute = await measureSubstitute(ds, subs, work, rounds, log);
      for (const v of variants) await downloadLargest(ds, v.server!.cacheUrl);
    } finally {
      await nginx.stop();
    }
    const servePeaks = await Promise.all(variants.map((v) => v.server!.peakRss()));
    report(ds, variants, servePeaks, substitute, xzBytes, rounds, loadBefore, await loadAverage());
  } finally {
    for (const v of variants) await v.server?.stop();
    if (!values.keep) await rm(work, { recursive: true, force: true });
  }
}

/** The quick dataset, or the full dataset's series named in `ids` (comma-separated), in that order. */
function datasetMode(ids: string | undefined, full: boolean): Mode {
  if (ids === undefined) return full ? MODES.full : MODES.quick;
  const series = ids.split(',').map((id) => {
    const spec = MODES.full.series.find((s) => s.id === id);
    if (spec === undefined) throw new Error(`--series: no series ${id} in the full dataset`);
    return spec;
  });
  return { ...MODES.full, series };
}

/**
 * Runs each part of Narwhal once (serve, a push, a download, a delta pass) on a throwaway data
 * dir, as a deployed Narwhal has run before: the first process of a checkout strips the types of
 * its TypeScript in every thread, about 20 MB each, and later ones find them in Node's compile
 * cache (bin/narwhal.js).
 */
async function warmUp(ds: Dataset, v: Variant, dir: string): Promise<void> {
  const server = await startNarwhal(join(dir, 'data'), [], v.bin);
  try {
    const home = join(dir, 'client');
    const env = nixEnv(home, await pushClientConfig(server, home));
    const nar = ds.series[0].nars[0];
    await nixCopyTo(`${server.cacheUrl}?compression=zstd`, [nar.storePath], env, nar.narSize);
    await downloadLargest({ ...ds, largest: nar }, server.cacheUrl);
  } finally {
    await server.stop();
  }
  await recompress(join(dir, 'data'), v.bin);
  await deltaPass(join(dir, 'data'), join(dir, 'time'), v.bin);
  await rm(dir, { recursive: true, force: true });
}

async function pushAndPass(ds: Dataset, v: Variant, work: string, log: (line: string) => void): Promise<void> {
  const server = v.server!;
  const home = join(work, 'clients', `push-${server.pid}`);
  const env = nixEnv(home, await pushClientConfig(server, home));
  let before = (await diskUsage(server.dataDir)).apparent;
  for (const s of ds.series) {
    const url = `${server.cacheUrl}?compression=zstd`;
    if (v.atOnce) await nixCopyTo(url, s.paths, env, s.narBytes);
    else await nixCopySeriesTo(url, s, env);
    await recompress(server.dataDir, v.bin);
    const plain = (await diskUsage(server.dataDir)).apparent;
    const pass = await deltaPass(server.dataDir, join(work, 'delta-pass.time'), v.bin);
    const after = (await diskUsage(server.dataDir)).apparent;
    v.passes.push({
      series: s.id,
      cpuSeconds: pass.cpuSeconds,
      peakRssBytes: pass.peakRssBytes,
      narBytes: s.narBytes,
      deltas: pass.report.deltas,
      storedPlain: plain - before,
      storedDeltas: after - before,
    });
    before = after;
    log(
      `${v.id}: delta pass after ${s.id}: ${pass.report.deltas} deltas, ${pass.cpuSeconds.toFixed(1)} CPU s, ` +
        `peak RSS ${mb(pass.peakRssBytes)}`,
    );
  }
}

/** curl of the largest NAR by its narinfo URL, then as .nar, as the bench's memory figure does. */
async function downloadLargest(ds: Dataset, cacheUrl: string): Promise<void> {
  const nar = ds.largest;
  const narinfo = await (await fetch(`${cacheUrl}/${nar.hashPart}.narinfo`)).text();
  const narUrl = /^URL: (\S+)$/m.exec(narinfo)?.[1];
  if (narUrl === undefined) throw new Error(`no narinfo for ${nar.storePath}`);
  for (const path of [narUrl, `nar/${nar.narHash}.nar`]) {
    const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${cacheUrl}/${path}`]);
    if (r.stdout.trim() !== '200') throw new Error(`GET ${cacheUrl}/${path} answered ${r.stdout.trim()}`);
  }
}

function report(
  ds: Dataset,
  variants: Variant[],
  servePeaks: number[],
  substitute: Awaited<ReturnType<typeof measureSubstitute>>,
  xzBytes: Map<string, number>,
  rounds: number,
  loadBefore: string,
  loadAfter: string,
): void {
  const lines: string[] = [];
  lines.push(
    table(
      [
        'Narwhal',
        'delta pass peak RSS (max)',
        'MB of NAR per CPU s',
        'deltas',
        'server peak after push',
        'server peak after serving',
      ],
      variants.map((v, i) => {
        const cpu = v.passes.reduce((sum, p) => sum + p.cpuSeconds, 0);
        const nar = v.passes.reduce((sum, p) => sum + p.narBytes, 0);
        return [
          v.id,
          `${mb(Math.max(...v.passes.map((p) => p.peakRssBytes)))} (${v.passes.map((p) => mb(p.peakRssBytes)).join(', ')})`,
          (nar / 1e6 / cpu).toFixed(1),
          String(v.passes.reduce((sum, p) => sum + p.deltas, 0)),
          mb(v.pushPeakRssBytes ?? 0),
          mb(servePeaks[i]),
        ];
      }),
    ),
  );
  lines.push(
    '',
    table(
      [
        'Narwhal',
        'series',
        'without deltas',
        'with deltas',
        'vs without',
        'static xz',
        'with deltas vs xz',
        'delta pass MB of NAR per CPU s',
      ],
      variants.flatMap((v) =>
        v.passes.map((p) => [
          v.id,
          ds.series.find((s) => s.id === p.series)!.title,
          mb(p.storedPlain),
          mb(p.storedDeltas),
          times(p.storedDeltas / p.storedPlain),
          mb(xzBytes.get(p.series)!),
          times(p.storedDeltas / xzBytes.get(p.series)!),
          (p.narBytes / 1e6 / p.cpuSeconds).toFixed(1),
        ]),
      ),
    ),
  );
  const nginx = substitute.find((s) => s.id === 'nginx')!;
  lines.push(
    '',
    table(
      [
        'series',
        'release',
        ...variants.map((v) => `Narwhal (${v.id})`),
        'nginx zstd',
        ...variants.map((v) => `${v.id} vs nginx`),
      ],
      ds.series.flatMap((s) =>
        s.steps.map((step, i) => {
          const theirs = nginx.steps![s.id][i];
          const mine = variants.map((v) => substitute.find((x) => x.id === v.id)!.steps![s.id][i]);
          return [
            s.title,
            step,
            ...mine.map((t) => `${t.toFixed(3)} s`),
            `${theirs.toFixed(3)} s`,
            ...mine.map((t) => times(t / theirs)),
          ];
        }),
      ),
    ),
    '',
    `nix copy --from: median of ${rounds} rounds, systems taking turns. Load average before ${loadBefore}, after ${loadAfter}.`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
