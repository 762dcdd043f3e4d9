/**
 * Section 7 of the report: moving one release after another (issue 20), what each way of fetching
 * and pushing puts on the wire and how long it takes.
 */
import { LINK_BITS_PER_SECOND } from './measure-upgrades.ts';
import { mb, seconds, table, times } from './format.ts';
import type { Results, Upgrade } from './results.ts';

export const UPGRADE_SECTION = '## 7. Upgrades';

const SYSTEMS = [
  ['nginx-zstd', 'nginx, static zstd'],
  ['narwhal', 'Narwhal'],
  ['substituter', 'narwhal substituter'],
] as const;

export function renderUpgradeSection(r: Results): string[] {
  const md: string[] = [UPGRADE_SECTION, ''];
  const u = r.upgrades;
  if (!u) return [...md, 'Not measured in this run.', ''];
  const find = (series: string, to: string, system: string, link: string): Upgrade | undefined =>
    u.fetch.find((f) => f.series === series && f.to === to && f.system === system && f.link === link);
  const rows: string[][] = [];
  for (const s of r.series) {
    for (const to of s.steps.slice(1)) {
      const base = find(s.id, to, 'nginx-zstd', '100mbit');
      rows.push([
        s.title,
        to,
        ...SYSTEMS.flatMap(([id]) => {
          const slow = find(s.id, to, id, '100mbit');
          const fast = find(s.id, to, id, 'loopback');
          const share = slow && base ? ` (${times(slow.bytes / base.bytes)})` : '';
          return [
            slow ? `${mb(slow.bytes)}${share}` : '-',
            slow ? seconds(slow.seconds) : '-',
            fast ? seconds(fast.seconds) : '-',
          ];
        }),
      ]);
    }
  }
  md.push(
    table(
      [
        'series',
        'release fetched',
        ...SYSTEMS.flatMap(([, label]) => [`${label}: bytes`, `${label}: 100 Mbit/s`, `${label}: loopback`]),
      ],
      rows,
    ),
    '',
    `A machine holding the release before fetches this one with \`nix copy --from\` (stock Nix 2.8). Bytes are what`,
    `came from the server, counted by a relay (\`bench/relay.ts\`) between the two, with the share of what nginx sent`,
    `in brackets; times are with the relay holding the link to ${LINK_BITS_PER_SECOND / 1e6} Mbit/s each way, and on loopback`,
    'through the same relay unthrottled. `narwhal substituter` runs on the machine, in front of the relay, with an',
    "empty chunk cache: what it does not fetch comes from the previous release in the machine's store.",
    '',
  );
  const pushRows = r.series.flatMap((s) =>
    s.steps.slice(1).map((to) => {
      const nix = u.push.find((p) => p.series === s.id && p.to === to && p.system === 'nix-copy');
      const ours = u.push.find((p) => p.series === s.id && p.to === to && p.system === 'narwhal-push');
      return [
        s.title,
        to,
        nix ? mb(nix.bytes) : '-',
        nix ? seconds(nix.seconds) : '-',
        ours ? mb(ours.bytes) : '-',
        ours ? seconds(ours.seconds) : '-',
        nix && ours ? times(ours.bytes / nix.bytes) : '-',
      ];
    }),
  );
  md.push(
    table(
      [
        'series',
        'release pushed',
        'nix copy --to ?compression=zstd: bytes',
        'time',
        'narwhal push: bytes',
        'time',
        'bytes vs nix copy',
      ],
      pushRows,
    ),
    '',
    'Each into a Narwhal of its own that received every release before, the same way; bytes from the client to the',
    'server counted by the relay (loopback, unthrottled).',
    `The whole dataset pushed into an empty Narwhal, one push per series: \`narwhal push\` ${seconds(u.wholePushSeconds)},`,
    u.wholeCopySeconds === undefined
      ? '`nix copy --to` Narwhal: see the push table.'
      : `\`nix copy --to ?compression=zstd\` ${seconds(u.wholeCopySeconds)} (each into a fresh server, in this run).`,
    '',
  );
  return md;
}
