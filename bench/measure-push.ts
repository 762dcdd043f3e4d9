/**
 * Figures 1 and 2 (storage, push): `nix copy --to` every series, one after the other, into each
 * system, timing each copy and weighing the system's storage after each series. Per-series
 * storage is what the shared store grew by when that series was added.
 */
import { lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset } from './dataset.ts';
import { diskUsage, minus, sumUsages, ZERO_USAGE, type DiskUsage } from './disk-usage.ts';
import { nixEnv } from './exec.ts';
import type { DeltaPassFigure, MemoryFigure, StorageSystem, TimedSystem } from './results.ts';
import {
  deltaPass,
  narwhalStats,
  pushClientConfig,
  recompress,
  startNarwhal,
  type NarwhalServer,
  type NarwhalStats,
} from './systems/narwhal.ts';
import { rawBytes } from './systems/raw.ts';
import { fileStoreUrl, nixCopySeriesTo, STATIC_CACHES } from './systems/static-cache.ts';

export interface PushPhase {
  storage: StorageSystem[];
  push: TimedSystem[];
  memory: MemoryFigure[];
  narwhalStats: NarwhalStats;
  /** The delta pass run after each series' recompression. */
  deltaPass: Record<string, DeltaPassFigure>;
  /** The Narwhal that received the zstd push, left running for the substitution and lookups. */
  narwhal: NarwhalServer;
  staticRoot: string;
  notes: string[];
}

export async function measurePush(ds: Dataset, work: string, log: (line: string) => void): Promise<PushPhase> {
  const storage: StorageSystem[] = [await rawStorage(ds)];
  const push: TimedSystem[] = [];
  const memory: MemoryFigure[] = [];
  const notes: string[] = [];

  const staticRoot = join(work, 'static');
  for (const kind of STATIC_CACHES) {
    const dir = join(staticRoot, kind.id);
    const env = nixEnv(join(work, 'clients', `push-static-${kind.id}`));
    log(`push: nix copy --to file:// (${kind.params})`);
    const { seconds, usage } = await pushSeries(ds, fileStoreUrl(dir, kind), env, () => diskUsage(dir));
    push.push({ id: `static-${kind.id}`, label: `nix copy --to file://…?${kind.params}`, seconds });
    storage.push({ id: `static-${kind.id}`, label: kind.label, usage });
  }

  let narwhal: NarwhalServer | undefined;
  try {
    narwhal = await startNarwhal(join(work, 'narwhal-zstd'));
    const server = narwhal;
    log(`push: nix copy --to Narwhal (compression=zstd)`);
    const home = join(work, 'clients', 'push-narwhal-zstd');
    const env = nixEnv(home, await pushClientConfig(server, home));
    // After each series, the recompression the server runs once uploads pause (src/maintenance/recompress.ts),
    // weighed; then the delta pass (`recompress --deltas`), weighed again. The series is charged with
    // what the store grew by since the previous series' delta pass, without and with its own.
    const recompressSeconds: Record<string, number> = {};
    const plainUsage: Record<string, DiskUsage> = {};
    const passes: Record<string, DeltaPassFigure> = {};
    const settle = async (seriesId: string, before: DiskUsage): Promise<void> => {
      recompressSeconds[seriesId] = await recompress(server.dataDir);
      plainUsage[seriesId] = minus(await diskUsage(server.dataDir), before);
      const pass = await deltaPass(server.dataDir, join(work, 'delta-pass.time'));
      const narBytes = ds.series.find((s) => s.id === seriesId)!.narBytes;
      passes[seriesId] = {
        seconds: pass.seconds,
        cpuSeconds: pass.cpuSeconds,
        peakRssBytes: pass.peakRssBytes,
        narBytes,
        deltas: pass.report.deltas,
        sketched: pass.report.sketched,
      };
      log(
        `push: delta pass after ${seriesId}: ${pass.report.deltas} deltas, ${pass.seconds.toFixed(1)} s, ` +
          `${pass.cpuSeconds.toFixed(1)} CPU s, peak RSS ${(pass.peakRssBytes / 1e6).toFixed(0)} MB`,
      );
    };
    const { seconds, usage } = await pushSeries(
      ds,
      `${server.cacheUrl}?compression=zstd`,
      env,
      () => diskUsage(server.dataDir),
      settle,
    ).catch((err: unknown) => {
      throw withServerLog(err, server);
    });
    push.push({ id: 'narwhal-zstd', label: 'nix copy --to Narwhal ?compression=zstd', seconds });
    const recompressTotal = Object.values(recompressSeconds).reduce((a, b) => a + b, 0);
    push.push({
      id: 'narwhal-recompress',
      label: 'then narwhal recompress (background in serve)',
      seconds: { series: recompressSeconds, total: recompressTotal },
    });
    const passSeconds = Object.fromEntries(Object.entries(passes).map(([id, p]) => [id, p.seconds]));
    push.push({
      id: 'narwhal-delta-pass',
      label: 'then narwhal recompress --deltas (delta pass)',
      seconds: { series: passSeconds, total: Object.values(passSeconds).reduce((a, b) => a + b, 0) },
    });
    storage.push({
      id: 'narwhal',
      label: 'Narwhal',
      usage: { series: plainUsage, total: sumUsages(Object.values(plainUsage)) },
    });
    storage.push({ id: 'narwhal-deltas', label: 'Narwhal with deltas', usage });
    memory.push({
      id: 'push-zstd',
      label: 'whole dataset pushed with nix copy (zstd)',
      peakRssBytes: await server.peakRss(),
      narBytes: ds.totalNarBytes,
      seconds: seconds.total,
    });
    const stats = await narwhalStats(server.dataDir);

    const other = await startNarwhal(join(work, 'narwhal-none'));
    try {
      log(`push: nix copy --to Narwhal (compression=none)`);
      const homeNone = join(work, 'clients', 'push-narwhal-none');
      const envNone = nixEnv(homeNone, await pushClientConfig(other, homeNone));
      const none = await pushSeries(ds, `${other.cacheUrl}?compression=none`, envNone, () =>
        diskUsage(other.dataDir),
      ).catch((err: unknown) => {
        throw withServerLog(err, other);
      });
      push.push({ id: 'narwhal-none', label: 'nix copy --to Narwhal ?compression=none', seconds: none.seconds });
      storage.push({ id: 'narwhal-as-pushed', label: 'Narwhal as pushed, before recompression', usage: none.usage });
      memory.push({
        id: 'push-none',
        label: 'whole dataset pushed with nix copy (none)',
        peakRssBytes: await other.peakRss(),
        narBytes: ds.totalNarBytes,
        seconds: none.seconds.total,
      });
      const statsNone = await narwhalStats(other.dataDir);
      if (statsNone.chunkBytes !== stats.chunkBytes || statsNone.chunks !== stats.chunks) {
        notes.push(
          `Narwhal stored different chunks depending on the upload compression: zstd push ${stats.chunks} chunks / ${stats.chunkBytes} B, none push ${statsNone.chunks} chunks / ${statsNone.chunkBytes} B.`,
        );
      }
    } finally {
      await other.stop();
      await rm(other.dataDir, { recursive: true, force: true });
    }
    if (stats.narBytes !== ds.totalNarBytes || stats.nars !== ds.totalPaths) {
      notes.push(
        `Narwhal stats after the push: ${stats.nars} NARs / ${stats.narBytes} B, the dataset has ${ds.totalPaths} / ${ds.totalNarBytes} B.`,
      );
    }
    return { storage, push, memory, narwhalStats: stats, deltaPass: passes, narwhal: server, staticRoot, notes };
  } catch (err) {
    await narwhal?.stop();
    throw err;
  }
}

