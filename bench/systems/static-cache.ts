/**
 * The static binary cache most self-hosters run: `nix copy --to file://DIR?compression=...`
 * writes narinfos and compressed NARs into a directory that a web server then serves as is.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SeriesData } from '../dataset.ts';
import { run } from '../exec.ts';

export interface StaticCacheKind {
  id: string;
  label: string;
  /** Query string of the file:// store URL. */
  params: string;
}

export const STATIC_CACHES: StaticCacheKind[] = [
  { id: 'zstd', label: 'static file cache, zstd', params: 'compression=zstd' },
  // Nix 2.8 compresses xz at preset 6; parallel-compression only spreads it over both cores.
  { id: 'xz', label: 'static file cache, xz', params: 'compression=xz&parallel-compression=true' },
  { id: 'none', label: 'static file cache, uncompressed', params: 'compression=none' },
];

export function fileStoreUrl(dir: string, kind: StaticCacheKind): string {
  return `file://${dir}?${kind.params}`;
}

/**
 * A copy of `bytes` of NAR that takes longer than this has hung (it allows for xz, the slowest;
 * docs/benchmarks.md, 'Benchmark method'): Nix 2.8 waits forever on a retried PUT, which it sends without its body.
 */
export function copyTimeout(bytes: number): number {
  return 120 + bytes / 250e3;
}

/** `nix copy --to` the paths (and their closure); resolves to the wall time in seconds. */
export async function nixCopyTo(
  storeUrl: string,
  paths: string[],
  env: NodeJS.ProcessEnv,
  bytes: number,
): Promise<number> {
  return (await run('nix', ['copy', '--to', storeUrl, ...paths], { env, timeoutSeconds: copyTimeout(bytes) })).seconds;
}

/**
 * `nix copy --to` a series one release (or generation) at a time, oldest first, as a release flow
 * publishes them; resolves to the summed wall time in seconds. One `nix copy` of several paths
 * sends them in an order of its own, not the versions', and Narwhal's delta pass takes the NAR of a
 * package stored last as its newest, the one kept plain (docs/storage.md, "Delta storage"): pushed
 * at once, swc's newest release ended at the bottom of chains of depth 3 (docs/benchmarks.md,
 * "Serving swc").
 */
export async function nixCopySeriesTo(storeUrl: string, series: SeriesData, env: NodeJS.ProcessEnv): Promise<number> {
  let seconds = 0;
  for (const paths of series.stepPaths) {
    const bytes = series.nars.filter((n) => paths.includes(n.storePath)).reduce((sum, n) => sum + n.narSize, 0);
    seconds += await nixCopyTo(storeUrl, paths, env, bytes);
  }
  return seconds;
}

/** `nix copy --from` a substituter into a separate store root, without signature checks. */
export async function nixCopyFrom(
  fromUrl: string,
  storeRoot: string,
  paths: string[],
  env: NodeJS.ProcessEnv,
  bytes: number,
): Promise<number> {
  return (
    await run('nix', ['copy', '--from', fromUrl, '--to', storeRoot, '--no-check-sigs', ...paths], {
      env,
      timeoutSeconds: copyTimeout(bytes),
    })
  ).seconds;
}

/** The NAR URL (relative to the cache) that a static cache's narinfo names. */
export async function staticNarUrl(dir: string, hashPart: string): Promise<string> {
  const narinfo = await readFile(join(dir, `${hashPart}.narinfo`), 'utf8');
  const m = /^URL: (\S+)$/m.exec(narinfo);
  if (!m) throw new Error(`no URL in ${hashPart}.narinfo`);
  return m[1];
}
