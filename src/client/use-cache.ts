import { homedir } from 'node:os';
import { join } from 'node:path';
import { NarwhalError } from '../errors.ts';
import { addToNixConf, nixConfSettings } from './nix-conf-edit.ts';
import { setNetrcPassword } from './netrc-edit.ts';
import { readTextIfExists, writeFileAtomic } from './private-file.ts';
import { resolveCache, type UserConfig } from './user-config.ts';

export interface UseFiles {
  nixConf?: string;
  netrc?: string;
}

export interface UseResult {
  cacheUrl: string;
  publicKey: string;
  nixConf: string;
  /** The netrc file the token went to; undefined when the server was saved without a token. */
  netrc?: string;
  /** What was changed, one line each, naming the file; empty when everything was there already. */
  changes: string[];
}

/**
 * `narwhal use`: makes Nix substitute from a cache. Asks the server for the cache's public key,
 * then adds the substituter and the key to nix.conf and, for a server saved with a token, the
 * token to the netrc file Nix reads (and that file to nix.conf).
 */
export async function useCache(config: UserConfig, spec: string, files: UseFiles = {}): Promise<UseResult> {
  const target = resolveCache(config, spec);
  const publicKey = await fetchPublicKey(target.url, target.token);
  const defaults = defaultNixFiles();
  const nixConf = files.nixConf ?? defaults.nixConf;
  const confText = (await readTextIfExists(nixConf)) ?? '';
  const configured = nixConfSettings(confText)
    .filter((s) => s.name === 'netrc-file')
    .at(-1)
    ?.values.join(' ');
  const netrc = target.token === undefined ? undefined : (files.netrc ?? configured ?? defaults.netrc);

  const changes: string[] = [];
  if (netrc !== undefined && target.token !== undefined) {
    const netrcText = (await readTextIfExists(netrc)) ?? '';
    const edit = setNetrcPassword(netrcText, new URL(target.url).hostname, 'narwhal', target.token);
    if (edit.changes.length > 0) {
      await writeFileAtomic(netrc, edit.text, { mode: 0o600, forceMode: true });
      changes.push(...edit.changes.map((change) => `${netrc}: ${change}`));
    }
  }
  const edit = addToNixConf(confText, { substituter: target.url, publicKey, netrcFile: netrc });
  if (edit.changes.length > 0) {
    await writeFileAtomic(nixConf, edit.text, { mode: 0o644 });
    changes.push(...edit.changes.map((change) => `${nixConf}: ${change}`));
  }
  return { cacheUrl: target.url, publicKey, nixConf, netrc, changes };
}

/** As root, the system's files (NIX_CONF_DIR, else /etc/nix); otherwise the user's. */
export function defaultNixFiles(): { nixConf: string; netrc: string } {
  const dir =
    process.getuid?.() === 0
      ? (process.env.NIX_CONF_DIR ?? '/etc/nix')
      : join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'nix');
  return { nixConf: join(dir, 'nix.conf'), netrc: join(dir, 'netrc') };
}

/** The cache's public key, from the `PublicKey` line of its nix-cache-info. */
async function fetchPublicKey(cacheUrl: string, token: string | undefined): Promise<string> {
  const url = `${cacheUrl}/nix-cache-info`;
  let res: Response;
  try {
    res = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  } catch (err) {
    throw new NarwhalError('unavailable', `cannot reach ${url}: ${(err as Error).cause ?? (err as Error).message}`);
  }
  const text = await res.text();
  if (res.status === 401 || res.status === 403)
    throw new NarwhalError(
      'unauthorized',
      `${url} answered ${res.status}: log in with a token that may read the cache`,
    );
  if (!res.ok) throw new NarwhalError('not-found', `${url} answered ${res.status}: ${text.trim()}`);
  const key = /^PublicKey: (\S+)$/m.exec(text)?.[1];
  if (!key) throw new NarwhalError('unavailable', `${url} names no public key (is it a Narwhal cache?)`);
  return key;
}
