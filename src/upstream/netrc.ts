import { readFile } from 'node:fs/promises';

/** Login and password for a host, as a netrc file gives them. */
export interface NetrcEntry {
  login: string;
  password: string;
}

/**
 * Parses a netrc file (`machine HOST login NAME password SECRET`, and `default`), the format Nix
 * and curl read. Tokens are separated by any whitespace; `macdef` blocks are skipped.
 */
export function parseNetrc(text: string): { machines: Map<string, NetrcEntry>; fallback?: NetrcEntry } {
  const tokens = text.split(/\s+/).filter((t) => t !== '');
  const machines = new Map<string, NetrcEntry>();
  let fallback: NetrcEntry | undefined;
  let current: NetrcEntry | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === 'machine' && i + 1 < tokens.length) {
      current = { login: '', password: '' };
      const host = tokens[++i];
      if (!machines.has(host)) machines.set(host, current);
    } else if (token === 'default') {
      current = { login: '', password: '' };
      fallback ??= current;
    } else if ((token === 'login' || token === 'password') && current && i + 1 < tokens.length) {
      current[token] = tokens[++i];
    } else if (token === 'macdef') {
      current = undefined;
    }
  }
  return { machines, fallback };
}

/** The `Authorization` header for a URL's host from a netrc file, if the file names the host (or has a default). */
export async function netrcAuthorization(file: string | undefined, url: URL): Promise<string | undefined> {
  if (!file) return undefined;
  const { machines, fallback } = parseNetrc(await readFile(file, 'utf8'));
  const entry = machines.get(url.hostname) ?? machines.get(url.host) ?? fallback;
  if (!entry) return undefined;
  return `Basic ${Buffer.from(`${entry.login}:${entry.password}`).toString('base64')}`;
}
