/**
 * The targets of issue 19 (delta storage), judged from the figures of one run like those of
 * issue 3 (targets.ts): "met" only when measured and within the bound.
 */
import type { Results, TargetResult } from './results.ts';

type Figures = Omit<Results, 'targets' | 'run'>;

const MB = 1e6;
const ratio = (x: number): string => `${x.toFixed(2)}x`;

export function judgeDeltaTargets(r: Figures): TargetResult[] {
  return [...storageTargets(r), ...substitutionTargets(r), ...passTargets(r)];
}

/** Release series <= 0.75x of today's Narwhal and below static xz; a mass rebuild <= 0.5x. */
function storageTargets(r: Figures): TargetResult[] {
  const bytes = (system: string, series: string): number | undefined =>
    r.storage.find((s) => s.id === system)?.usage.series[series]?.apparent;
  return r.series.map((s): TargetResult => {
    const rebuild = s.kind === 'rebuild';
    const bound = rebuild ? 0.5 : 0.75;
    const name = `deltas: stored vs Narwhal without deltas${rebuild ? '' : ', and < static xz'}: ${s.title}`;
    const required = `<= ${bound.toFixed(2)}x${rebuild ? '' : ', < 1.00x of xz'}`;
    const [withDeltas, plain, xz] = [bytes('narwhal-deltas', s.id), bytes('narwhal', s.id), bytes('static-xz', s.id)];
    if (withDeltas === undefined || plain === undefined || xz === undefined || plain <= 0) {
      return { issue: 19, name, measured: '-', required, status: 'not measured' };
    }
    const q = withDeltas / plain;
    const met = q <= bound && (rebuild || withDeltas < xz);
    const measured = rebuild ? ratio(q) : `${ratio(q)}, ${ratio(withDeltas / xz)} of xz`;
    return { issue: 19, name, measured, required, status: met ? 'met' : 'missed' };
  });
}

/** nix copy --from of each series' newest release <= 1.1x nginx static zstd; of every release <= 1.25x. */
function substitutionTargets(r: Figures): TargetResult[] {
  const narwhal = r.substitute.find((s) => s.id === 'narwhal');
  const nginx = r.substitute.find((s) => s.id === 'nginx-zstd');
  const targets: TargetResult[] = [];
  for (const s of r.series) {
    const mine = narwhal?.steps?.[s.id];
    const theirs = nginx?.steps?.[s.id];
    const newestName = `deltas: nix copy --from of the newest release vs nginx static zstd: ${s.title}`;
    const everyName = `deltas: nix copy --from of every release vs nginx static zstd (slowest): ${s.title}`;
    if (!mine || !theirs || mine.length !== theirs.length || mine.length === 0) {
      targets.push({ issue: 19, name: newestName, measured: '-', required: '<= 1.10x', status: 'not measured' });
      targets.push({ issue: 19, name: everyName, measured: '-', required: '<= 1.25x', status: 'not measured' });
      continue;
    }
    const ratios = mine.map((t, i) => t / theirs[i]);
    const newest = ratios.at(-1)!;
    const worst = Math.max(...ratios);
    const at = s.steps[ratios.indexOf(worst)];
    targets.push({
      issue: 19,
      name: newestName,
      measured: ratio(newest),
      required: '<= 1.10x',
      status: newest <= 1.1 ? 'met' : 'missed',
    });
    targets.push({
      issue: 19,
      name: everyName,
      measured: `${ratio(worst)} (${at})`,
      required: '<= 1.25x',
      status: worst <= 1.25 ? 'met' : 'missed',
    });
  }
  return targets;
}

/** The pass handles >= 10 MB of NAR per CPU second; peak RSS re-encoding and serving < 256 MB. */
function passTargets(r: Figures): TargetResult[] {
  const passes = Object.values(r.deltaPass ?? {});
  const targets: TargetResult[] = [];
  const speedName = 'deltas: delta pass, MB of NAR per CPU second';
  const cpu = passes.reduce((sum, p) => sum + p.cpuSeconds, 0);
  if (passes.length === 0 || cpu <= 0) {
    targets.push({ issue: 19, name: speedName, measured: '-', required: '>= 10 MB/s', status: 'not measured' });
  } else {
    const speed = passes.reduce((sum, p) => sum + p.narBytes, 0) / MB / cpu;
    targets.push({
      issue: 19,
      name: speedName,
      measured: `${speed.toFixed(1)} MB/s`,
      required: '>= 10 MB/s',
      status: speed >= 10 ? 'met' : 'missed',
    });
  }
  const rss = (name: string, peak: number | undefined): TargetResult =>
    peak === undefined
      ? { issue: 19, name, measured: '-', required: '< 256 MB', status: 'not measured' }
      : {
          issue: 19,
          name,
          measured: `${(peak / MB).toFixed(0)} MB`,
          required: '< 256 MB',
          status: peak < 256 * MB ? 'met' : 'missed',
        };
  targets.push(
    rss(
      'deltas: peak RSS of the delta pass',
      passes.length ? Math.max(...passes.map((p) => p.peakRssBytes)) : undefined,
    ),
  );
  targets.push(
    rss('deltas: peak RSS of the server serving deltas', r.memory.find((m) => m.id === 'serve-deltas')?.peakRssBytes),
  );
  return targets;
}
