/**
 * The benchmark of issue 3: storage, push, substitution, lookups and memory of Narwhal against a
 * static file cache served by nginx, casync, and raw NARs, all in one run on the same store paths.
 *
 *   npm run bench                  full benchmark, writes docs/benchmarks.md and docs/benchmarks/
 *   npm run bench -- --quick       the same in a few minutes, on less data
 *   node bench/run.ts --tiny --out DIR    network-free smoke run on tiny local data (for the test)
 *
 * Options: --out DIR (report directory, default docs/), --work DIR (scratch space, default a
 * directory under the system's temp dir, emptied first and removed after unless --keep),
 * --render RESULTS.json (write the report again from a run's results.json, measuring nothing).
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_ZSTD_LEVEL } from '../src/storage/chunk-codec.ts';
import { buildDataset } from './dataset.ts';
import { commitInfo, ensureTools, loadAverage, machineInfo, toolVersions } from './environment.ts';
import { nixEnv } from './exec.ts';
import { measureChunking } from './measure-chunking.ts';
import { measureIngest } from './measure-ingest.ts';
import { measureLookups } from './measure-lookups.ts';
import { judgeMetricsTarget, measureMetricsScrapeCost } from './measure-metrics.ts';
import { measureMemory } from './measure-memory.ts';
import { measurePush } from './measure-push.ts';
import { measureDownloads, measureSubstitute } from './measure-substitute.ts';
import { MODES, type ModeName } from './modes.ts';
import { writeReport } from './report.ts';
import type { MemoryFigure, Results } from './results.ts';
import { REPO } from './sources.ts';
import { startNarwhal } from './systems/narwhal.ts';
import { startNginx } from './systems/nginx.ts';
import { judgeTargets } from './targets.ts';
import { judgeDeltaTargets } from './delta-targets.ts';
import { judgeUpgradeTargets } from './upgrade-targets.ts';
import { measureUpgrades } from './measure-upgrades.ts';
import { judgeTlsTargets, measureTls } from './measure-tls.ts';
import { measurePullThrough } from './measure-pull-through.ts';
import { judgeUiTargets, measureUi } from './measure-ui.ts';
import { table } from './format.ts';

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      tiny: { type: 'boolean', default: false },
      out: { type: 'string' },
      work: { type: 'string' },
      keep: { type: 'boolean', default: false },
      render: { type: 'string' },
    },
    strict: true,
  });
  if (values.render !== undefined) {
    const results = JSON.parse(await readFile(values.render, 'utf8')) as Results;
    const file = await writeReport(results, resolve(values.out ?? join(REPO, 'docs')));
    process.stderr.write(`report written to ${file}\n`);
    return 0;
  }
  if (values.quick && values.tiny) throw new Error('--quick and --tiny exclude each other');
  const modeName: ModeName = values.tiny ? 'tiny' : values.quick ? 'quick' : 'full';
  const mode = MODES[modeName];
  const outDir = resolve(values.out ?? join(REPO, 'docs'));
  const work = resolve(values.work ?? join(tmpdir(), `narwhal-bench-${modeName}`));

  const startedAt = new Date();
  const t0 = performance.now();
  const log = (line: string): void => {
    process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  };
  log(`mode ${modeName}, work dir ${work}, report to ${outDir}`);

  await ensureTools(log);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const loadBefore = await loadAverage();

  const ds = await buildDataset(mode, work, nixEnv(join(work, 'clients', 'dataset')), log);
  log(`dataset: ${ds.totalPaths} store paths, ${(ds.totalNarBytes / 1e6).toFixed(1)} MB of NAR`);

  const pushed = await measurePush(ds, work, log);
  const narwhal = pushed.narwhal;
  let ingest: Awaited<ReturnType<typeof measureIngest>>;
  let substitute: Awaited<ReturnType<typeof measureSubstitute>>;
  let downloads: Awaited<ReturnType<typeof measureDownloads>>;
  let lookups: Awaited<ReturnType<typeof measureLookups>>;
  let metricsScrape: Awaited<ReturnType<typeof measureMetricsScrapeCost>> | undefined;
  let servingMemory: MemoryFigure | undefined;
  let upgrades: Awaited<ReturnType<typeof measureUpgrades>> | undefined;
  let tls: Awaited<ReturnType<typeof measureTls>>;
  let pullThrough: Awaited<ReturnType<typeof measurePullThrough>> | undefined;
  const wrk = {
    threads: mode.wrkThreads,
    connections: mode.loadConnections,
    seconds: mode.loadSeconds,
    rounds: mode.loadRounds,
  };
  try {
    ingest = await measureIngest(ds, work, mode.ingestRounds, log);
    const nginx = await startNginx(pushed.staticRoot, join(work, 'nginx'));
    try {
      substitute = await measureSubstitute(
        ds,
        [
          { id: 'narwhal', label: 'Narwhal', url: narwhal.cacheUrl },
          { id: 'nginx-zstd', label: 'nginx, static zstd', url: `${nginx.url}/zstd` },
          { id: 'nginx-xz', label: 'nginx, static xz', url: `${nginx.url}/xz` },
        ],
        work,
        mode.substituteRounds,
        log,
      );
      downloads = await measureDownloads(ds, narwhal.cacheUrl, nginx.url, pushed.staticRoot, mode.downloadRepeats, log);
      servingMemory = {
        id: 'serve-deltas',
        label: 'the pushed-to server after serving every substitution, deltas included (its lifetime peak)',
        peakRssBytes: await narwhal.peakRss(),
        narBytes: 0,
      };
      upgrades = await measureUpgrades(ds, { nginxZstd: `${nginx.url}/zstd`, narwhal: narwhal.cacheUrl }, work, log);
      pullThrough = await measurePullThrough(ds, pushed.staticRoot, work, mode.substituteRounds, log);
      // The same data served by a process per core (nginx runs a worker per core), beside the default one.
      const perCore = await startNarwhal(narwhal.dataDir, ['--processes', 'auto']);
      try {
        lookups = await measureLookups(
          ds,
          [
            { system: 'Narwhal', url: narwhal.cacheUrl },
            { system: 'Narwhal --processes auto', url: perCore.cacheUrl },
            { system: 'nginx (static zstd)', url: `${nginx.url}/zstd` },
          ],
          wrk,
          work,
          log,
        );
      } finally {
        await perCore.stop();
      }
      const keys = ds.series.flatMap((s) => s.nars.map((n) => n.hashPart));
      metricsScrape = await measureMetricsScrapeCost(narwhal.cacheUrl, narwhal.pid, keys, wrk, work, log);
      tls = await measureTls(ds, narwhal.dataDir, join(work, 'clients'), modeName, log);
    } finally {
      await nginx.stop();
    }
  } finally {
    await narwhal.stop();
  }

  const memory = await measureMemory(ds, mode.syntheticNarBytes, work, narwhal.dataDir, log);
  const chunking = await measureChunking(ds, mode.chunkingVariants, DEFAULT_ZSTD_LEVEL, mode.zstdLevels, log);
  const ui = await measureUi(modeName === 'tiny' ? { paths: 100, requests: 3 } : { paths: 10_000, requests: 50 }, log);

  const finishedAt = new Date();
  const args = argv.join(' ');
  const command =
    process.env.npm_lifecycle_event === 'bench'
      ? `npm run bench${args ? ` -- ${args}` : ''}`
      : `node bench/run.ts${args ? ` ${args}` : ''}`;
  const figures = {
    series: ds.series.map((s) => ({
      id: s.id,
      kind: s.kind,
      title: s.title,
      steps: s.steps,
      paths: s.paths.length,
      regularFiles: s.regularFiles,
      narBytes: s.narBytes,
      largestNarBytes: Math.max(...s.nars.map((n) => n.narSize)),
    })),
    totals: {
      paths: ds.totalPaths,
      narBytes: ds.totalNarBytes,
      largestNar: { storePath: ds.largest.storePath, narBytes: ds.largest.narSize },
    },
    storage: [...pushed.storage.slice(0, -1), ingest.casyncStorage, ...pushed.storage.slice(-1)],
    narwhalStats: { ...pushed.narwhalStats },
    deltaPass: pushed.deltaPass,
    upgrades,
    pullThrough,
    chunking,
    push: pushed.push,
    ingest: ingest.ingest,
    substitute,
    downloads,
    lookups,
    metricsScrape,
    ui,
    lookupSettings: `${wrk.connections} connections, ${wrk.seconds} s per measurement, median of ${wrk.rounds} alternating rounds, wrk with ${wrk.threads} threads`,
    memory: [...memory.memory, ...pushed.memory, ...(servingMemory ? [servingMemory] : []), ...ingest.memory],
    notes: pushed.notes,
    tls,
  };
  const results: Results = {
    run: {
      mode: modeName,
      command,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      seconds: (performance.now() - t0) / 1000,
      commit: await commitInfo(),
      machine: await machineInfo(work),
      versions: await toolVersions(),
      settings: {
        'load average before': loadBefore,
        'load average after': await loadAverage(),
        'synthetic NAR': `${(memory.syntheticBytes / 1e6).toFixed(0)} MB`,
        'ingest rounds (median kept)': String(ingest.rounds),
      },
    },
    ...figures,
    targets: [
      ...judgeTargets(figures, memory.syntheticBytes),
      ...judgeDeltaTargets(figures),
      ...judgeUpgradeTargets(figures),
      ...judgeMetricsTarget(metricsScrape),
      ...judgeTlsTargets(figures.tls),
      ...judgeUiTargets(figures.ui),
    ],
  };
  const file = await writeReport(results, outDir);
  if (!values.keep) await rm(work, { recursive: true, force: true });
  log(`report written to ${file}`);
  process.stdout.write(
    `${table(
      ['target', 'measured', 'required', 'status'],
      results.targets.map((t) => [t.name, t.measured, t.required, t.status]),
    )}\n`,
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
