/**
 * The parts of `narwhal push` that need no server: where its token comes from, and the order in
 * which paths are pushed (a narinfo is accepted only after those of its references).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseNetrc, tokenFor } from '../../../src/client/credentials.ts';
import { type PathInfo, referencesFirst } from '../../../src/client/nix-paths.ts';

test('netrc entries: machine, default, login and password in any layout', () => {
  const text =
    'machine a.example login u password p1\n\nmachine  b.example\n  password p2 login v\ndefault password d\n';
  assert.deepEqual(parseNetrc(text), [
    { machine: 'a.example', login: 'u', password: 'p1' },
    { machine: 'b.example', password: 'p2', login: 'v' },
    { password: 'd' },
  ]);
});

test('the token: given outright, else NARWHAL_TOKEN, else the netrc entry for the host, else the default', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-netrc-'));
  const saved = process.env.NARWHAL_TOKEN;
  try {
    const netrc = join(dir, 'netrc');
    await writeFile(netrc, 'machine cache.example password from-netrc\ndefault password fallback\n');
    const server = new URL('http://cache.example:5000/main');
    delete process.env.NARWHAL_TOKEN;
    assert.equal(await tokenFor(server, 'given', [netrc]), 'given');
    assert.equal(await tokenFor(server, undefined, [join(dir, 'absent'), netrc]), 'from-netrc');
    assert.equal(await tokenFor(new URL('http://other.example/main'), undefined, [netrc]), 'fallback');
    assert.equal(await tokenFor(server, undefined, [join(dir, 'absent')]), undefined);
    process.env.NARWHAL_TOKEN = 'from-env';
    assert.equal(await tokenFor(server, undefined, [netrc]), 'from-env');
  } finally {
    if (saved === undefined) delete process.env.NARWHAL_TOKEN;
    else process.env.NARWHAL_TOKEN = saved;
    await rm(dir, { recursive: true, force: true });
  }
});

test('paths are pushed after the paths they refer to, self-references and outside paths ignored', () => {
  const info = (path: string, references: string[]): PathInfo => ({
    path,
    narHash: `sha256:${'0'.repeat(52)}`,
    narSize: 1,
    references,
    signatures: [],
  });
  const ordered = referencesFirst([
    info('/nix/store/top', ['/nix/store/top', '/nix/store/lib', '/nix/store/outside']),
    info('/nix/store/lib', ['/nix/store/libc']),
    info('/nix/store/libc', []),
  ]).map((i) => i.path);
  assert.deepEqual(ordered, ['/nix/store/libc', '/nix/store/lib', '/nix/store/top']);
});
