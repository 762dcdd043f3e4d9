import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { NarwhalError } from '../errors.ts';
import { normalizeSha256 } from '../nix/hash.ts';

/** What Nix knows of a valid store path (`nix path-info --json`). */
export interface PathInfo {
  path: string;
  /** `sha256:<nix32>` */
  narHash: string;
  narSize: number;
  /** Full store paths. */
  references: string[];
  deriver?: string;
  signatures: string[];
  ca?: string;
}

/** The paths and, with `closure`, everything they refer to, as the local Nix store knows them. */
export async function queryPathInfos(paths: readonly string[], closure: boolean): Promise<PathInfo[]> {
  const args = ['path-info', '--json', ...(closure ? ['--recursive'] : []), ...paths];
  const rows = JSON.parse(await runNix(args)) as Record<string, unknown>[];
  return rows.map((row) => {
    if (row.valid === false) throw new NarwhalError('not-found', `${String(row.path)} is not a valid store path`);
    return {
      path: String(row.path),
      narHash: normalizeSha256(String(row.narHash)),
      narSize: Number(row.narSize),
      references: (row.references as string[] | undefined) ?? [],
      deriver: typeof row.deriver === 'string' ? row.deriver : undefined,
      signatures: (row.signatures as string[] | undefined) ?? [],
      ca: typeof row.ca === 'string' ? row.ca : undefined,
    };
  });
}

/** The paths ordered so that each comes after the paths it refers to (among those given). */
export function referencesFirst(infos: readonly PathInfo[]): PathInfo[] {
  const byPath = new Map(infos.map((info) => [info.path, info]));
  const done = new Set<string>();
  const ordered: PathInfo[] = [];
  const visit = (info: PathInfo): void => {
    if (done.has(info.path)) return;
    done.add(info.path);
    for (const ref of info.references) {
      const dep = byPath.get(ref);
      if (dep && ref !== info.path) visit(dep);
    }
    ordered.push(info);
  };
  for (const info of infos) visit(info);
  return ordered;
}

async function runNix(args: string[]): Promise<string> {
  const child = spawn('nix', ['--extra-experimental-features', 'nix-command', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0)
    throw new NarwhalError('bad-request', `nix ${args[0]} failed: ${Buffer.concat(err).toString().trim()}`);
  return Buffer.concat(out).toString('utf8');
}
