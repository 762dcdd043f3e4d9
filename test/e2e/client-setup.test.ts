/**
 * `narwhal login` and `narwhal use` as a user runs them, then stock Nix with the files `use`
 * wrote: it substitutes a path from a private cache (which needs the token of the netrc line) into
 * a fresh store, checking the cache's signature with the key `use` added. `narwhal push` with no
 * token on its command line uses the login.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  assertClosureInStore,
  buildClosure,
  narwhal,
  nixEnv,
  REPO,
  run,
  startServer,
  tempDir,
  type RunningServer,
  type TestClosure,
} from './harness.ts';

describe('narwhal login and use, then stock Nix with the files written', () => {
  let work: { path: string; remove(): Promise<void> };
  let server: RunningServer;
  /** Where Nix reads nix.conf and netrc from (NIX_CONF_DIR), as /etc/nix on a real machine. */
  let nixConfDir: string;
  /** The environment of the user running narwhal (its login config under XDG_CONFIG_HOME). */
  let userEnv: NodeJS.ProcessEnv;
  let publicKey: string;
  let token: string;
  let closure: TestClosure;

  /** Runs the real narwhal as the user, with `input` on its standard input. */
  const asUser = (args: string[], input = '', extraEnv: NodeJS.ProcessEnv = {}) =>
    new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
      const child = execFile(
        process.execPath,
        [join(REPO, 'bin/narwhal.js'), ...args],
        { env: { ...userEnv, ...extraEnv } },
        (err, stdout, stderr) =>
          err ? reject(new Error(`narwhal ${args.join(' ')}: ${stderr}`)) : resolve({ stdout, stderr }),
      );
      child.stdin?.end(input);
    });

  before(async () => {
    work = await tempDir('e2e-client-setup');
    server = await startServer(join(work.path, 'data'));
    const info = JSON.parse(await narwhal(['cache', 'create', '--data-dir', server.dataDir, 'private', '--json'])) as {
      publicKey: string;
      public: boolean;
    };
    assert.equal(info.public, false);
    publicKey = info.publicKey;
    token = (
      JSON.parse(
        await narwhal([
          'token',
          'create',
          '--data-dir',
          server.dataDir,
          '--cache',
          'private',
          '--perm',
          'pull,push',
          '--json',
        ]),
      ) as { secret: string }
    ).secret;
    nixConfDir = join(work.path, 'etc-nix');
    await mkdir(nixConfDir);
    // What a machine without internet would have: no default substituter, signatures required.
    await writeFile(
      join(nixConfDir, 'nix.conf'),
      'build-users-group =\nsandbox = false\nsubstituters =\nrequire-sigs = true\n',
    );
    const { NARWHAL_TOKEN: _, ...env } = process.env;
    userEnv = { ...env, HOME: work.path, XDG_CONFIG_HOME: join(work.path, 'xdg'), NIX_CONF_DIR: nixConfDir };
    const builder = nixEnv(join(work.path, 'builder'));
    await mkdir(join(work.path, 'builder'));
    closure = await buildClosure(builder, join(work.path, 'builder'), `setup-${randomBytes(4).toString('hex')}`);
  });

  after(async () => {
    try {
      await server?.stop();
    } finally {
      await work?.remove();
    }
  });

  test('login reads the token from standard input and keeps it in a private config file', async () => {
    const { stderr } = await asUser(['login', 'home', `${server.url}/`], `${token}\n`);
    assert.match(stderr, /saved home .*with a token, the default server/);
    const file = join(work.path, 'xdg', 'narwhal', 'config.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const saved = JSON.parse(await readFile(file, 'utf8')) as {
      servers: Record<string, { url: string; token: string }>;
    };
    assert.deepEqual(saved.servers.home, { url: server.url, token });
  });

  test('push with no --token and a short cache name uses the login', async () => {
    const pushed = JSON.parse(
      (await asUser(['push', '--cache', 'private', '--json', closure.top, closure.added])).stdout,
    ) as {
      pushed: number;
    };
    assert.ok(pushed.pushed >= 3, `pushed ${pushed.pushed}`);
    // The cache is private: it answers only those with the token.
    const narinfo = `${server.url}/private/${closure.top.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`;
    assert.equal((await fetch(narinfo)).status, 404);
    assert.equal((await fetch(narinfo, { headers: { Authorization: `Bearer ${token}` } })).status, 200);
  });

  test('use adds the substituter, key and netrc line (as root: NIX_CONF_DIR), then has nothing to change', async () => {
    const { stdout } = await asUser(['use', 'home/private']);
    const conf = join(nixConfDir, 'nix.conf');
    const netrc = join(nixConfDir, 'netrc');
    assert.equal(
      stdout,
      [
        `${netrc}: added the token for 127.0.0.1`,
        `${conf}: added ${server.url}/private to extra-substituters`,
        `${conf}: added ${publicKey} to extra-trusted-public-keys`,
        `${conf}: added netrc-file = ${netrc}`,
        '',
      ].join('\n'),
    );
    assert.match(await readFile(conf, 'utf8'), /^substituters =\nrequire-sigs = true\nextra-substituters = /m);
    assert.equal(await readFile(netrc, 'utf8'), `machine 127.0.0.1 login narwhal password ${token}\n`);
    assert.equal((await stat(netrc)).mode & 0o777, 0o600);
    const again = await asUser(['use', 'private', '--nix-conf', conf, '--netrc', netrc]);
    assert.equal(again.stdout, `nothing to change: Nix already substitutes from ${server.url}/private\n`);
  });

  test('stock Nix with those files substitutes the closure into a fresh store, signatures checked', async () => {
    const store = join(work.path, 'fresh-store');
    const nixUser = {
      ...userEnv,
      NIX_CONFIG: 'experimental-features = nix-command',
      XDG_CACHE_HOME: join(work.path, 'nix-cache'),
      XDG_CONFIG_HOME: join(work.path, 'no-user-config'),
    };
    await run('nix-store', ['--store', store, '--realise', closure.top, closure.added], nixUser);
    await assertClosureInStore(store, closure, publicKey, nixUser);
    const fetched = server.requests().filter((line) => line.startsWith('GET /private/'));
    assert.ok(
      fetched.some((line) => /\.narinfo 200$/.test(line)),
      fetched.join('\n'),
    );
  });

  test('use of a cache the server does not have says so and changes nothing', async () => {
    const conf = join(nixConfDir, 'nix.conf');
    const before = await readFile(conf, 'utf8');
    await assert.rejects(asUser(['use', 'absent']), /nix-cache-info answered 404: no such cache/);
    await assert.rejects(
      asUser(['use', 'elsewhere/main']),
      /no server named elsewhere: run narwhal login elsewhere URL first/,
    );
    assert.equal(await readFile(conf, 'utf8'), before);
  });
});
