/**
 * Running the programs the benchmark drives: one-shot commands (optionally timed), long-running
 * daemons, and the Nix settings that let Debian's nix-bin run as root without a daemon.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** File whose bytes become the command's standard input. */
  stdinFile?: string;
  /** Where standard output goes: collected (default), a file, or discarded. */
  stdout?: 'collect' | 'ignore' | { file: string };
  /** Killed and reported as a failure after this long (default 30 minutes): a hang is a result too. */
  timeoutSeconds?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in seconds. */
  seconds: number;
}

/** Runs a command to completion; rejects with its stderr when it exits non-zero. */
export async function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const fds: number[] = [];
  let stdin: 'ignore' | number = 'ignore';
  if (options.stdinFile !== undefined) {
    stdin = openSync(options.stdinFile, 'r');
    fds.push(stdin);
  }
  let stdout: 'pipe' | 'ignore' | number = 'pipe';
  if (options.stdout === 'ignore') stdout = 'ignore';
  else if (typeof options.stdout === 'object') {
    stdout = openSync(options.stdout.file, 'w');
    fds.push(stdout);
  }
  const started = performance.now();
  try {
    const child = spawn(cmd, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [stdin, stdout, 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    const limit = options.timeoutSeconds ?? 1800;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, limit * 1000);
    const code = await exitOf(child).finally(() => clearTimeout(timer));
    const seconds = (performance.now() - started) / 1000;
    if (timedOut) throw new Error(`${cmd} ${args.join(' ')} did not finish within ${limit} s and was killed`);
    const result = { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), seconds };
    if (code !== 0) {
      throw new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${tail(result.stderr || result.stdout)}`);
    }
    return result;
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

function exitOf(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? signal ?? -1));
  });
}

function tail(text: string, lines = 30): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Whether a command is on PATH. */
export async function haveCommand(cmd: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    // `command -v` exits non-zero for an unknown command: that is the answer, not a failure.
    return false;
  }
}

export interface Daemon {
  readonly pid: number;
  /** Everything the process wrote to stderr so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts a long-running process and resolves once `ready` matches its stderr (returning the match),
 * or rejects if it exits first or does not get ready within `timeoutMs`.
 */
export async function startDaemon(
  cmd: string,
  args: readonly string[],
  ready: RegExp,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ daemon: Daemon; match: RegExpExecArray }> {
  const child = spawn(cmd, args, { env: options.env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${cmd} did not get ready in time:\n${tail(log)}`)),
      options.timeoutMs ?? 30_000,
    );
    child.stderr!.on('data', (data: Buffer) => {
      log += data.toString();
      const m = ready.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited with ${code} before it was ready:\n${tail(log)}`));
    });
  }).catch(async (err: unknown) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    throw err;
  });
  const daemon: Daemon = {
    pid: child.pid!,
    output: () => log,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
  return { daemon, match };
}

/**
 * Environment for one Nix client "machine": Debian's nix-bin as root without a daemon, no
 * substituters of its own, and a private XDG cache (Nix caches narinfo lookups per URL there, so
 * every measured client gets a fresh one).
 */
export function nixEnv(home: string, extraConfig: string[] = []): NodeJS.ProcessEnv {
  mkdirSync(join(home, 'cache'), { recursive: true });
  return {
    ...process.env,
    HOME: home,
    XDG_CACHE_HOME: join(home, 'cache'),
    NIX_CONFIG: [
      'build-users-group =',
      'sandbox = false',
      'experimental-features = nix-command',
      'substituters =',
      ...extraConfig,
    ].join('\n'),
  };
}

/**
 * Peak resident set size (VmHWM) of a live process and every process under it, in bytes: the
 * sum of their peaks, which is at least the peak of their sum (`serve --processes` runs several).
 */
export async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).split(' ').filter((s) => s !== '');
  let total = Number(m[1]) * 1024;
  for (const child of children) total += await peakRss(Number(child)).catch(() => 0);
  return total;
}
