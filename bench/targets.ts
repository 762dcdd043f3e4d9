/**
 * The targets of issue 3, judged from the figures of one run. A target is "met" only when its
 * figure was measured and satisfies the bound; otherwise "missed" or "not measured".
 */
import type { Results, TargetResult } from './results.ts';

/** Sizes in the report are decimal: 1 MB = 10^6 bytes (stricter than MiB for the RSS bound). */
const MB = 1e6;

type Figures = Omit<Results, 'targets' | 'run'>;

export function judgeTargets(r: Figures, syntheticBytes: number): TargetResult[] {
  const targets: TargetResult[] = [];
  const ratio = (x: number): string => `${x.toFixed(2)}x`;

  // 1. Ingest throughput >= 2x casync make on the same NARs.
  const put = r.ingest.find((i) => i.id === 'narwhal-put');
  const casync = r.ingest.find((i) => i.id === 'casync');
  if (put && casync && put.seconds.total > 0 && casync.seconds.total > 0) {
    const q = casync.seconds.total / put.seconds.total;
    targets.push({
      name: 'ingest throughput vs casync make (same NARs)',
      measured: ratio(q),
      required: '>= 2.00x',
      status: q >= 2 ? 'met' : 'missed',
    });
  } else {
    targets.push({
      name: 'ingest throughput vs casync make (same NARs)',
      measured: '-',
      required: '>= 2.00x',
      status: 'not measured',
    });
  }

  // 2. nix copy --from time <= 1.25x nginx static zstd.
  const subN = r.substitute.find((s) => s.id === 'narwhal');
  const subZ = r.substitute.find((s) => s.id === 'nginx-zstd');
  if (subN && subZ && subZ.seconds.total > 0) {
    const q = subN.seconds.total / subZ.seconds.total;
    targets.push({
      name: 'nix copy --from time vs nginx static zstd',
      measured: ratio(q),
      required: '<= 1.25x',
      status: q <= 1.25 ? 'met' : 'missed',
    });
  } else {
    targets.push({
      name: 'nix copy --from time vs nginx static zstd',
      measured: '-',
      required: '<= 1.25x',
      status: 'not measured',
    });
  }

  // 3. narinfo lookups >= half of nginx's requests per second, GET (wrk) and HEAD (ab) each:
  // Narwhal with a process per core, as nginx runs a worker per core.
  for (const [method, tool] of [
    ['GET', 'wrk'],
    ['HEAD', 'ab'],
  ] as const) {
    const mine = r.lookups.filter((l) => l.method === method && l.tool.startsWith(tool));
    const n = mine.find((l) => l.system === 'Narwhal --processes auto');
    const g = mine.find((l) => l.system.startsWith('nginx'));
    const name = `narinfo ${method} requests/s vs nginx (${n?.tool ?? tool}; Narwhal --processes auto)`;
    if (n && g && g.requestsPerSecond > 0 && n.errors === 0 && g.errors === 0) {
      const q = n.requestsPerSecond / g.requestsPerSecond;
      targets.push({ name, measured: ratio(q), required: '>= 0.50x', status: q >= 0.5 ? 'met' : 'missed' });
    } else {
      const why = n && g && (n.errors > 0 || g.errors > 0) ? `errors: Narwhal ${n.errors}, nginx ${g.errors}` : '-';
      targets.push({ name, measured: why, required: '>= 0.50x', status: 'not measured' });
    }
  }

  // 4. Storage smaller than both static zstd and casync on every series (and in total).
  const nw = r.storage.find((s) => s.id === 'narwhal');
  const zs = r.storage.find((s) => s.id === 'static-zstd');
  const ca = r.storage.find((s) => s.id === 'casync');
  for (const s of [...r.series.map((x) => ({ id: x.id, title: x.title })), { id: 'total', title: 'all series' }]) {
    const name = `storage < static zstd and < casync: ${s.title}`;
    const pick = (sys: typeof nw): number | undefined =>
      sys ? (s.id === 'total' ? sys.usage.total.apparent : sys.usage.series[s.id]?.apparent) : undefined;
    const [n, z, c] = [pick(nw), pick(zs), pick(ca)];
    if (n === undefined || z === undefined || c === undefined) {
      targets.push({ name, measured: '-', required: '< 1.00x of the smaller', status: 'not measured' });
      continue;
    }
    const q = n / Math.min(z, c);
    targets.push({
      name,
      measured: `${ratio(q)} of the smaller (${z <= c ? 'static zstd' : 'casync'})`,
      required: '< 1.00x',
      status: n < z && n < c ? 'met' : 'missed',
    });
  }

  // 5. Peak RSS < 256 MB ingesting a 2 GB NAR.
  const big = r.memory.find((m) => m.id === 'ingest-synthetic');
  const rssName = 'peak RSS ingesting a 2 GB NAR';
  if (big && syntheticBytes >= 2e9) {
    targets.push({
      name: rssName,
      measured: `${(big.peakRssBytes / MB).toFixed(0)} MB`,
      required: '< 256 MB',
      status: big.peakRssBytes < 256 * MB ? 'met' : 'missed',
    });
  } else {
    const measured = big
      ? `${(big.peakRssBytes / MB).toFixed(0)} MB on a ${(syntheticBytes / MB).toFixed(0)} MB NAR only`
      : '-';
    targets.push({ name: rssName, measured, required: '< 256 MB', status: 'not measured' });
  }
  return targets;
}
