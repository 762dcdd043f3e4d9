import { readdir } from 'node:fs/promises';
import type { SeriesData } from './dataset.ts';
import { run } from './exec.ts';
import { MODES, type ReleaseSeriesSpec } from './modes.ts';
import { sourceKey } from './sources.ts';

/** The series' releases as a full bench run added them to the store (`store`: the names in /nix/store): per release, the path of that name with the largest NAR. */
export async function seriesInStore(spec: ReleaseSeriesSpec, store: string[]): Promise<SeriesData> {
  const stepPaths: string[][] = [];
  const nars: SeriesData['nars'] = [];
  for (const release of spec.releases) {
    const name = sourceKey(release);
    const paths = store.filter((e) => e.slice(33) === name).map((e) => `/nix/store/${e}`);
    if (paths.length === 0) throw new Error(`${name} is not in /nix/store: run the full bench once first`);
    const { stdout } = await run('nix', [
      '--extra-experimental-features',
      'nix-command',
      'path-info',
      '--json',
      ...paths,
    ]);
    const rows = JSON.parse(stdout) as { path: string; narSize: number; narHash: string }[];
    const best = rows.reduce((a, b) => (b.narSize > a.narSize ? b : a));
    stepPaths.push([best.path]);
    nars.push({ storePath: best.path, hashPart: '', file: '', narHash: best.narHash, narSize: best.narSize });
  }
  return {
    id: spec.id,
    kind: spec.kind,
    title: spec.title,
    steps: spec.releases.map((r) => sourceKey(r)),
    paths: stepPaths.flat(),
    stepPaths,
    nars,
    regularFiles: 0,
    narBytes: nars.reduce((a, n) => a + n.narSize, 0),
  };
}

/** The full dataset's release series named in `ids`, as the Nix store holds them (in the dataset's order). */
export async function releaseSeriesInStore(ids: readonly string[]): Promise<SeriesData[]> {
  const store = await readdir('/nix/store');
  const series: SeriesData[] = [];
  for (const spec of MODES.full.series) {
    if (spec.kind === 'releases' && ids.includes(spec.id)) series.push(await seriesInStore(spec, store));
  }
  return series;
}
