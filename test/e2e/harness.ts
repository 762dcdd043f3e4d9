import { spawn, execFile, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { assertSameBytes } from '../helpers/bytes.ts';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
export const REPO = resolve(import.meta.dirname, '../..');

/**
 * Settings that let the Debian nix-bin run as root without a daemon (nix-protocol.md), with the
 * netrc file `<home>/netrc` for credentials (see writeNetrc).
 */
export function nixEnv(home: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HOME: home,
    XDG_CACHE_HOME: join(home, 'cache'),
    NIX_CONFIG: [
      'build-users-group =',
      'sandbox = false',
      'experimental-features = nix-command',
      'substituters =',
      'require-sigs = true',
      `netrc-file = ${join(home, 'netrc')}`,
    ].join('\n'),
  };
}

export async function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { env, maxBuffer: 256 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${e.stderr ?? e.message}`);
  }
}

/** Lets Nix present `token` as the Basic auth password to 127.0.0.1 (what a user puts in a netrc). */
/**
 * A fresh Nix signing key pair named `name`, written as `<dir>/<file>.sk` and `.pk` (`sk` and `pk`
 * by default): the secret key's path, for `?secret-key=` or `--signing-key`, and the public key.
 */
export async function makeSigningKey(
  dir: string,
  name: string,
  env: NodeJS.ProcessEnv,
  file?: string,
): Promise<{ secretKey: string; publicKey: string }> {
  const secretKey = join(dir, file === undefined ? 'sk' : `${file}.sk`);
  const publicFile = join(dir, file === undefined ? 'pk' : `${file}.pk`);
  await run('nix-store', ['--generate-binary-cache-key', name, secretKey, publicFile], env);
  return { secretKey, publicKey: await readFile(publicFile, 'utf8') };
}

export async function writeNetrc(home: string, token: string): Promise<void> {
  await writeFile(join(home, 'netrc'), `machine 127.0.0.1 login narwhal password ${token}\n`, { mode: 0o600 });
}

/** Runs the real `narwhal` command. */
export async function narwhal(args: string[]): Promise<string> {
  return run(process.execPath, [join(REPO, 'bin/narwhal.js'), ...args]);
}

export interface RunningServer {
  url: string;
  dataDir: string;
  /** The `narwhal serve` process (with --processes, the supervisor of the others). */
  pid: number;
  /** Everything the server wrote to stderr so far (with --log-requests: one line per request). */
  output(): string;
  /** Request lines `METHOD /path status` (then ` HTTP/2` for one over HTTP/2) logged since the server started. */
  requests(): string[];
  stop(): Promise<void>;
}

/** Starts the real `narwhal serve` as a user would, on a free port, and waits until it listens. */
export async function startServer(dataDir: string, extraArgs: string[] = []): Promise<RunningServer> {
  const child = spawn(
    process.execPath,
    [
      join(REPO, 'bin/narwhal.js'),
      'serve',
      '--data-dir',
      dataDir,
      '--listen',
      '127.0.0.1:0',
      '--log-requests',
      ...extraArgs,
    ],
    {
      stdio: ['ignore', 'inherit', 'pipe'],
    },
  );
  let log = '';
  const url = await new Promise<string>((resolveUrl, reject) => {
    child.stderr.on('data', (data: Buffer) => {
      log += data.toString();
      const match = /on (https?:\/\/[\d.]+:\d+)\//.exec(log);
      if (match) resolveUrl(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`narwhal serve exited with ${code}:\n${log}`)));
  });
  return {
    url,
    dataDir,
    pid: child.pid!,
    output: () => log,
    // A text request line goes on with the time taken, bytes sent and request id; those are cut off.
    requests: () =>
      log
        .split('\n')
        .map((line) => /^(GET|HEAD|PUT|POST|DELETE) \S+ \d{3}( HTTP\/2)?(?= |$)/.exec(line)?.[0])
        .filter((line): line is string => line !== undefined),
    stop: () => stopProcess(child),
  };
}

/** Ends a child with SIGTERM and waits for it to exit (Node writes its compile cache on the way out). */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `narwhal-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export interface TestClosure {
  /** Input-addressed output that references `dep` and itself, with a multi-chunk binary inside. */
  top: string;
  dep: string;
  /** A content-addressed path added with nix-store --add. */
  added: string;
  /** The .drv of `top`, for build logs. */
  topDrv: string;
}

/**
 * Builds a small closure unique to `nonce` with trivial derivations (sandbox off, /bin/sh as
 * builder): `top` references `dep` and itself and carries a copy of a real binary large enough to
 * span several chunks.
 */
export async function buildClosure(env: NodeJS.ProcessEnv, work: string, nonce: string): Promise<TestClosure> {
  const addedDir = join(work, `added-${nonce}`);
  await run('mkdir', ['-p', join(addedDir, 'sub')]);
  await writeFile(join(addedDir, 'hello.txt'), `hello ${nonce}\n`);
  await writeFile(join(addedDir, 'sub', 'data.bin'), Buffer.alloc(100_000, nonce));
  const added = (await run('nix-store', ['--add', addedDir], env)).trim();
  const expr = `
    let
      dep = derivation {
        name = "narwhal-dep"; system = builtins.currentSystem; builder = "/bin/sh";
        nonce = "${nonce}";
        args = [ "-c" "echo dep $nonce > $out" ];
      };
    in derivation {
      name = "narwhal-top"; system = builtins.currentSystem; builder = "/bin/sh";
      nonce = "${nonce}"; inherit dep;
      args = [ "-c" "/bin/mkdir -p $out/bin && /bin/cp /usr/bin/nix $out/bin/tool && echo $dep > $out/dep && echo $out > $out/self && echo building top $nonce" ];
    }`;
  const exprFile = join(work, `closure-${nonce}.nix`);
  await writeFile(exprFile, expr);
  const top = (await run('nix-build', ['--no-out-link', exprFile], env)).trim();
  const topDrv = (await run('nix-store', ['-q', '--deriver', top], env)).trim();
  const dep = (await run('nix-store', ['-q', '--references', top], env))
    .split('\n')
    .find((p) => p.endsWith('-narwhal-dep'))!;
  return { top, dep, added, topDrv };
}

/**
 * Substitutes `paths` from the binary cache at `from` into the store at `store` with stock Nix
 * (`nix copy --from`), trusting only `trustedKey`: Nix requires signatures by default. `options`
 * (such as `--option download-attempts 1`) go before the rest; `env` says whose narinfo cache Nix
 * keeps (a fresh XDG_CACHE_HOME makes a fresh machine).
 */
export function copyFrom(
  from: string,
  store: string,
  paths: readonly string[],
  trustedKey: string,
  env: NodeJS.ProcessEnv,
  options: readonly string[] = [],
): Promise<string> {
  return run(
    'nix',
    ['copy', ...options, '--from', from, '--to', store, '--option', 'trusted-public-keys', trustedKey, ...paths],
    env,
  );
}

/**
 * The test closure arrived whole in `store` (a store root): its files as built (the dep and self
 * references, the copied binary) and `nix store verify` clean against `publicKey`.
 */
export async function assertClosureInStore(
  store: string,
  closure: TestClosure,
  publicKey: string,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const inStore = (p: string) => join(store, p);
  assert.equal(await readFile(inStore(join(closure.top, 'dep')), 'utf8'), `${closure.dep}\n`);
  assert.equal(await readFile(inStore(join(closure.top, 'self')), 'utf8'), `${closure.top}\n`);
  assertSameBytes(await readFile(inStore(join(closure.top, 'bin/tool'))), await readFile('/usr/bin/nix'));
  const verify = await run(
    'nix',
    ['store', 'verify', '--store', store, '--trusted-public-keys', publicKey, '-r', closure.top],
    env,
  );
  assert.equal(verify.trim(), '');
}