async function rawStorage(ds: Dataset): Promise<StorageSystem> {
  const series: Record<string, DiskUsage> = {};
  const total = { ...ZERO_USAGE };
  for (const s of ds.series) {
    let allocated = 0;
    for (const n of s.nars) allocated += (await lstat(n.file)).blocks * 512;
    series[s.id] = { apparent: rawBytes(s.nars), allocated, files: s.nars.length };
    total.apparent += series[s.id].apparent;
    total.allocated += allocated;
    total.files += s.nars.length;
  }
  return { id: 'raw', label: 'raw NARs (uncompressed)', usage: { series, total } };
}

/** Copies series after series, timing each and weighing the destination after each (and after `settle`, if given). */
async function pushSeries(
  ds: Dataset,
  url: string,
  env: NodeJS.ProcessEnv,
  weigh: () => Promise<DiskUsage>,
  settle?: (seriesId: string, before: DiskUsage) => Promise<void>,
): Promise<{
  seconds: { series: Record<string, number>; total: number };
  usage: { series: Record<string, DiskUsage>; total: DiskUsage };
}> {
  const seconds: Record<string, number> = {};
  const usage: Record<string, DiskUsage> = {};
  let before = ZERO_USAGE;
  let totalSeconds = 0;
  for (const s of ds.series) {
    seconds[s.id] = await nixCopySeriesTo(url, s, env);
    totalSeconds += seconds[s.id];
    await settle?.(s.id, before);
    const after = await weigh();
    usage[s.id] = minus(after, before);
    before = after;
  }
  return { seconds: { series: seconds, total: totalSeconds }, usage: { series: usage, total: before } };
}

function withServerLog(err: unknown, server: NarwhalServer): Error {
  const tail = server.output().trimEnd().split('\n').slice(-40).join('\n');
  return new Error(
    `${err instanceof Error ? err.message : String(err)}\nnarwhal serve's stderr (last lines):\n${tail}`,
    { cause: err },
  );
}
