import type { SeriesData } from './dataset.ts';
import { run } from './exec.ts';
import type { ReleaseSeriesSpec } from './modes.ts';
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
