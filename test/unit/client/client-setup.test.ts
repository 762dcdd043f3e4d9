/**
 * The file editing behind `narwhal login` and `narwhal use`: nix.conf and netrc lines added or
 * merged into what is there, nothing changed twice, private files kept private.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheAndToken } from '../../../src/client/credentials.ts';
import { addToNixConf } from '../../../src/client/nix-conf-edit.ts';
import { setNetrcPassword } from '../../../src/client/netrc-edit.ts';
import { writeFileAtomic } from '../../../src/client/private-file.ts';
import {
  readUserConfig,
  resolveCache,
  withServer,
  writeUserConfig,
  type UserConfig,
} from '../../../src/client/user-config.ts';

const URL_A = 'https://cache.example/main';
const KEY_A = 'cache.example-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';
const KEY_ROTATED = 'cache.example-1:AAAAdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'narwhal-client-setup-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test('nix.conf: an empty file gets the substituter, the key and the netrc file; a second run changes nothing', () => {
  const first = addToNixConf('', { substituter: URL_A, publicKey: KEY_A, netrcFile: '/etc/nix/netrc' });
  assert.equal(
    first.text,
    `extra-substituters = ${URL_A}\nextra-trusted-public-keys = ${KEY_A}\nnetrc-file = /etc/nix/netrc\n`,
  );
  assert.equal(first.changes.length, 3);
  const second = addToNixConf(first.text, { substituter: URL_A, publicKey: KEY_A, netrcFile: '/etc/nix/netrc' });
  assert.deepEqual(second, { text: first.text, changes: [] });
});

test('nix.conf: values merge into the existing extra- lines; other lines, comments and order stay', () => {
  const text = [
    '# my settings',
    'substituters = https://cache.nixos.org',
    'extra-substituters = https://other.example  # a comment',
    'max-jobs = 4',
    'extra-trusted-public-keys = other.example-1:abc=',
  ].join('\n');
  const edit = addToNixConf(text, { substituter: URL_A, publicKey: KEY_A });
  assert.equal(
    edit.text,
    [
      '# my settings',
      'substituters = https://cache.nixos.org',
      `extra-substituters = https://other.example ${URL_A} # a comment`,
      'max-jobs = 4',
      `extra-trusted-public-keys = other.example-1:abc= ${KEY_A}`,
      '',
    ].join('\n'),
  );
  assert.deepEqual(edit.changes, [
    `added ${URL_A} to extra-substituters`,
    `added ${KEY_A} to extra-trusted-public-keys`,
  ]);
});

test('nix.conf: a substituter already under substituters (trailing slash or not) is not added again; a rotated key is', () => {
  const text = `substituters = ${URL_A}/\ntrusted-public-keys = ${KEY_A}\n`;
  assert.deepEqual(addToNixConf(text, { substituter: URL_A, publicKey: KEY_A }).changes, []);
  const rotated = addToNixConf(text, { substituter: URL_A, publicKey: KEY_ROTATED });
  assert.equal(rotated.text, `${text}extra-trusted-public-keys = ${KEY_ROTATED}\n`);
});

test('nix.conf: a commented-out setting does not count, and another netrc-file is replaced', () => {
  const text = `# extra-substituters = ${URL_A}\nnetrc-file = /old/netrc\n`;
  const edit = addToNixConf(text, { substituter: URL_A, publicKey: KEY_A, netrcFile: '/new/netrc' });
  assert.equal(
    edit.text,
    `# extra-substituters = ${URL_A}\nnetrc-file = /new/netrc\nextra-substituters = ${URL_A}\nextra-trusted-public-keys = ${KEY_A}\n`,
  );
  assert.ok(edit.changes.includes('changed netrc-file from /old/netrc to /new/netrc'));
});

test('netrc: an entry is added, kept when it has the token, and its password replaced when not', () => {
  const added = setNetrcPassword('machine other.example login me password p\n', 'cache.example', 'narwhal', 's1');
  assert.equal(
    added.text,
    'machine other.example login me password p\nmachine cache.example login narwhal password s1\n',
  );
  assert.deepEqual(added.changes, ['added the token for cache.example']);
  assert.deepEqual(setNetrcPassword(added.text, 'cache.example', 'narwhal', 's1'), { text: added.text, changes: [] });
  const replaced = setNetrcPassword(added.text, 'cache.example', 'narwhal', 's2');
  assert.equal(
    replaced.text,
    'machine other.example login me password p\nmachine cache.example login narwhal password s2\n',
  );
  assert.deepEqual(replaced.changes, ['replaced the token for cache.example']);
  // No newline at the end of the file: the new entry still goes on a line of its own.
  assert.equal(
    setNetrcPassword('default password d', 'h', 'narwhal', 't').text,
    'default password d\nmachine h login narwhal password t\n',
  );
  assert.throws(
    () => setNetrcPassword('machine cache.example\n  login x\n  password old\n', 'cache.example', 'narwhal', 'new'),
    /spans several lines/,
  );
});

test('files: a new private file is 0600 whatever the umask, an existing nix.conf keeps its mode, a netrc is made private', async () => {
  const previous = process.umask(0o022);
  try {
    const secret = join(dir, 'new', 'netrc');
    await writeFileAtomic(secret, 'x\n', { mode: 0o600, forceMode: true });
    assert.equal((await stat(secret)).mode & 0o777, 0o600);
    await chmod(secret, 0o644);
    await writeFileAtomic(secret, 'y\n', { mode: 0o600, forceMode: true });
    assert.equal((await stat(secret)).mode & 0o777, 0o600);
    assert.equal(await readFile(secret, 'utf8'), 'y\n');

    const conf = join(dir, 'nix.conf');
    await writeFile(conf, 'a = b\n');
    await chmod(conf, 0o640);
    await writeFileAtomic(conf, 'a = c\n', { mode: 0o644 });
    assert.equal((await stat(conf)).mode & 0o777, 0o640);
    assert.equal(await readFile(conf, 'utf8'), 'a = c\n');
  } finally {
    process.umask(previous);
  }
});

test('login config: the first server is the default, --default moves it; written 0600 in a 0700 directory', async () => {
  let config: UserConfig = { servers: {} };
  config = withServer(config, 'home', { url: 'https://home.example/', token: 't1' }, false);
  config = withServer(config, 'work', { url: 'http://work.example:5000' }, false);
  assert.equal(config.default, 'home');
  assert.deepEqual(config.servers.home, { url: 'https://home.example', token: 't1' });
  assert.equal(withServer(config, 'work', { url: 'http://work.example:5000' }, true).default, 'work');
  assert.throws(() => withServer(config, 'x', { url: 'ftp://x' }, false), /http:\/\/ or https:\/\//);
  assert.throws(() => withServer(config, 'a/b', { url: 'http://x' }, false), /server name/);

  const file = join(dir, 'xdg', 'narwhal', 'config.json');
  await writeUserConfig(config, file);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal((await stat(join(dir, 'xdg', 'narwhal'))).mode & 0o777, 0o700);
  assert.deepEqual(await readUserConfig(file), config);
  assert.deepEqual(await readUserConfig(join(dir, 'absent.json')), { servers: {} });
  await writeFile(join(dir, 'bad.json'), '[1]');
  await assert.rejects(readUserConfig(join(dir, 'bad.json')), /not a narwhal client config/);
});

test('a cache named as SERVER/CACHE, CACHE under the default server, or a URL under a saved server', async () => {
  const config: UserConfig = {
    default: 'home',
    servers: { home: { url: 'https://home.example', token: 't1' }, work: { url: 'http://work.example:5000' } },
  };
  assert.deepEqual(resolveCache(config, 'main'), { url: 'https://home.example/main', server: 'home', token: 't1' });
  assert.deepEqual(resolveCache(config, 'work/ci'), {
    url: 'http://work.example:5000/ci',
    server: 'work',
    token: undefined,
  });
  assert.deepEqual(resolveCache(config, 'https://home.example/other/'), {
    url: 'https://home.example/other',
    server: 'home',
    token: 't1',
  });
  assert.deepEqual(resolveCache(config, 'https://elsewhere.example/main'), { url: 'https://elsewhere.example/main' });
  assert.throws(() => resolveCache(config, 'nowhere/main'), /no server named nowhere: run narwhal login/);
  assert.throws(() => resolveCache({ servers: {} }, 'main'), /no default server/);

  // push and substituter: the saved token unless one is given or in NARWHAL_TOKEN.
  const saved = { config: process.env.NARWHAL_CLIENT_CONFIG, token: process.env.NARWHAL_TOKEN };
  const file = join(dir, 'resolve.json');
  await writeUserConfig(config, file);
  process.env.NARWHAL_CLIENT_CONFIG = file;
  delete process.env.NARWHAL_TOKEN;
  try {
    assert.deepEqual(await cacheAndToken('main', undefined, []), {
      cacheUrl: 'https://home.example/main',
      token: 't1',
    });
    assert.equal((await cacheAndToken('main', 'given', [])).token, 'given');
    process.env.NARWHAL_TOKEN = 'env';
    assert.equal((await cacheAndToken('main', undefined, [])).token, 'env');
  } finally {
    for (const [name, value] of [
      ['NARWHAL_CLIENT_CONFIG', saved.config],
      ['NARWHAL_TOKEN', saved.token],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
});
