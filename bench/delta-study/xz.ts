/**
 * `xz -9` of each whole NAR (a static xz cache's files, without narinfos), one process at a time,
 * cached by NAR hash in the study's work directory so reruns and parallel runs reuse the sizes.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NarFile } from '../dataset.ts';

const CACHE_FILE = 'xz9-sizes.json';

function loadCache(workDir: string): Record<string, number> {
  const file = join(workDir, CACHE_FILE);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>) : {};
}

/**
 * Bytes of `xz -9 -T1` output for one file. The shell reads the file and counts the output itself,
 * so xz runs at full speed while this process's event loop is busy with synchronous compression.
 */
function xzSize(file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', 'nice -n 10 xz -9 -T1 -c < "$1" | wc -c', 'sh', file], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 && /^\s*\d+\s*$/.test(out)
        ? resolve(Number(out.trim()))
        : reject(new Error(`xz of ${file} failed (${code})`)),
    );
  });
}

/** xz -9 sizes of the given NARs by narHash, computing (one at a time) those not cached yet. */
export async function xzSizes(
  nars: NarFile[],
  workDir: string,
  log: (line: string) => void,
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const nar of nars) {
    let size = loadCache(workDir)[nar.narHash];
    if (size === undefined) {
      const t0 = performance.now();
      size = await xzSize(nar.file);
      log(
        `xz -9 ${nar.hashPart}: ${(nar.narSize / 1e6).toFixed(1)} MB -> ${(size / 1e6).toFixed(2)} MB in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
      );
      const cache = loadCache(workDir);
      cache[nar.narHash] = size;
      writeFileSync(join(workDir, CACHE_FILE), JSON.stringify(cache, null, 1));
    }
    out.set(nar.narHash, size);
  }
  return out;
}

if (import.meta.main) {
  const { studyDataset, studyWorkDir } = await import('./dataset.ts');
  const mode = (process.argv[2] ?? 'quick') as 'quick' | 'full';
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const ds = await studyDataset(mode, log);
  // Smallest series first, so partial results are useful early.
  const only = process.argv[3]?.split(',');
  const nars = [...ds.series]
    .filter((s) => only === undefined || only.includes(s.id))
    .sort((a, b) => a.narBytes - b.narBytes)
    .flatMap((s) => s.nars);
  await xzSizes(nars, studyWorkDir(mode), log);
}
