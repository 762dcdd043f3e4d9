/**
 * CPU seconds of pushing release series whole into an empty Narwhal, client and server apart:
 * `nix copy --to ?compression=zstd` against `narwhal push` with and without deltas, in the same
 * run, round after round. On this shared machine wall times follow the other jobs' load; CPU
 * seconds much less (docs/benchmarks.md, "Push speed"). The series are found in this machine's
 * Nix store as bench/push-deltas.ts finds them (a full bench run added them).
 *
 *   node bench/push-cpu.ts [--series node] [--rounds 2] [--work DIR] [--jobs 4] [--systems a,b]
 *
 * `--jobs` is `narwhal push --jobs`; `--systems` picks some of nix-copy, narwhal-push and
 * narwhal-push--no-deltas (all by default), e.g. to push under load round after round.
 *
 * Client: user + system seconds of the command and its children (GNU time); server: those of the
 * `narwhal serve` process over the push (/proc).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { nixEnv, run } from './exec.ts';
import { MODES } from './modes.ts';
import { sourceKey } from './sources.ts';
import { NARWHAL_BIN, narwhalEnv, pushClientConfig, startNarwhal } from './systems/narwhal.ts';

const { values } = parseArgs({
  options: {
    series: { type: 'string', default: 'node' },
    rounds: { type: 'string', default: '2' },
    work: { type: 'string', default: join(tmpdir(), 'narwhal-bench-push-cpu') },
    jobs: { type: 'string', default: '4' },
    systems: { type: 'string' },
  },
});
const wanted = values.series.split(',');

/** Per release of the series, the store path of that name with the largest NAR. */
async function seriesPaths(): Promise<string[]> {
  const store = await readdir('/nix/store');
  const paths: string[] = [];
  for (const spec of MODES.full.series) {
    if (spec.kind !== 'releases' || !wanted.includes(spec.id)) continue;
    for (const release of spec.releases) {
      const named = store.filter((e) => e.slice(33) === sourceKey(release)).map((e) => `/nix/store/${e}`);
      if (named.length === 0)
        throw new Error(`${sourceKey(release)} is not in /nix/store: run the full bench once first`);
      const { stdout } = await run('nix', [
        '--extra-experimental-features',
        'nix-command',
        'path-info',
        '--json',
        ...named,
      ]);
      const rows = JSON.parse(stdout) as { path: string; narSize: number }[];
      paths.push(rows.reduce((a, b) => (b.narSize > a.narSize ? b : a)).path);
    }
  }
  return paths;
}

/** User + system seconds of a process so far. */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

type System = 'nix-copy' | 'narwhal-push' | 'narwhal-push --no-deltas';

async function measure(system: System, paths: string[], work: string) {
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const server = await startNarwhal(join(work, 'server'));
  try {
    const before = cpuOf(server.pid);
    const started = performance.now();
    const command =
      system === 'nix-copy'
        ? ['nix', 'copy', '--to', `${server.cacheUrl}?compression=zstd`, ...paths]
        : [
            NARWHAL_BIN,
            'push',
            '--cache',
            server.cacheUrl,
            '--jobs',
            values.jobs,
            ...(system === 'narwhal-push' ? [] : ['--no-deltas']),
            ...paths,
          ];
    const env =
      system === 'nix-copy'
        ? nixEnv(join(work, 'client'), await pushClientConfig(server, join(work, 'client')))
        : { ...nixEnv(join(work, 'client')), PATH: narwhalEnv().PATH, NARWHAL_TOKEN: server.token };
    const timed = spawnSync('/usr/bin/time', ['-f', '%U %S', ...command], { env, encoding: 'utf8' });
    if (timed.status !== 0) {
      // spawnSync held this event loop: the server's stderr is read only now.
      await new Promise((resolve) => setTimeout(resolve, 500));
      throw new Error(
        `${command.join(' ')} failed: ${timed.stderr.slice(-2000)}\nserver: ${server.output().slice(-4000)}`,
      );
    }
    const [user, sys] = timed.stderr.trim().split('\n').pop()!.split(' ').map(Number);
    return { wall: (performance.now() - started) / 1000, client: user + sys, server: cpuOf(server.pid) - before };
  } finally {
    await server.stop();
    await rm(work, { recursive: true, force: true });
  }
}

const paths = await seriesPaths();
const systems = (['nix-copy', 'narwhal-push', 'narwhal-push --no-deltas'] as System[]).filter(
  (system) => !values.systems || values.systems.split(',').includes(system.replace(' ', '')),
);
const rows: Record<System, { wall: number; client: number; server: number }[]> = {
  'nix-copy': [],
  'narwhal-push': [],
  'narwhal-push --no-deltas': [],
};
for (let round = 0; round < Number(values.rounds); round++) {
  for (const system of systems) {
    const figures = await measure(system, paths, values.work);
    rows[system].push(figures);
    console.error(
      `round ${round + 1} ${system}: wall ${figures.wall.toFixed(1)} s, client ${figures.client.toFixed(1)} s, server ${figures.server.toFixed(1)} s CPU`,
    );
  }
}
const sum = (system: System, key: 'wall' | 'client' | 'server') => rows[system].reduce((a, r) => a + r[key], 0);
const copyCpu = sum('nix-copy', 'client') + sum('nix-copy', 'server') || Number.NaN;
console.log(`${values.series}, ${paths.length} paths, ${values.rounds} rounds (sums)`);
console.log('| system | wall | client CPU | server CPU | CPU vs nix copy |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const system of systems) {
  const cpu = sum(system, 'client') + sum(system, 'server');
  console.log(
    `| ${system} | ${sum(system, 'wall').toFixed(1)} s | ${sum(system, 'client').toFixed(1)} s | ${sum(system, 'server').toFixed(1)} s | ${(cpu / copyCpu).toFixed(2)}x |`,
  );
}
