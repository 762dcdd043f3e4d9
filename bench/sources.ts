/**
 * The package trees the dataset is made of: npm tarballs fetched once with `npm pack` into the
 * git-ignored .cache/bench/, unpacked there, and trees copied from this machine.
 */
import { cp, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { run } from './exec.ts';
import type { PackageSource } from './modes.ts';

export const REPO = resolve(import.meta.dirname, '..');
export const CACHE_DIR = join(REPO, '.cache/bench');

/** A file-system-safe name for a source, also the store path name it gets when added. */
export function sourceKey(source: PackageSource): string {
  if (source.kind === 'local') return `local-${source.id}`;
  return `${source.pkg.replace(/^@/, '').replace(/\//g, '-')}-${source.version}`;
}

export function sourceLabel(source: PackageSource): string {
  return source.kind === 'npm' ? `${source.pkg}@${source.version}` : `${source.id} (local)`;
}

/** Returns a directory holding the source's files, fetching and unpacking it if needed. */
export async function materialize(source: PackageSource, log: (line: string) => void): Promise<string> {
  const key = sourceKey(source);
  const dir = join(CACHE_DIR, 'unpacked', key);
  if (source.kind === 'local') {
    await rm(dir, { recursive: true, force: true });
    for (const entry of source.entries) {
      const from = isAbsolute(entry.from) ? entry.from : join(REPO, entry.from);
      const limit = source.maxFileBytes;
      await cp(from, join(dir, entry.to), {
        recursive: true,
        dereference: true,
        filter: async (path) =>
          limit === undefined || (await stat(path)).isDirectory() || (await stat(path)).size <= limit,
      });
    }
    return dir;
  }
  if (existsSync(dir)) return dir;
  const tarball = await fetchTarball(source, key, log);
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', partial, '--strip-components=1', '--no-same-owner']);
  await rename(partial, dir);
  return dir;
}

async function fetchTarball(
  source: PackageSource & { kind: 'npm' },
  key: string,
  log: (line: string) => void,
): Promise<string> {
  const tarball = join(CACHE_DIR, 'npm', `${key}.tgz`);
  if (existsSync(tarball)) return tarball;
  const tmp = join(CACHE_DIR, 'npm', `${key}.download`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  log(`fetching ${source.pkg}@${source.version} from the npm registry`);
  await run('npm', ['pack', `${source.pkg}@${source.version}`, '--pack-destination', tmp, '--silent'], { cwd: tmp });
  const files = (await readdir(tmp)).filter((f) => f.endsWith('.tgz'));
  if (files.length !== 1) throw new Error(`npm pack ${source.pkg}@${source.version} left ${files.length} tarballs`);
  await rename(join(tmp, files[0]), tarball);
  await rm(tmp, { recursive: true, force: true });
  return tarball;
}
