/**
 * Figure 5 (memory): peak RSS (VmHWM) of a Narwhal server process per phase, each phase in its own
 * process so that one phase's peak cannot hide in another's: ingesting the largest NAR, serving it,
 * and ingesting a synthetic NAR of real bytes (2 GiB in the full and quick modes).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset } from './dataset.ts';
import { run } from './exec.ts';
import { putNar } from './measure-ingest.ts';
import type { MemoryFigure } from './results.ts';
import { realFiles, writeSyntheticNar } from './synthetic-nar.ts';
import { startNarwhal } from './systems/narwhal.ts';

/**
 * `servedDataDir` is a data directory that holds the whole dataset with its narinfos (NARs are
 * served only through a cache's paths), for the serving phase.
 */
export async function measureMemory(
  ds: Dataset,
  syntheticBytes: number,
  work: string,
  servedDataDir: string,
  log: (line: string) => void,
): Promise<{ memory: MemoryFigure[]; syntheticBytes: number }> {
  const memory: MemoryFigure[] = [];
  const nar = ds.largest;
  const dataDir = join(work, 'narwhal-memory');

  log('memory: ingest the largest NAR into a fresh server');
  let server = await startNarwhal(dataDir);
  try {
    memory.push({ id: 'idle', label: 'idle after start', peakRssBytes: await server.peakRss(), narBytes: 0 });
    const seconds = await putNar(server, nar);
    memory.push({
      id: 'ingest-largest',
      label: `PUT of the largest NAR (${nar.storePath.slice(44)})`,
      peakRssBytes: await server.peakRss(),
      narBytes: nar.narSize,
      seconds,
    });
  } finally {
    await server.stop();
  }

  await rm(dataDir, { recursive: true, force: true });

  log('memory: serve the largest NAR from a restarted server');
  server = await startNarwhal(servedDataDir);
  try {
    let seconds = 0;
    const narinfo = await (await fetch(`${server.cacheUrl}/${nar.hashPart}.narinfo`)).text();
    const narUrl = /^URL: (\S+)$/m.exec(narinfo)?.[1];
    if (narUrl === undefined) throw new Error(`no narinfo for ${nar.storePath} in ${servedDataDir}`);
    for (const path of [narUrl, `nar/${nar.narHash}.nar`]) {
      const url = `${server.cacheUrl}/${path}`;
      const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', url]);
      if (r.stdout.trim() !== '200') throw new Error(`GET ${url} answered ${r.stdout.trim()}`);
      seconds += r.seconds;
    }
    memory.push({
      id: 'serve-largest',
      label: 'GET of the largest NAR by its narinfo URL, then as .nar',
      peakRssBytes: await server.peakRss(),
      narBytes: nar.narSize,
      seconds,
    });
  } finally {
    await server.stop();
  }

  log(`memory: write a synthetic ${(syntheticBytes / 2 ** 30).toFixed(2)} GiB NAR from the dataset's files`);
  const synthetic = await writeSyntheticNar(
    join(work, 'synthetic.nar'),
    syntheticBytes,
    await realFiles(ds.series.flatMap((s) => s.paths)),
  );
  log('memory: ingest it into a fresh server');
  const bigDir = join(work, 'narwhal-synthetic');
  server = await startNarwhal(bigDir);
  try {
    const seconds = await putNar(server, {
      storePath: 'synthetic',
      hashPart: 'synthetic',
      file: synthetic.file,
      narHash: synthetic.narHash,
      narSize: synthetic.narSize,
    });
    memory.push({
      id: 'ingest-synthetic',
      label: `PUT of a synthetic NAR (${synthetic.entries} real files, varied)`,
      peakRssBytes: await server.peakRss(),
      narBytes: synthetic.narSize,
      seconds,
    });
  } finally {
    await server.stop();
    await rm(bigDir, { recursive: true, force: true });
    await rm(synthetic.file, { force: true });
  }
  return { memory, syntheticBytes: synthetic.narSize };
}
