import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { readUserConfig, resolveCache } from './user-config.ts';

/** The netrc files Nix reads by default (its `netrc-file`), then the user's own. */
export const DEFAULT_NETRC_FILES = ['/etc/nix/netrc', join(homedir(), '.netrc')];

interface NetrcEntry {
  /** undefined for `default`. */
  machine?: string;
  login?: string;
  password?: string;
}

/**
 * The token for a server: given outright, else NARWHAL_TOKEN, else the password of the first
 * netrc entry for its host (as Nix sends it, HTTP Basic), else none.
 */
export async function tokenFor(
  server: URL,
  explicit: string | undefined,
  netrcFiles: readonly string[] = DEFAULT_NETRC_FILES,
): Promise<string | undefined> {
  if (explicit) return explicit;
  if (process.env.NARWHAL_TOKEN) return process.env.NARWHAL_TOKEN;
  for (const file of netrcFiles) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const entries = parseNetrc(text);
    const entry = entries.find((e) => e.machine === server.hostname) ?? entries.find((e) => e.machine === undefined);
    if (entry?.password) return entry.password;
  }
  return undefined;
}

/**
 * The cache `--cache` names (a URL, `SERVER/CACHE`, or `CACHE` under the default server saved by
 * `narwhal login`) and its token: given outright, else NARWHAL_TOKEN, else the saved server's,
 * else the netrc's (tokenFor).
 */
export async function cacheAndToken(
  spec: string,
  explicit: string | undefined,
  netrcFiles: readonly string[] = DEFAULT_NETRC_FILES,
): Promise<{ cacheUrl: string; token: string | undefined }> {
  const target = resolveCache(await readUserConfig(), spec);
  const token = explicit || process.env.NARWHAL_TOKEN || target.token;
  return { cacheUrl: target.url, token: token || (await tokenFor(new URL(target.url), undefined, netrcFiles)) };
}

/** The entries of a netrc file (`machine`, `default`, `login`, `password`; `macdef` bodies skipped). */
export function parseNetrc(text: string): NetrcEntry[] {
  const entries: NetrcEntry[] = [];
  const words = text.split(/\s+/).filter((w) => w !== '');
  let entry: NetrcEntry | undefined;
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word === 'machine' || word === 'default') {
      entry = word === 'machine' ? { machine: words[++i] } : {};
      entries.push(entry);
    } else if ((word === 'login' || word === 'password') && entry) {
      entry[word] = words[++i];
    }
  }
  return entries;
}
