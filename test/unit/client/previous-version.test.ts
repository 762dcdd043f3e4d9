/**
 * Which earlier version of a package `narwhal push` sends deltas against: with real store paths
 * added by Nix, the newest older version the cache holds, else the oldest newer one, else none;
 * every candidate is asked about (together), and a store listing serves several look-ups.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { previousVersion, StoreVersions } from '../../../src/client/push-bases.ts';
import { nixEnv, run, tempDir } from '../../e2e/harness.ts';

let work: { path: string; remove(): Promise<void> };
const pkg = `nwprev${randomBytes(6).toString('hex')}`;
const paths = new Map<string, string>();

before(async () => {
  work = await tempDir('previous-version');
  const env = nixEnv(work.path);
  for (const version of ['1.0', '1.1', '1.2', '1.10']) {
    const dir = join(work.path, `${pkg}-${version}`);
    await mkdir(dir);
    await writeFile(join(dir, 'file'), `release ${version}\n`);
    paths.set(version, (await run('nix-store', ['--add', dir], env)).trim());
  }
});

after(() => work?.remove());

test('the newest older version held, else the oldest newer one; every candidate is asked', async () => {
  const store = new StoreVersions();
  const asked: string[] = [];
  const holding =
    (...versions: string[]) =>
    async (path: string) => {
      asked.push(path);
      return versions.some((v) => paths.get(v) === path);
    };
  const of = (version: string) => paths.get(version)!;

  assert.equal((await previousVersion(of('1.2'), holding('1.0', '1.1', '1.10'), store))?.path, of('1.1'));
  assert.deepEqual(new Set(asked), new Set([of('1.0'), of('1.1'), of('1.10')]));
  assert.equal((await previousVersion(of('1.2'), holding('1.10'), store))?.path, of('1.10'));
  assert.equal((await previousVersion(of('1.0'), holding('1.2', '1.10'), store))?.path, of('1.2'));
  assert.equal(await previousVersion(of('1.2'), holding(), store), undefined);
  const found = await previousVersion(of('1.10'), holding('1.2'), store);
  assert.ok(found && found.narSize > 0);
});
