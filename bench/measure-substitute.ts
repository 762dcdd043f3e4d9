/**
 * Figure 3 (substitute): `nix copy --from` each server into a fresh store, series by series and
 * release by release (the newest and the oldest differ once older chunks are deltas), as a new
 * machine would; and curl downloads of the largest NAR in each form a server offers.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset } from './dataset.ts';
import { nixEnv, run } from './exec.ts';
import { medianBy } from './median.ts';
import type { Download, TimedSystem } from './results.ts';
import { nixCopyFrom, staticNarUrl } from './systems/static-cache.ts';

export interface Substituter {
  id: string;
  label: string;
  /** Base URL of the binary cache. */
  url: string;
}

/**
 * `rounds` rounds in which every system takes its turn (so that none always goes first, into
 * cold caches); per release, the median of its rounds is reported (a series sums its releases), and each round's total.
 * The fresh stores are deleted only after the last round: ext4 skips inodes freed in the last
 * minutes when it allocates new ones, and creating a store's files right after deleting another
 * store's thousands went much slower and varied widely (kernel time in `recently_deleted`), more
 * than the servers differ (docs/benchmarks.md, 'Benchmark method').
 */
export async function measureSubstitute(
  ds: Dataset,
  subs: Substituter[],
  work: string,
  rounds: number,
  log: (line: string) => void,
): Promise<TimedSystem[]> {
  // times[system][series][step]: that step's time in each round.
  const times = new Map(
    subs.map((sub) => [sub.id, Object.fromEntries(ds.series.map((s) => [s.id, s.steps.map(() => [] as number[])]))]),
  );
  const roundTotals = new Map(subs.map((sub) => [sub.id, [] as number[]]));
  const roots: string[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const sub of subs) {
        log(`substitute: nix copy --from ${sub.label} into a fresh store (round ${round} of ${rounds})`);
        const root = join(work, `fresh-store-${sub.id}-${round}`);
        roots.push(root);
        await rm(root, { recursive: true, force: true });
        // A fresh client too: Nix caches narinfos per user.
        const clientHome = join(work, 'clients', `substitute-${sub.id}-${round}`);
        const env = nixEnv(clientHome);
        await run('sync', []);
        let total = 0;
        for (const s of ds.series) {
          for (const [step, paths] of s.stepPaths.entries()) {
            const bytes = s.nars.filter((n) => paths.includes(n.storePath)).reduce((sum, n) => sum + n.narSize, 0);
            const seconds = await nixCopyFrom(sub.url, root, paths, env, bytes);
            times.get(sub.id)![s.id][step].push(seconds);
            total += seconds;
          }
        }
        roundTotals.get(sub.id)!.push(total);
        // Every path must have arrived: a fast copy of nothing measures nothing.
        await run('nix', ['path-info', '--store', root, ...ds.series.flatMap((s) => s.paths)], {
          env,
          stdout: 'ignore',
        });
      }
    }
  } finally {
    for (const root of roots) await rm(root, { recursive: true, force: true });
  }
  return subs.map((sub) => {
    const steps = Object.fromEntries(
      ds.series.map((s) => [s.id, times.get(sub.id)![s.id].map((rounds) => medianBy(rounds, (t) => t))]),
    );
    const series = Object.fromEntries(Object.entries(steps).map(([id, t]) => [id, t.reduce((a, b) => a + b, 0)]));
    return {
      id: sub.id,
      label: sub.label,
      seconds: { series, total: Object.values(series).reduce((a, b) => a + b, 0) },
      roundTotals: roundTotals.get(sub.id)!,
      steps,
    };
  });
}

/** Downloads one URL `repeats` times with curl and keeps the median time. */
async function download(
  system: string,
  what: string,
  url: string,
  narBytes: number,
  repeats: number,
): Promise<Download> {
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < repeats; i++) {
    const { stdout } = await run('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{size_download} %{time_total}',
      url,
    ]);
    const [code, size, time] = stdout.trim().split(' ');
    if (code !== '200') throw new Error(`GET ${url} answered ${code}`);
    bytes = Number(size);
    times.push(Number(time));
  }
  return { system, what, url, bytes, narBytes, seconds: medianBy(times, (t) => t) };
}

/** The largest NAR as each server offers it: compressed (what clients fetch) and plain. */
export async function measureDownloads(
  ds: Dataset,
  narwhalCacheUrl: string,
  nginxUrl: string,
  staticRoot: string,
  repeats: number,
  log: (line: string) => void,
): Promise<Download[]> {
  const nar = ds.largest;
  log(`substitute: curl GET of the largest NAR (${nar.storePath})`);
  const narinfo = await (await fetch(`${narwhalCacheUrl}/${nar.hashPart}.narinfo`)).text();
  const m = /^URL: (\S+)$/m.exec(narinfo);
  if (!m) throw new Error(`Narwhal's narinfo for ${nar.hashPart} has no URL`);
  const narwhalUrl = `${narwhalCacheUrl}/${m[1]}`;
  const plainUrl = `${narwhalCacheUrl}/nar/${nar.narHash}.nar`;
  return [
    await download(
      'Narwhal',
      `${m[1].replace(/^.*?(\.nar\S*)$/, '$1')} (narinfo URL)`,
      narwhalUrl,
      nar.narSize,
      repeats,
    ),
    await download(
      'nginx, static zstd',
      '.nar.zst',
      `${nginxUrl}/zstd/${await staticNarUrl(join(staticRoot, 'zstd'), nar.hashPart)}`,
      nar.narSize,
      repeats,
    ),
    await download('Narwhal', '.nar', plainUrl, nar.narSize, repeats),
    await download(
      'nginx, static none',
      '.nar',
      `${nginxUrl}/none/${await staticNarUrl(join(staticRoot, 'none'), nar.hashPart)}`,
      nar.narSize,
      repeats,
    ),
  ];
}
