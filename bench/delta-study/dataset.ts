/**
 * The study's data: the bench's own series (bench/modes.ts), built by bench/dataset.ts into a
 * persistent work directory. The dataset's description is kept there as dataset.json, so later
 * runs (and the xz pass running beside the study) reuse the dumped NARs instead of dumping them
 * again under a reader's feet.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDataset, type Dataset } from '../dataset.ts';
import { nixEnv } from '../exec.ts';
import { MODES, type ModeName } from '../modes.ts';

export function studyWorkDir(mode: ModeName): string {
  return join(tmpdir(), `narwhal-delta-study-${mode}`);
}

export async function studyDataset(mode: ModeName, log: (line: string) => void): Promise<Dataset> {
  const work = studyWorkDir(mode);
  const manifest = join(work, 'dataset.json');
  if (existsSync(manifest)) {
    const ds = JSON.parse(readFileSync(manifest, 'utf8')) as Dataset;
    const intact = ds.series.every((s) =>
      s.nars.every((n) => existsSync(n.file) && statSync(n.file).size === n.narSize),
    );
    if (intact) return ds;
  }
  const ds = await buildDataset(MODES[mode], work, nixEnv(join(work, 'clients', 'dataset')), log);
  writeFileSync(manifest, JSON.stringify(ds));
  return ds;
}

if (import.meta.main) {
  const mode = (process.argv[2] ?? 'quick') as ModeName;
  const ds = await studyDataset(mode, (line) => process.stderr.write(`${line}\n`));
  for (const s of ds.series)
    process.stderr.write(`${s.id}: ${s.nars.length} NARs, ${(s.narBytes / 1e6).toFixed(1)} MB\n`);
}
