/**
 * Pull-through (issue 22): the dataset's paths in a signed xz file cache served by nginx, as
 * cache.nixos.org serves them, fetched by a fresh machine (`nix copy --from`, signatures checked)
 *
 *  - the first time through a Narwhal cache with that upstream, against fetching from the upstream
 *    directly (target: at most 1.2x);
 *  - the second time through the same cache, against nginx serving a static zstd cache of the same
 *    paths (target: at most 1.1x);
 *
 * and the bytes Narwhal stored for the pulled paths against the upstream's own NAR files. Each
 * round starts a fresh Narwhal; the medians of the rounds are kept.
 *
 * Servers and clients share the machine's cores, as in the other sections. With `--pin-servers`
 * (two cores or more) the servers (Narwhal with its xz, and nginx) run on the last core and the
 * clients on the others, as a cache and its clients would on machines of their own.
 *
 * Standalone: `node bench/measure-pull-through.ts [--tiny|--quick] [--rounds N] [--keep] [--pin-servers]` builds the
 * dataset and both static caches itself and prints the table (`--keep`: reuse them next time).
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildDataset, type Dataset } from './dataset.ts';
import { diskUsage } from './disk-usage.ts';
import { ensureTools } from './environment.ts';
import { nixEnv, run } from './exec.ts';
import { mb, seconds, table, times } from './format.ts';
import { medianBy } from './median.ts';
import { MODES, type ModeName } from './modes.ts';
import { NARWHAL_BIN, narwhalEnv, narwhalStats, startNarwhal } from './systems/narwhal.ts';
import { startNginx } from './systems/nginx.ts';
import { copyTimeout, fileStoreUrl, STATIC_CACHES } from './systems/static-cache.ts';

export interface PullThroughFigures {
  rounds: number;
  /** The servers on a core of their own, the clients on the others (see above). */
  pinned: boolean;
  /** Median seconds of `nix copy --from` of every path into a fresh store. */
  firstThroughNarwhal: number;
  upstreamDirect: number;
  secondThroughNarwhal: number;
  nginxZstd: number;
  /** What Narwhal's chunks of the pulled paths take (stored bytes), and the upstream's NAR files. */
  narwhalStoredBytes: number;
  upstreamNarBytes: number;
  narBytes: number;
}

/**
 * `staticRoot` holds the static caches of measure-push.ts (`xz/`, `zstd/`), unsigned: the upstream
 * and the zstd baseline are copies (hard links; narinfos rewritten, signed), the originals unchanged.
 */
export async function measurePullThrough(
  ds: Dataset,
  staticRoot: string,
  work: string,
  rounds: number,
  log: (line: string) => void,
  pinServers = false,
): Promise<PullThroughFigures> {
  const cores = availableParallelism();
  const pinned = pinServers && cores >= 2;
  const serverCore = String(cores - 1);
  const clientCores = `0-${cores - 2}`;
  const dir = join(work, 'pull-through');
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'served'), { recursive: true });
  const env = nixEnv(join(work, 'clients', 'pull-through'));
  const paths = ds.series.flatMap((s) => s.paths);
  const timeout = copyTimeout(ds.totalNarBytes);

  log('pull-through: signed copies of the static xz (the upstream) and zstd caches');
  await run('nix-store', ['--generate-binary-cache-key', 'upstream-1', join(dir, 'sk'), join(dir, 'pk')]);
  const publicKey = await readFile(join(dir, 'pk'), 'utf8');
  for (const kind of ['xz', 'zstd']) {
    const copy = join(dir, 'served', kind);
    await run('cp', ['-al', join(staticRoot, kind), copy]);
    // Nix replaces each narinfo with a new file, so the hard-linked originals stay unsigned.
    await run('nix', ['store', 'sign', '--store', `file://${copy}`, '--key-file', join(dir, 'sk'), ...paths], { env });
  }
  const upstreamDir = join(dir, 'served', 'xz');
  const upstreamNarBytes = (await diskUsage(join(upstreamDir, 'nar'))).apparent;

  const nginx = await startNginx(join(dir, 'served'), join(dir, 'nginx'));
  if (pinned) await pinProcessTree(nginx.pid, serverCore);
  const times: Record<'first' | 'direct' | 'second' | 'zstd', number[]> = {
    first: [],
    direct: [],
    second: [],
    zstd: [],
  };
  let narwhalStoredBytes = 0;
  try {
    for (let round = 1; round <= rounds; round++) {
      const dataDir = join(dir, `narwhal-${round}`);
      const narwhal = await startNarwhal(dataDir);
      if (pinned) await pinProcessTree(narwhal.pid, serverCore);
      try {
        await run(
          NARWHAL_BIN,
          [
            'cache',
            'create',
            'pt',
            '--data-dir',
            dataDir,
            '--public',
            '--upstream',
            `${nginx.url}/xz`,
            '--upstream-key',
            publicKey,
          ],
          { env: narwhalEnv() },
        );
        const pulled = narwhal.cacheUrl.replace(/\/main$/, '/pt');
        const fetchInto = async (label: string, url: string, kind: keyof typeof times): Promise<void> => {
          log(`pull-through: nix copy --from ${label} into a fresh store (round ${round} of ${rounds})`);
          const root = join(dir, `store-${kind}-${round}`);
          const client = nixEnv(join(dir, 'clients', `${kind}-${round}`));
          await run('sync', []);
          const copy = ['nix', 'copy', '--from', url, '--to', root, '--option', 'trusted-public-keys', publicKey];
          const { seconds: s } = await run(
            pinned ? 'taskset' : 'nix',
            [...(pinned ? ['-c', clientCores, ...copy] : copy.slice(1)), ...paths],
            { env: client, timeoutSeconds: timeout },
          );
          await run('nix', ['path-info', '--store', root, ...paths], { env: client, stdout: 'ignore' });
          await rm(root, { recursive: true, force: true });
          times[kind].push(s);
        };
        // The first fetch gets the upstream's files while Narwhal stores them behind it; what follows
        // starts once they are stored (a HEAD of a path's plain pull URL waits for that), so that
        // neither the baseline nor the second fetch shares the machine with the tail of the storing.
        const firstThrough = async (): Promise<void> => {
          await fetchInto('Narwhal pulling through, first time', pulled, 'first');
          for (const path of paths) {
            const hashPart = path.slice('/nix/store/'.length, '/nix/store/'.length + 32);
            await fetch(`${pulled}/pull/${hashPart}.nar`, { method: 'HEAD' });
          }
        };
        // Alternating, so that neither side always meets warm page caches first.
        if (round % 2 === 1) {
          await fetchInto('the upstream (nginx, xz) directly', `${nginx.url}/xz`, 'direct');
          await firstThrough();
        } else {
          await firstThrough();
          await fetchInto('the upstream (nginx, xz) directly', `${nginx.url}/xz`, 'direct');
        }
        await fetchInto('Narwhal pulling through, second time', pulled, 'second');
        await fetchInto('nginx, static zstd', `${nginx.url}/zstd`, 'zstd');
        narwhalStoredBytes = (await narwhalStats(dataDir)).storedBytes;
      } finally {
        await narwhal.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    }
  } finally {
    await nginx.stop();
  }
  const median = (kind: keyof typeof times): number => medianBy(times[kind], (t) => t);
  return {
    rounds,
    pinned,
    firstThroughNarwhal: median('first'),
    upstreamDirect: median('direct'),
    secondThroughNarwhal: median('second'),
    nginxZstd: median('zstd'),
    narwhalStoredBytes,
    upstreamNarBytes,
    narBytes: ds.totalNarBytes,
  };
}

