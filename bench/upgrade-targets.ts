/**
 * The targets of issue 20, judged from the upgrades of one run (measure-upgrades.ts): "met" only
 * when measured and within the bound.
 */
import type { Results, TargetResult, Upgrade } from './results.ts';

type Figures = Omit<Results, 'targets' | 'run'>;

const ratio = (x: number): string => `${x.toFixed(2)}x`;

export function judgeUpgradeTargets(r: Figures): TargetResult[] {
  const u = r.upgrades;
  const rebuilds = new Set(r.series.filter((s) => s.kind === 'rebuild').map((s) => s.id));
  const sum = (
    list: Upgrade[],
    system: string,
    link: string,
    pick: (f: Upgrade) => number,
    series: (id: string) => boolean,
  ) => list.filter((f) => f.system === system && f.link === link && series(f.series)).reduce((a, f) => a + pick(f), 0);
  const judge = (
    name: string,
    measured: number | undefined,
    required: string,
    met: (q: number) => boolean,
  ): TargetResult =>
    measured === undefined || !Number.isFinite(measured)
      ? { issue: 20, name, measured: '-', required, status: 'not measured' }
      : { issue: 20, name, measured: ratio(measured), required, status: met(measured) ? 'met' : 'missed' };
  const share = (series: (id: string) => boolean): number | undefined => {
    if (!u) return undefined;
    const base = sum(u.fetch, 'nginx-zstd', '100mbit', (f) => f.bytes, series);
    return base > 0 ? sum(u.fetch, 'substituter', '100mbit', (f) => f.bytes, series) / base : undefined;
  };
  const time = (link: string): number | undefined => {
    if (!u) return undefined;
    const base = sum(
      u.fetch,
      'nginx-zstd',
      link,
      (f) => f.seconds,
      () => true,
    );
    return base > 0
      ? sum(
          u.fetch,
          'substituter',
          link,
          (f) => f.seconds,
          () => true,
        ) / base
      : undefined;
  };
  const pushShare = (): number | undefined => {
    if (!u) return undefined;
    const base = u.push.filter((p) => p.system === 'nix-copy').reduce((a, p) => a + p.bytes, 0);
    const ours = u.push.filter((p) => p.system === 'narwhal-push').reduce((a, p) => a + p.bytes, 0);
    return base > 0 ? ours / base : undefined;
  };
  // The same run's own `nix copy --to` of the whole dataset; runs before it compared with the push table.
  const nixCopy = u?.wholeCopySeconds ?? r.push.find((p) => p.id === 'narwhal-zstd')?.seconds.total;
  return [
    judge(
      'substituter: bytes of release upgrades vs .nar.zst from nginx',
      share((id) => !rebuilds.has(id)),
      '<= 0.25x',
      (q) => q <= 0.25,
    ),
    judge(
      'substituter: bytes of mass rebuild generations vs .nar.zst',
      rebuilds.size ? share((id) => rebuilds.has(id)) : undefined,
      '<= 0.10x',
      (q) => q <= 0.1,
    ),
    judge('substituter: time at 100 Mbit/s vs nginx static zstd', time('100mbit'), '<= 0.40x', (q) => q <= 0.4),
    judge('substituter: time on loopback vs nginx static zstd', time('loopback'), '<= 1.50x', (q) => q <= 1.5),
    judge(
      'narwhal push: bytes of upgrades vs nix copy --to ?compression=zstd',
      pushShare(),
      '<= 0.30x',
      (q) => q <= 0.3,
    ),
    judge(
      'narwhal push: whole dataset into an empty cache vs nix copy --to Narwhal',
      u && nixCopy ? u.wholePushSeconds / nixCopy : undefined,
      '<= 1.00x',
      (q) => q <= 1,
    ),
  ];
}
