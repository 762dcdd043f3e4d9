/**
 * TLS and HTTP/2 (issue 21): real `nix copy --from https://...` of a closure of many small paths
 * with Nix's `http2` setting on and off, on loopback and through a relay that adds 20 ms of round
 * trip (bench/relay.ts: this machine's kernel has no netem qdisc for `tc`); and `nix copy --from`
 * of the whole dataset over TLS against plain HTTP, from two servers on the same data dir.
 *
 *   node bench/measure-tls.ts [--tiny|--quick]   standalone: builds the dataset, pushes it,
 *                                                measures, prints the tables (docs/benchmarks.md)
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeTestCertificates } from '../test/helpers/tls-certs.ts';
import { buildDataset, type Dataset } from './dataset.ts';
import { nixEnv, run } from './exec.ts';
import { medianBy } from './median.ts';
import { MODES, type ModeName } from './modes.ts';
import { startRelay } from './relay.ts';
import type { TargetResult, TlsClosureFigure, TlsFigures } from './results.ts';
import { pushClientConfig, startNarwhal, type NarwhalServer } from './systems/narwhal.ts';
import { renderTls } from './report-tls.ts';

/** Paths in the closure and rounds per figure, by bench mode. */
const SIZES: Record<ModeName, { paths: number; rounds: number }> = {
  tiny: { paths: 20, rounds: 1 },
  quick: { paths: 200, rounds: 3 },
  full: { paths: 500, rounds: 5 },
};

/** Half the added round trip: the relay holds data this long each way. */
const ONE_WAY_DELAY_MS = 10;

/**
 * Measures with two more servers on `dataDir` (which holds the dataset in cache `main`): one over
 * plain HTTP, one over TLS. `clientsDir` is scratch space for certificates, stores and clients.
 */
export async function measureTls(
  ds: Dataset,
  dataDir: string,
  clientsDir: string,
  modeName: ModeName,
  log: (line: string) => void,
): Promise<TlsFigures> {
  const { paths: pathCount, rounds } = SIZES[modeName];
  const dir = join(clientsDir, 'tls');
  await mkdir(dir, { recursive: true });
  const certs = await makeTestCertificates(dir);
  const plain = await startNarwhal(dataDir);
  let tls: NarwhalServer | undefined;
  try {
    tls = await startNarwhal(dataDir, ['--tls-cert', certs.cert, '--tls-key', certs.key]);
    const client = (name: string, extra: string[] = []) => ({
      ...nixEnv(join(dir, 'clients', name), extra),
      NIX_SSL_CERT_FILE: certs.ca,
    });
    const root = await pushSmallClosure(plain, join(dir, 'closure'), pathCount, client, log);
    const stores: string[] = [];
    let copies = 0;
    /** One `nix copy --from` into a fresh store by a fresh client; its seconds. */
    const copy = async (from: string, paths: string[], options: string[]): Promise<number> => {
      const name = `copy-${++copies}`;
      const store = join(dir, 'stores', name);
      stores.push(store);
      const env = client(name);
      await run('sync', []);
      const { seconds } = await run(
        'nix',
        ['copy', ...options, '--from', from, '--to', store, '--no-check-sigs', ...paths],
        { env, timeoutSeconds: 1800 },
      );
      // Every path must have arrived: a fast copy of nothing measures nothing.
      await run('nix', ['path-info', '--store', store, ...paths], { env, stdout: 'ignore' });
      return seconds;
    };

    const closure: TlsClosureFigure[] = [];
    for (const link of ['loopback', '20 ms RTT'] as const) {
      const relay =
        link === 'loopback' ? undefined : await startRelay(new URL(tls.cacheUrl).origin, undefined, ONE_WAY_DELAY_MS);
      try {
        const base = relay ? `${relay.url.replace(/^http:/, 'https:')}/main` : tls.cacheUrl;
        const times = new Map<boolean, number[]>([
          [true, []],
          [false, []],
        ]);
        for (let round = 1; round <= rounds; round++) {
          for (const http2 of [true, false]) {
            log(
              `tls: nix copy --from ${link} with http2 = ${http2}, ${pathCount + 1} paths (round ${round} of ${rounds})`,
            );
            times.get(http2)!.push(await copy(base, [root], ['--option', 'http2', String(http2)]));
          }
        }
        for (const [http2, t] of times) closure.push({ link, http2, seconds: medianBy(t, (x) => x) });
      } finally {
        await relay?.close();
      }
    }

    const datasetPaths = ds.series.flatMap((s) => s.paths);
    const plainTimes: number[] = [];
    const tlsTimes: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      log(`tls: nix copy --from the dataset over plain HTTP and over TLS (round ${round} of ${rounds})`);
      plainTimes.push(await copy(plain.cacheUrl, datasetPaths, []));
      tlsTimes.push(await copy(tls.cacheUrl, datasetPaths, []));
    }
    for (const store of stores) await rm(store, { recursive: true, force: true });
    return {
      smallPaths: pathCount + 1,
      closure,
      dataset: { plainSeconds: medianBy(plainTimes, (x) => x), tlsSeconds: medianBy(tlsTimes, (x) => x) },
      rounds,
    };
  } finally {
    await tls?.stop();
    await plain.stop();
  }
}

