/**
 * A store path's NAR as the substituter reads it from disk (store-layout.ts), against the NAR
 * `nix-store --dump` makes of the same tree: the same bytes whole and in any range, and a
 * fingerprint that changes when the tree does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { narBytes, narLayout, readNarRange } from '../../../src/client/store-layout.ts';

const STORE_PATH = '/nix/store/00000000000000000000000000000000-tree-1.0';

async function tree(): Promise<{ root: string; path: string; remove(): Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'narwhal-layout-'));
  const path = join(root, STORE_PATH);
  await mkdir(join(path, 'bin'), { recursive: true });
  await mkdir(join(path, 'share/empty'), { recursive: true });
  await writeFile(join(path, 'bin/tool'), Buffer.alloc(300_001, 7));
  await chmod(join(path, 'bin/tool'), 0o755);
  await writeFile(join(path, 'share/a.txt'), 'hello\n');
  await writeFile(join(path, 'share/B.txt'), '');
  await writeFile(join(path, 'share/é-accent'), 'x'.repeat(13));
  await symlink('../bin/tool', join(path, 'share/link'));
  return { root, path, remove: () => rm(root, { recursive: true, force: true }) };
}

const dump = (path: string): Buffer => execFileSync('nix-store', ['--dump', path], { maxBuffer: 1 << 26 });

test('the NAR read from the layout is the one nix-store --dump makes, whole and by range', async () => {
  const t = await tree();
  try {
    const expected = dump(t.path);
    const layout = await narLayout(t.root, STORE_PATH);
    assert.ok(layout);
    assert.equal(layout.size, expected.length);
    const parts: Uint8Array[] = [];
    for await (const part of narBytes(t.root, STORE_PATH, layout)) parts.push(part);
    assert.ok(Buffer.concat(parts).equals(expected));
    for (const [start, end] of [
      [0, 8],
      [100, 120_000],
      [expected.length - 900, expected.length],
      [5, expected.length],
    ]) {
      const range = await readNarRange(t.root, STORE_PATH, layout, start, end);
      assert.ok(Buffer.from(range).equals(expected.subarray(start, end)), `${start}-${end}`);
    }
  } finally {
    await t.remove();
  }
});

test('the fingerprint changes with a size, a mode or a name, and a shrunk file fails the read', async () => {
  const t = await tree();
  try {
    const first = (await narLayout(t.root, STORE_PATH))!;
    assert.equal((await narLayout(t.root, STORE_PATH))!.fingerprint, first.fingerprint);
    await writeFile(join(t.path, 'share/a.txt'), 'hello, world\n');
    const grown = (await narLayout(t.root, STORE_PATH))!;
    assert.notEqual(grown.fingerprint, first.fingerprint);
    await chmod(join(t.path, 'share/a.txt'), 0o755);
    assert.notEqual((await narLayout(t.root, STORE_PATH))!.fingerprint, grown.fingerprint);
    await writeFile(join(t.path, 'share/c.txt'), '');
    const named = (await narLayout(t.root, STORE_PATH))!;
    const parts: Uint8Array[] = [];
    for await (const part of narBytes(t.root, STORE_PATH, named)) parts.push(part);
    assert.ok(dump(t.path).equals(Buffer.concat(parts)));
    await writeFile(join(t.path, 'bin/tool'), 'short');
    await assert.rejects(readNarRange(t.root, STORE_PATH, named, 0, named.size));
    await rm(t.path, { recursive: true });
    assert.equal(await narLayout(t.root, STORE_PATH), undefined);
  } finally {
    await t.remove();
  }
});