/** Moves a running process, its threads and its children's, onto these cores (and what it starts later). */
async function pinProcessTree(pid: number, cores: string): Promise<void> {
  await run('taskset', ['-a', '-c', '-p', cores, String(pid)], { stdout: 'ignore' });
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  for (const child of children.split(' ').filter((c) => c !== '')) await pinProcessTree(Number(child), cores);
}

/** The figures as a Markdown table, with the two targets. */
export function pullThroughTable(f: PullThroughFigures): string {
  const first = f.firstThroughNarwhal / f.upstreamDirect;
  const second = f.secondThroughNarwhal / f.nginxZstd;
  return table(
    ['measure', 'Narwhal', 'baseline', 'ratio', 'target'],
    [
      [
        'first fetch: through Narwhal vs the xz upstream directly',
        seconds(f.firstThroughNarwhal),
        seconds(f.upstreamDirect),
        times(first),
        `<= 1.2x: ${first <= 1.2 ? 'met' : 'missed'}`,
      ],
      [
        'second fetch: through Narwhal vs nginx, static zstd',
        seconds(f.secondThroughNarwhal),
        seconds(f.nginxZstd),
        times(second),
        `<= 1.1x: ${second <= 1.1 ? 'met' : 'missed'}`,
      ],
      [
        `storage of the pulled paths (${mb(f.narBytes)} of NAR) vs the upstream's xz NAR files`,
        mb(f.narwhalStoredBytes),
        mb(f.upstreamNarBytes),
        times(f.narwhalStoredBytes / f.upstreamNarBytes),
        '-',
      ],
    ],
  );
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      tiny: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      // Keeps the work dir (dataset, static caches) for the next run, which then copies nothing again.
      keep: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      'pin-servers': { type: 'boolean', default: false },
    },
  });
  const modeName: ModeName = values.tiny ? 'tiny' : values.quick ? 'quick' : 'full';
  const mode = MODES[modeName];
  const work = join(tmpdir(), `narwhal-bench-pull-${modeName}`);
  const t0 = performance.now();
  const log = (line: string): void => {
    process.stderr.write(`[pull ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  };
  await ensureTools(log);
  if (!values.keep) await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const ds = await buildDataset(mode, work, nixEnv(join(work, 'clients', 'dataset')), log);
    log(`dataset: ${ds.totalPaths} store paths, ${(ds.totalNarBytes / 1e6).toFixed(1)} MB of NAR`);
    const paths = ds.series.flatMap((s) => s.paths);
    for (const kind of STATIC_CACHES.filter((k) => k.id === 'xz' || k.id === 'zstd')) {
      log(`static cache: nix copy --to file:// (${kind.params})`);
      await run('nix', ['copy', '--to', fileStoreUrl(join(work, 'static', kind.id), kind), ...paths], {
        env: nixEnv(join(work, 'clients', `static-${kind.id}`)),
        timeoutSeconds: copyTimeout(ds.totalNarBytes),
      });
    }
    const rounds = values.rounds === undefined ? mode.substituteRounds : Number(values.rounds);
    const figures = await measurePullThrough(ds, join(work, 'static'), work, rounds, log, values['pin-servers']);
    process.stdout.write(`${JSON.stringify(figures)}\n\n${pullThroughTable(figures)}\n`);
  } finally {
    if (!values.keep) await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
