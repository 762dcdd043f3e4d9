/**
 * Figure 7 (upgrades, issue 20): a machine holding release k fetches release k+1, and a cache
 * holding release k receives release k+1. Bytes are counted by a relay between client and server
 * (bench/relay.ts); time is taken with the relay holding the link to 100 Mbit/s, and on loopback.
 * Fetching: stock Nix from nginx's static zstd cache, stock Nix from Narwhal, and stock Nix
 * through `narwhal substituter` on that machine. Pushing: `nix copy --to` Narwhal against
 * `narwhal push`, each into a Narwhal of its own that received the releases before.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset, SeriesData } from './dataset.ts';
import { nixEnv, run } from './exec.ts';
import type { PushUpgrade, Upgrade, UpgradeLink } from './results.ts';
import { startRelay } from './relay.ts';
import {
  type NarwhalServer,
  narwhalPush,
  pushClientConfig,
  startNarwhal,
  startSubstituter,
} from './systems/narwhal.ts';
import { nixCopyFrom, nixCopyTo } from './systems/static-cache.ts';

/** The link the throttled figures are taken on. */
export const LINK_BITS_PER_SECOND = 100e6;

export interface UpgradeFigures {
  fetch: Upgrade[];
  push: PushUpgrade[];
  /** The whole dataset pushed into an empty Narwhal by `narwhal push`, seconds (compare: nix copy --to). */
  wholePushSeconds: number;
  /** `nix copy --to` of the same, series by series, in the same run. */
  wholeCopySeconds: number;
}

export async function measureUpgrades(
  ds: Dataset,
  sources: { nginxZstd: string; narwhal: string },
  work: string,
  log: (line: string) => void,
): Promise<UpgradeFigures> {
  const fetch: Upgrade[] = [];
  for (const link of ['100mbit', 'loopback'] as const) {
    for (const s of ds.series) {
      for (let k = 0; k + 1 < s.steps.length; k++) {
        log(`upgrades: ${s.id} ${s.steps[k]} -> ${s.steps[k + 1]} (${link})`);
        const rows = await fetchUpgrade(s, k, link, sources, join(work, 'upgrades'));
        fetch.push(...rows.map(({ stats: _, ...row }) => row as Upgrade));
      }
    }
  }
  const push = await pushUpgrades(ds, join(work, 'upgrades-push'), log);
  const whole = await wholePush(ds, join(work, 'upgrades-whole'), log);
  return { fetch, push, wholePushSeconds: whole.pushSeconds, wholeCopySeconds: whole.copySeconds };
}

const bytesOf = (s: SeriesData, paths: string[]): number =>
  s.nars.filter((n) => paths.includes(n.storePath)).reduce((sum, n) => sum + n.narSize, 0);

/** How a machine fetches: a system of the report, or `narwhal substituter` of another checkout from its own server (bench/substituter-speed.ts). */
export type FetchSystem = Upgrade['system'] | { id: string; substituterBin: string; narwhal: string };

/** Release k+1 fetched by a machine holding release k, from each source through a relay. */
export async function fetchUpgrade(
  s: SeriesData,
  k: number,
  link: UpgradeLink,
  sources: { nginxZstd: string; narwhal: string },
  work: string,
  systems: readonly FetchSystem[] = ['nginx-zstd', 'narwhal', 'substituter'],
): Promise<(Omit<Upgrade, 'system'> & { system: string; stats?: Record<string, number> })[]> {
  const [held, wanted] = [s.stepPaths[k], s.stepPaths[k + 1]];
  const narBytes = bytesOf(s, wanted);
  const figures: (Omit<Upgrade, 'system'> & { system: string; stats?: Record<string, number> })[] = [];
  const rate = link === '100mbit' ? LINK_BITS_PER_SECOND : undefined;
  for (const how of systems) {
    const system = typeof how === 'string' ? how : how.id;
    const bin = typeof how === 'string' ? undefined : how.substituterBin;
    const narwhal = typeof how === 'string' ? sources.narwhal : how.narwhal;
    const machine = join(work, `${s.id}-${k}-${system}-${link}`);
    await rm(machine, { recursive: true, force: true });
    const env = nixEnv(join(machine, 'home'));
    // The machine holds release k, fetched directly (not measured).
    await nixCopyFrom(sources.nginxZstd, join(machine, 'root'), held, env, bytesOf(s, held));
    const relay = await startRelay(new URL(system === 'nginx-zstd' ? sources.nginxZstd : narwhal).origin, rate);
    const path = new URL(system === 'nginx-zstd' ? sources.nginxZstd : narwhal).pathname;
    const substituter =
      system === 'substituter' || bin
        ? await startSubstituter(`${relay.url}${path}`, join(machine, 'root'), join(machine, 'chunks'), env, bin)
        : undefined;
    try {
      const from = substituter?.url ?? `${relay.url}${path}`;
      // A fresh client cache: Nix caches narinfos per URL.
      const seconds = await nixCopyFrom(from, join(machine, 'root'), wanted, nixEnv(join(machine, 'home2')), narBytes);
      const stats = await substituter?.stats().catch(() => undefined);
      figures.push({
        series: s.id,
        to: s.steps[k + 1],
        system,
        link,
        seconds,
        bytes: relay.bytesDown,
        narBytes,
        stats,
      });
    } finally {
      await substituter?.stop();
      await relay.close();
      await rm(machine, { recursive: true, force: true });
    }
  }
  return figures;
}

