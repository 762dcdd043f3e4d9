/**
 * Where the time of one upgrade through `narwhal substituter` goes: the newest upgrade of a release
 * series (as bench/substituter-speed.ts picks it), fetched with `nix copy --from` by a machine
 * holding the release before, through this checkout's substituter run in this process (so that
 * `node --cpu-prof` profiles it), at 100 Mbit/s or on loopback. Prints a timeline: Nix's
 * requests, the NAR's first and last byte, and each batch's request, answer and end.
 *
 *   node bench/substituter-timeline.ts [--series node] [--link 100mbit] [--rounds 2] [--work DIR]
 */
import type { AddressInfo } from 'node:net';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { assemblyTrace } from '../src/client/nar-assembly.ts';
import { startSubstituter } from '../src/client/substituter.ts';
import { nixEnv } from './exec.ts';
import { MODES } from './modes.ts';
import { startRelay } from './relay.ts';
import { seriesInStore } from './series-in-store.ts';
import { pushClientConfig, startNarwhal } from './systems/narwhal.ts';
import { startNginx } from './systems/nginx.ts';
import { nixCopyFrom, nixCopyTo } from './systems/static-cache.ts';

const { values } = parseArgs({
  options: {
    series: { type: 'string', default: 'node' },
    link: { type: 'string', default: '100mbit' },
    rounds: { type: 'string', default: '2' },
    work: { type: 'string' },
  },
});
const work = values.work ?? join(tmpdir(), 'narwhal-bench-substituter-timeline');
const spec = MODES.full.series.find((s) => s.kind === 'releases' && s.id === values.series);
if (spec?.kind !== 'releases') throw new Error(`no release series ${values.series}`);
const s = await seriesInStore(spec, await readdir('/nix/store'));
const k = s.steps.length - 2;
const [held, wanted] = [s.stepPaths[k], s.stepPaths[k + 1]];
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });
const env = nixEnv(join(work, 'client'));
const bytes = s.nars[k].narSize + s.nars[k + 1].narSize;
await nixCopyTo(`file://${join(work, 'static', 'zstd')}?compression=zstd`, [...held, ...wanted], env, bytes);
const nginx = await startNginx(join(work, 'static'), join(work, 'nginx'));
const server = await startNarwhal(join(work, 'narwhal'));
try {
  const pushEnv = nixEnv(join(work, 'pusher'), await pushClientConfig(server, join(work, 'pusher')));
  await nixCopyTo(`${server.cacheUrl}?compression=zstd`, [...held, ...wanted], pushEnv, bytes);
  // Let the server prepare the upgrade's deltas (it waits for a second without uploads).
  await new Promise((r) => setTimeout(r, 15_000));
  for (let round = 0; round < Number(values.rounds); round++) {
    const machine = join(work, `machine-${round}`);
    await nixCopyFrom(`${nginx.url}/zstd`, join(machine, 'root'), held, nixEnv(join(machine, 'home')), bytes);
    const origin = new URL(server.cacheUrl);
    const relay = await startRelay(origin.origin, values.link === '100mbit' ? 100e6 : undefined);
    const sub = await startSubstituter({
      cacheUrl: `${relay.url}${origin.pathname}`,
      storeRoot: join(machine, 'root'),
      cacheDir: join(machine, 'chunks'),
      cacheBytes: 1 << 30,
    });
    sub.server.listen(0, '127.0.0.1');
    await new Promise((r) => sub.server.once('listening', r));
    const t0 = performance.now();
    const events: string[] = [];
    const at = (what: string): void => {
      events.push(`${((performance.now() - t0) / 1000).toFixed(3)} ${what}`);
    };
    assemblyTrace.on = at;
    const cpu0 = process.cpuUsage();
    const server0 = await cpuOf(server.pid);
    sub.server.on('request', (req, res) => {
      at(`nix asks ${req.url}`);
      let first = true;
      const write = res.write.bind(res);
      res.write = ((...args: Parameters<typeof res.write>) => {
        if (first) at(`first byte to nix (${req.url})`);
        first = false;
        return write(...args);
      }) as typeof res.write;
      res.on('finish', () => at(`answer finished (${req.url})`));
    });
    const port = (sub.server.address() as AddressInfo).port;
    const seconds = await nixCopyFrom(
      `http://127.0.0.1:${port}`,
      join(machine, 'root'),
      wanted,
      nixEnv(join(machine, 'home2')),
      bytes,
    );
    at('nix copy done');
    const own = process.cpuUsage(cpu0);
    console.log(
      `CPU: this process ${((own.user + own.system) / 1e6).toFixed(2)} s, server ${((await cpuOf(server.pid)) - server0).toFixed(2)} s`,
    );
    console.log(`round ${round + 1}: ${seconds.toFixed(2)} s, ${(relay.bytesDown / 1e6).toFixed(2)} MB`);
    console.log(events.join('\n'));
    console.log(JSON.stringify(sub.figures));
    sub.server.close();
    await relay.close();
    await rm(machine, { recursive: true, force: true });
  }
} finally {
  await server.stop();
  await nginx.stop();
}
await rm(work, { recursive: true, force: true });

/** Seconds of CPU a process has used (user and system, its threads included). */
async function cpuOf(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