/**
 * A closure of `count` small paths (a few hundred bytes each) under one root that refers to them
 * all, built locally and pushed to the server's cache `main`. Returns the root.
 */
async function pushSmallClosure(
  server: NarwhalServer,
  dir: string,
  count: number,
  client: (name: string, extra?: string[]) => NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<string> {
  log(`tls: building and pushing a closure of ${count} small paths`);
  const nonce = `${process.pid}-${Date.now()}`;
  for (let i = 0; i < count; i++) {
    await mkdir(join(dir, `p${i}`), { recursive: true });
    await writeFile(join(dir, `p${i}`, 'file'), `small path ${i} of ${nonce}\n${'x'.repeat(200 + i)}\n`);
  }
  const deps = Array.from({ length: count }, (_, i) => `./p${i}`).join(' ');
  await writeFile(
    join(dir, 'closure.nix'),
    `derivation {
      name = "tls-bench-root"; system = builtins.currentSystem; builder = "/bin/sh";
      deps = [ ${deps} ];
      args = [ "-c" "echo $deps > $out" ];
    }\n`,
  );
  const builder = client('closure-builder', await pushClientConfig(server, join(dir, 'push-client')));
  const root = (await run('nix-build', ['--no-out-link', join(dir, 'closure.nix')], { env: builder })).stdout.trim();
  await run('nix', ['copy', '--to', server.cacheUrl, root], { env: builder });
  return root;
}

/** The issue's target: the dataset over TLS at most 1.2x the time of plain HTTP. */
export function judgeTlsTargets(f: TlsFigures): TargetResult[] {
  const ratio = f.dataset.tlsSeconds / f.dataset.plainSeconds;
  return [
    {
      issue: 21,
      name: '`nix copy --from` of the dataset over TLS, against plain HTTP',
      measured: `${ratio.toFixed(2)}x (${f.dataset.tlsSeconds.toFixed(1)} s against ${f.dataset.plainSeconds.toFixed(1)} s)`,
      required: '<= 1.2x',
      status: ratio <= 1.2 ? 'met' : 'missed',
    },
  ];
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { tiny: { type: 'boolean', default: false }, quick: { type: 'boolean', default: false } },
    strict: true,
  });
  const modeName: ModeName = values.tiny ? 'tiny' : values.quick ? 'quick' : 'full';
  const work = join(tmpdir(), `narwhal-bench-tls-${modeName}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const t0 = performance.now();
  const log = (line: string): void =>
    void process.stderr.write(`[tls ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  try {
    const datasetClient = nixEnv(join(work, 'clients', 'dataset'));
    const ds = await buildDataset(MODES[modeName], work, datasetClient, log);
    const dataDir = join(work, 'narwhal');
    const server = await startNarwhal(dataDir);
    try {
      log(`pushing the dataset (${ds.totalPaths} paths) with nix copy --to`);
      const env = nixEnv(join(work, 'clients', 'push'), await pushClientConfig(server, join(work, 'clients', 'push')));
      // zstd, not Nix's default xz, which spends minutes compressing what the server decompresses.
      const to = `${server.cacheUrl}?compression=zstd`;
      await run('nix', ['copy', '--to', to, ...ds.series.flatMap((s) => s.paths)], { env });
    } finally {
      await server.stop();
    }
    const figures = await measureTls(ds, dataDir, join(work, 'clients'), modeName, log);
    process.stdout.write(`${renderTls(figures).join('\n')}\n\n`);
    for (const t of judgeTlsTargets(figures))
      process.stdout.write(`${t.name}: ${t.measured} (${t.required}, ${t.status})\n`);
    process.stdout.write(`${JSON.stringify(figures)}\n`);
    return 0;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
