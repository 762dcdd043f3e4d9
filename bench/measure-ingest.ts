/**
 * Ingest throughput on the same NAR files: Narwhal receiving each raw NAR by HTTP PUT (what a
 * push costs the server, without Nix's dumping and compressing), against `casync make` of each
 * NAR into one shared store (which also yields casync's storage figure).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset, NarFile } from './dataset.ts';
import { diskUsageOf, minus, ZERO_USAGE, type DiskUsage } from './disk-usage.ts';
import { run } from './exec.ts';
import { medianBy } from './median.ts';
import type { IngestSystem, MemoryFigure, StorageSystem } from './results.ts';
import { casyncMake } from './systems/casync.ts';
import { narwhalStats, startNarwhal, type NarwhalStats } from './systems/narwhal.ts';

export interface IngestPhase {
  ingest: IngestSystem[];
  /** Rounds each figure is the median of. */
  rounds: number;
  casyncStorage: StorageSystem;
  memory: MemoryFigure[];
  putStats: NarwhalStats;
}

/** PUTs one raw NAR under its NarHash with curl; throws unless the server answers 2xx. */
export async function putNar(server: { cacheUrl: string; token: string }, nar: NarFile): Promise<number> {
  const url = `${server.cacheUrl}/nar/${nar.narHash}.nar`;
  const { stdout, seconds } = await run('curl', [
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '-H',
    'Expect:',
    '-H',
    `Authorization: Bearer ${server.token}`,
    '-T',
    nar.file,
    url,
  ]);
  if (!/^2\d\d$/.test(stdout.trim())) throw new Error(`PUT nar/${nar.narHash}.nar answered ${stdout.trim()}`);
  return seconds;
}

type Seconds = { series: Record<string, number>; total: number };

/**
 * Each round ingests every NAR into fresh stores, one system after the other; each system's
 * figure is its median round by total time, as for substitution and lookups, because single runs
 * of either system here varied more than the systems differ (docs/benchmarks.md, 'Benchmark method').
 */
export async function measureIngest(
  ds: Dataset,
  work: string,
  rounds: number,
  log: (line: string) => void,
): Promise<IngestPhase> {
  const narBytes = { series: Object.fromEntries(ds.series.map((s) => [s.id, s.narBytes])), total: ds.totalNarBytes };
  const times: Record<'narwhal-put' | 'narwhal-put-castr' | 'casync' | 'casync-sha256', Seconds[]> = {
    'narwhal-put': [],
    'narwhal-put-castr': [],
    casync: [],
    'casync-sha256': [],
  };
  let peakRss = 0;
  let putStats: NarwhalStats | undefined;
  let casyncStorage: StorageSystem | undefined;

  for (let round = 1; round <= rounds; round++) {
    // Every round writes into directories of its own, all removed at the end: deleting a store's
    // tens of thousands of files right before the next round slowed the file-per-chunk systems
    // (casync make took 13.5 s in a first round, 20 s and 23 s in rounds after such deletions).
    const dir = join(work, `ingest-round-${round}`);
    log(`ingest: round ${round} of ${rounds}: PUT every raw NAR into a fresh Narwhal`);
    const server = await startNarwhal(join(dir, 'narwhal-put'));
    try {
      times['narwhal-put'].push(await perSeries(ds, (nar) => putNar(server, nar)));
      peakRss = Math.max(peakRss, await server.peakRss());
      putStats ??= await narwhalStats(server.dataDir);
    } finally {
      await server.stop();
    }

    // The alternative local store: a file per chunk in casync's castr layout instead of packs.
    log(`ingest: round ${round} of ${rounds}: the same into a fresh Narwhal storing chunks as castr files`);
    const castrDir = join(dir, 'narwhal-put-castr');
    const castr = await startNarwhal(castrDir, ['--storage', join(castrDir, 'castr')]);
    try {
      times['narwhal-put-castr'].push(await perSeries(ds, (nar) => putNar(castr, nar)));
    } finally {
      await castr.stop();
    }

    log(`ingest: round ${round} of ${rounds}: casync make of every NAR into one fresh store (default settings)`);
    const casyncDir = join(dir, 'casync');
    const usage: Record<string, DiskUsage> = {};
    let before = ZERO_USAGE;
    times.casync.push(
      await perSeries(
        ds,
        (nar) => casyncMake(join(casyncDir, 'store'), join(casyncDir, 'index'), nar.file, nar.hashPart),
        async (seriesId) => {
          const after = await diskUsageOf([join(casyncDir, 'store'), join(casyncDir, 'index')]);
          usage[seriesId] = minus(after, before);
          before = after;
        },
        [join(casyncDir, 'store'), join(casyncDir, 'index')],
      ),
    );
    casyncStorage ??= { id: 'casync', label: 'casync store + indexes', usage: { series: usage, total: before } };

    log(`ingest: round ${round} of ${rounds}: casync make --digest=sha256 (the chunk id hash Narwhal uses)`);
    const sha256Dir = join(dir, 'casync-sha256');
    times['casync-sha256'].push(
      await perSeries(
        ds,
        (nar) =>
          casyncMake(join(sha256Dir, 'store'), join(sha256Dir, 'index'), nar.file, nar.hashPart, ['--digest=sha256']),
        undefined,
        [join(sha256Dir, 'store'), join(sha256Dir, 'index')],
      ),
    );
  }
  for (let round = 1; round <= rounds; round++)
    await rm(join(work, `ingest-round-${round}`), { recursive: true, force: true });

  const median = (all: Seconds[]): Seconds => medianBy(all, (t) => t.total);
  const ingest: IngestSystem[] = [
    {
      id: 'narwhal-put',
      label: 'Narwhal: PUT nar/<hash>.nar (raw NAR, curl)',
      seconds: median(times['narwhal-put']),
      narBytes,
    },
    {
      id: 'narwhal-put-castr',
      label: 'Narwhal with --storage DIR (castr files, not packs)',
      seconds: median(times['narwhal-put-castr']),
      narBytes,
    },
    { id: 'casync', label: 'casync make (defaults: SHA-512/256 ids)', seconds: median(times.casync), narBytes },
    { id: 'casync-sha256', label: 'casync make --digest=sha256', seconds: median(times['casync-sha256']), narBytes },
  ];
  const memory: MemoryFigure[] = [
    {
      id: 'put-all',
      label: 'every NAR of the dataset PUT one after the other',
      peakRssBytes: peakRss,
      narBytes: ds.totalNarBytes,
      seconds: ingest[0].seconds.total,
    },
  ];
  return { ingest, casyncStorage: casyncStorage!, memory, putStats: putStats!, rounds };
}

/**
 * Runs `each` on every NAR, series by series; per-series time is the wall time of its loop. The
 * file system is synced first, so that no system pays for writing back what the one before left.
 */
async function perSeries(
  ds: Dataset,
  each: (nar: NarFile) => Promise<unknown>,
  afterSeries?: (seriesId: string) => Promise<void>,
  dirs: string[] = [],
): Promise<Seconds> {
  for (const dir of dirs) await mkdir(dir, { recursive: true });
  await run('sync', []);
  const series: Record<string, number> = {};
  let total = 0;
  for (const s of ds.series) {
    const started = performance.now();
    for (const nar of s.nars) await each(nar);
    series[s.id] = (performance.now() - started) / 1000;
    total += series[s.id];
    if (afterSeries) await afterSeries(s.id);
  }
  return { series, total };
}
