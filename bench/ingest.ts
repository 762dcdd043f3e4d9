/**
 * The ingest phase of the benchmark alone (for working on ingest speed): builds or reuses the
 * dataset of a mode, runs measureIngest and prints each system's median time and its ratio to
 * `casync make`.
 *
 *   node bench/ingest.ts [--quick] [--rounds N] [--work DIR]
 */
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildDataset } from './dataset.ts';
import { ensureTools } from './environment.ts';
import { nixEnv } from './exec.ts';
import { rate, seconds, table, times } from './format.ts';
import { measureIngest } from './measure-ingest.ts';
import { MODES } from './modes.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
    work: { type: 'string' },
  },
  strict: true,
});
const mode = MODES[values.quick ? 'quick' : 'full'];
const work = resolve(values.work ?? join(tmpdir(), `narwhal-bench-ingest-${mode.name}`));
const t0 = performance.now();
const log = (line: string): void => {
  process.stderr.write(`[ingest ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
};

await ensureTools(log);
await mkdir(work, { recursive: true });
const ds = await buildDataset(mode, work, nixEnv(join(work, 'clients', 'dataset')), log);
log(`dataset: ${ds.totalPaths} store paths, ${(ds.totalNarBytes / 1e6).toFixed(1)} MB of NAR`);
const { ingest, memory } = await measureIngest(ds, work, Number(values.rounds), log);
const casync = ingest.find((system) => system.id === 'casync')!.seconds.total;
process.stdout.write(
  `${table(
    ['system', 'seconds', 'throughput', 'casync make / system'],
    ingest.map((system) => [
      system.label,
      seconds(system.seconds.total),
      rate(ds.totalNarBytes, system.seconds.total),
      times(casync / system.seconds.total),
    ]),
  )}\npeak RSS of the Narwhal server while PUT-all: ${(memory[0].peakRssBytes / 1e6).toFixed(0)} MB\n`,
);
