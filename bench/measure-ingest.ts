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
import type { IngestSystem, MemoryFigure, StorageSystem } from './results.ts';
import { casyncMake } from './systems/casync.ts';
import { narwhalStats, startNarwhal, type NarwhalStats } from './systems/narwhal.ts';

export interface IngestPhase {
  ingest: IngestSystem[];
  casyncStorage: StorageSystem;
  memory: MemoryFigure[];
  putStats: NarwhalStats;
}

/** PUTs one raw NAR under its NarHash with curl; throws unless the server answers 2xx. */
export async function putNar(server: { cacheUrl: string; token: string }, nar: NarFile): Promise<number> {
  const url = `${server.cacheUrl}/nar/${nar.narHash}.nar`;
  const { stdout, seconds } = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Expect:', '-H', `Authorization: Bearer ${server.token}`, '-T', nar.file, url]);
  if (!/^2\d\d$/.test(stdout.trim())) throw new Error(`PUT nar/${nar.narHash}.nar answered ${stdout.trim()}`);
  return seconds;
}

export async function measureIngest(ds: Dataset, work: string, log: (line: string) => void): Promise<IngestPhase> {
  const narBytes = { series: Object.fromEntries(ds.series.map((s) => [s.id, s.narBytes])), total: ds.totalNarBytes };
  const ingest: IngestSystem[] = [];
  const memory: MemoryFigure[] = [];

  log('ingest: PUT every raw NAR into a fresh Narwhal');
  const server = await startNarwhal(join(work, 'narwhal-put'));
  let putStats: NarwhalStats;
  try {
    const seconds = await perSeries(ds, async (nar) => {
      await putNar(server, nar);
    });
    ingest.push({ id: 'narwhal-put', label: 'Narwhal: PUT nar/<hash>.nar (raw NAR, curl)', seconds, narBytes });
    memory.push({ id: 'put-all', label: 'every NAR of the dataset PUT one after the other', peakRssBytes: await server.peakRss(), narBytes: ds.totalNarBytes, seconds: seconds.total });
    putStats = await narwhalStats(server.dataDir);
  } finally {
    await server.stop();
  }
  await rm(join(work, 'narwhal-put'), { recursive: true, force: true });

  // The alternative local store: a file per chunk in casync's castr layout instead of packs.
  log('ingest: PUT every raw NAR into a fresh Narwhal storing chunks as castr files');
  const castrDir = join(work, 'narwhal-put-castr');
  const castr = await startNarwhal(castrDir, ['--storage', join(castrDir, 'castr')]);
  try {
    const seconds = await perSeries(ds, async (nar) => {
      await putNar(castr, nar);
    });
    ingest.push({ id: 'narwhal-put-castr', label: 'Narwhal with --storage DIR (castr files, not packs)', seconds, narBytes });
  } finally {
    await castr.stop();
  }
  await rm(castrDir, { recursive: true, force: true });

  log('ingest: casync make of every NAR into one store (default settings)');
  const store = join(work, 'casync', 'store');
  const index = join(work, 'casync', 'index');
  await mkdir(store, { recursive: true });
  await mkdir(index, { recursive: true });
  const usage: Record<string, DiskUsage> = {};
  let before = ZERO_USAGE;
  const casyncSeconds = await perSeries(
    ds,
    async (nar) => {
      await casyncMake(store, index, nar.file, nar.hashPart);
    },
    async (seriesId) => {
      const after = await diskUsageOf([store, index]);
      usage[seriesId] = minus(after, before);
      before = after;
    },
  );
  ingest.push({ id: 'casync', label: 'casync make (defaults: SHA-512/256 ids)', seconds: casyncSeconds, narBytes });
  const casyncStorage: StorageSystem = { id: 'casync', label: 'casync store + indexes', usage: { series: usage, total: before } };

  log('ingest: casync make --digest=sha256 (the chunk id hash Narwhal uses)');
  const store256 = join(work, 'casync-sha256', 'store');
  const index256 = join(work, 'casync-sha256', 'index');
  await mkdir(store256, { recursive: true });
  await mkdir(index256, { recursive: true });
  const sha256Seconds = await perSeries(ds, async (nar) => {
    await casyncMake(store256, index256, nar.file, nar.hashPart, ['--digest=sha256']);
  });
  ingest.push({ id: 'casync-sha256', label: 'casync make --digest=sha256', seconds: sha256Seconds, narBytes });
  await rm(join(work, 'casync-sha256'), { recursive: true, force: true });

  return { ingest, casyncStorage, memory, putStats };
}

/**
 * Runs `each` on every NAR, series by series; per-series time is the wall time of its loop. The
 * file system is synced first, so that no system pays for writing back what the one before left.
 */
async function perSeries(
  ds: Dataset,
  each: (nar: NarFile) => Promise<void>,
  afterSeries?: (seriesId: string) => Promise<void>,
): Promise<{ series: Record<string, number>; total: number }> {
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