/** Each release pushed into a Narwhal holding the releases before it: nix copy --to against narwhal push. */
export async function pushUpgrades(ds: Dataset, work: string, log: (line: string) => void): Promise<PushUpgrade[]> {
  const figures: PushUpgrade[] = [];
  for (const system of ['nix-copy', 'narwhal-push'] as const) {
    const server = await startNarwhal(join(work, system));
    const relay = await startRelay(new URL(server.cacheUrl).origin);
    const cacheUrl = `${relay.url}/main`;
    const home = join(work, `client-${system}`);
    await mkdir(home, { recursive: true });
    const env = nixEnv(home, await pushClientConfig(server, home));
    try {
      for (const s of ds.series) {
        for (const [k, paths] of s.stepPaths.entries()) {
          relay.reset();
          const seconds =
            system === 'nix-copy'
              ? await nixCopyTo(`${cacheUrl}?compression=zstd`, paths, env, bytesOf(s, paths))
              : (await narwhalPush(cacheUrl, server.token, paths, env)).seconds;
          if (k > 0) {
            figures.push({
              series: s.id,
              to: s.steps[k],
              system,
              seconds,
              bytes: relay.bytesUp,
              narBytes: bytesOf(s, paths),
            });
          }
        }
        log(`upgrades: pushed ${s.id} release after release (${system})`);
      }
    } finally {
      await relay.close();
      await server.stop();
      await rm(join(work, system), { recursive: true, force: true });
    }
  }
  return figures;
}

/**
 * The whole dataset into an empty Narwhal, one push per series, without a relay: `nix copy --to
 * ?compression=zstd` and then `narwhal push`, each into a fresh server. The push table's `nix copy`
 * goes a release at a time (for the delta pass's order), so this row times its own baseline.
 */
export async function wholePush(
  ds: Dataset,
  work: string,
  log: (line: string) => void,
): Promise<{ pushSeconds: number; copySeconds: number }> {
  const timed = async (how: string, push: (server: NarwhalServer, dir: string) => Promise<number>) => {
    const dir = join(work, how);
    const server = await startNarwhal(join(dir, 'server'));
    try {
      const seconds = await push(server, dir);
      log(`upgrades: ${how} of the whole dataset took ${seconds.toFixed(1)} s`);
      return seconds;
    } finally {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
      await run('sync', []);
    }
  };
  const copySeconds = await timed('nix copy --to', async (server, dir) => {
    const env = nixEnv(join(dir, 'client'), await pushClientConfig(server, join(dir, 'client')));
    let seconds = 0;
    for (const s of ds.series)
      seconds += await nixCopyTo(`${server.cacheUrl}?compression=zstd`, s.paths, env, s.narBytes);
    return seconds;
  });
  const pushSeconds = await timed('narwhal push', async (server, dir) => {
    const env = nixEnv(join(dir, 'client'));
    let seconds = 0;
    for (const s of ds.series) seconds += (await narwhalPush(server.cacheUrl, server.token, s.paths, env)).seconds;
    return seconds;
  });
  return { pushSeconds, copySeconds };
}
