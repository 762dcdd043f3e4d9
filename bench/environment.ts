/**
 * The programs the benchmark drives (installed from Debian when missing, as scripts/test.sh does)
 * and the facts about the machine and the software that the report records.
 */
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { haveCommand, run } from './exec.ts';
import { REPO } from './sources.ts';

/** command -> Debian package */
const NEEDED: Record<string, string> = {
  nix: 'nix-bin',
  casync: 'casync',
  nginx: 'nginx-light',
  wrk: 'wrk',
  ab: 'apache2-utils',
  curl: 'curl',
  zstd: 'zstd',
  xz: 'xz-utils',
  '/usr/bin/time': 'time',
};

export async function ensureTools(log: (line: string) => void): Promise<void> {
  const missing: string[] = [];
  for (const [cmd, pkg] of Object.entries(NEEDED)) if (!(await haveCommand(cmd))) missing.push(pkg);
  if (missing.length > 0) {
    if (process.getuid?.() !== 0 || !(await haveCommand('apt-get'))) {
      throw new Error(
        `the benchmark needs ${missing.join(', ')}: run it as root on Debian, or install them (apt-get install ${missing.join(' ')})`,
      );
    }
    log(`installing ${missing.join(', ')} with apt-get`);
    await run('apt-get', ['update', '-qq']);
    await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
  // Nix needs its store directory; the Debian package creates it, a bare root may lack it.
  mkdirSync('/nix/store', { recursive: true });
  mkdirSync('/nix/var/nix', { recursive: true });
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(cmd, args);
    return (stdout.trim() || stderr.trim()).split('\n')[0];
  } catch (err) {
    // Some tools print their version and exit non-zero (wrk -v): take it from the error text.
    const text = (err as Error).message.split('\n').slice(1).join('\n').trim();
    return text.split('\n')[0] || 'unknown';
  }
}

export async function toolVersions(): Promise<Record<string, string>> {
  return {
    node: process.version,
    nix: await firstLine('nix', ['--version']),
    casync: await firstLine('casync', ['--version']),
    nginx: await firstLine('nginx', ['-v']),
    wrk: (await firstLine('wrk', ['-v'])).replace(/ Copyright.*$/, ''),
    ab: (await firstLine('ab', ['-V'])).replace(/, Revision.*$/, ''),
    curl: (await firstLine('curl', ['--version'])).split(' ').slice(0, 2).join(' '),
    zstd: (await firstLine('zstd', ['--version'])).replace(/^\*+ /, '').replace(/ \*+$/, ''),
  };
}

export async function machineInfo(workDir: string): Promise<Record<string, string>> {
  const os =
    /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(await readFile('/etc/os-release', 'utf8').catch(() => ''))?.[1] ?? 'unknown';
  const fs = (await run('stat', ['-f', '-c', '%T', workDir]).catch(() => ({ stdout: 'unknown' }))).stdout.trim();
  return {
    cpu: `${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores)`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os,
    kernel: (await run('uname', ['-r'])).stdout.trim(),
    'work dir file system': `${fs} (${workDir})`,
  };
}

export async function loadAverage(): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
}

/** The commit measured, and whether the tree had changes to Narwhal's code on top of it. */
export async function commitInfo(): Promise<string> {
  try {
    const head = (await run('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'])).stdout.trim();
    const dirty = (
      await run('git', ['-C', REPO, 'status', '--porcelain', '--', 'src', 'bin', 'package.json'])
    ).stdout.trim();
    return dirty ? `${head} + uncommitted changes in src/ or bin/` : head;
  } catch (err) {
    return `unknown (${(err as Error).message.split('\n')[0]})`;
  }
}
