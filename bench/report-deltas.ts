/**
 * Section 6 of the report: what the delta pass (issue 19) stores, what it costs, and how fast each
 * release substitutes once older chunks are deltas.
 */
import { mb, rate, seconds, table, times } from './format.ts';
import type { Results } from './results.ts';

export const DELTA_SECTION = '## 6. Delta storage';

export function renderDeltaSection(r: Results): string[] {
  const md: string[] = [DELTA_SECTION, ''];
  const usage = (system: string, series: string): number | undefined =>
    r.storage.find((s) => s.id === system)?.usage.series[series]?.apparent;
  md.push(
    table(
      ['series', 'Narwhal without deltas', 'with deltas', 'vs without', 'static xz', 'with deltas vs xz'],
      r.series.map((s) => {
        const [plain, deltas, xz] = [usage('narwhal', s.id), usage('narwhal-deltas', s.id), usage('static-xz', s.id)];
        const fmt = (b: number | undefined): string => (b === undefined ? '-' : mb(b));
        const q = (a: number | undefined, b: number | undefined): string =>
          a === undefined || b === undefined ? '-' : times(a / b);
        return [s.title, fmt(plain), fmt(deltas), q(deltas, plain), fmt(xz), q(deltas, xz)];
      }),
    ),
    '',
    'Both Narwhal columns are one store: after each series was pushed it was recompressed (`narwhal recompress`) and',
    'weighed, then `narwhal recompress --deltas` rewrote older chunks as deltas of newer ones and it was weighed again.',
    "Each column charges a series with what the store grew by since the previous series' delta pass.",
    '',
  );
  const passes = r.deltaPass ?? {};
  md.push(
    table(
      ['delta pass after', 'chunks made deltas', 'wall time', 'CPU time', 'MB of NAR per CPU s', 'peak RSS'],
      r.series
        .filter((s) => passes[s.id])
        .map((s) => {
          const p = passes[s.id];
          return [
            s.title,
            String(p.deltas),
            seconds(p.seconds),
            seconds(p.cpuSeconds),
            rate(p.narBytes, p.cpuSeconds),
            mb(p.peakRssBytes),
          ];
        }),
    ),
    '',
    '`narwhal recompress --deltas` run by GNU time after each series: the delta pass alone, as the recompression just',
    'before it had rewritten the chunks at zstd 19 and computed their resemblance sketches (its time is in the push',
    'table). CPU time is user + system of the whole process, its worker threads included.',
    '',
  );
  const narwhal = r.substitute.find((s) => s.id === 'narwhal');
  const nginx = r.substitute.find((s) => s.id === 'nginx-zstd');
  if (narwhal?.steps && nginx?.steps) {
    md.push(
      table(
        ['series', 'release', 'Narwhal', 'nginx, static zstd', 'vs nginx'],
        r.series.flatMap((s) =>
          s.steps.map((step, i) => {
            const [mine, theirs] = [narwhal.steps?.[s.id]?.[i] ?? NaN, nginx.steps?.[s.id]?.[i] ?? NaN];
            return [s.title, step, seconds(mine), seconds(theirs), times(mine / theirs)];
          }),
        ),
      ),
      '',
      '`nix copy --from` of each release (a generation: its four store paths) into the fresh store of section 3, after',
      'the releases before it: the median of its rounds. The newest release is the last of each series; with reverse',
      'deltas its chunks are stored plain, the older ones read their bases too.',
      '',
    );
  }
  return md;
}
