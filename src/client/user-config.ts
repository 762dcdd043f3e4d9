import { homedir } from 'node:os';
import { join } from 'node:path';
import { NarwhalError } from '../errors.ts';
import { readTextIfExists, writeFileAtomic } from './private-file.ts';

/** A server `narwhal login` saved: its address and the token to present to it. */
export interface SavedServer {
  url: string;
  token?: string;
}

/** The user's Narwhal client settings: the servers logged in to, by name, and which is the default. */
export interface UserConfig {
  default?: string;
  servers: Record<string, SavedServer>;
}

/** $XDG_CONFIG_HOME/narwhal/config.json (else ~/.config/narwhal/config.json); NARWHAL_CLIENT_CONFIG names another. */
export function userConfigFile(): string {
  if (process.env.NARWHAL_CLIENT_CONFIG) return process.env.NARWHAL_CLIENT_CONFIG;
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'narwhal', 'config.json');
}

export async function readUserConfig(file = userConfigFile()): Promise<UserConfig> {
  const text = await readTextIfExists(file);
  if (text === undefined) return { servers: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new NarwhalError('bad-request', `cannot read ${file}: ${(err as Error).message}`);
  }
  const config = parsed as Partial<UserConfig> | null;
  if (typeof config !== 'object' || config === null || typeof config.servers !== 'object' || config.servers === null)
    throw new NarwhalError('bad-request', `${file} is not a narwhal client config (no "servers" object)`);
  return { default: config.default, servers: config.servers };
}

/** Written atomically and private to the user (0600, in a 0700 directory): it holds tokens. */
export async function writeUserConfig(config: UserConfig, file = userConfigFile()): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, forceMode: true, dirMode: 0o700 });
}

/** Adds or replaces the server `name`; the first server saved, or one saved with `makeDefault`, is the default. */
export function withServer(config: UserConfig, name: string, server: SavedServer, makeDefault: boolean): UserConfig {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    throw new NarwhalError(
      'bad-request',
      `a server name is letters, digits, ".", "_" and "-", not ${JSON.stringify(name)}`,
    );
  let url: URL;
  try {
    url = new URL(server.url);
  } catch {
    throw new NarwhalError('bad-request', `${server.url} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new NarwhalError('bad-request', `the server URL must be http:// or https://, not ${server.url}`);
  const saved = { url: server.url.replace(/\/+$/, ''), ...(server.token ? { token: server.token } : {}) };
  return {
    default: makeDefault || config.default === undefined || !(config.default in config.servers) ? name : config.default,
    servers: { ...config.servers, [name]: saved },
  };
}

/** A cache as a client addresses it: its URL, and the token of the saved server it is under, if any. */
export interface CacheTarget {
  url: string;
  /** The saved server the cache is under. */
  server?: string;
  token?: string;
}

/**
 * Where `spec` points: a cache URL (`https://host/main`), `SERVER/CACHE`, or `CACHE` under the
 * default server. A URL under a saved server gets that server's token.
 */
export function resolveCache(config: UserConfig, spec: string): CacheTarget {
  if (spec.includes('://')) {
    const url = spec.replace(/\/+$/, '');
    const under = Object.entries(config.servers).find(([, s]) => url.startsWith(`${s.url}/`));
    return under ? { url, server: under[0], token: under[1].token } : { url };
  }
  const parts = spec.split('/');
  if (parts.length > 2 || parts.some((part) => part === ''))
    throw new NarwhalError('bad-request', `name a cache as SERVER/CACHE, CACHE or a URL, not ${spec}`);
  const [serverName, cache] = parts.length === 2 ? parts : [config.default, parts[0]];
  if (serverName === undefined)
    throw new NarwhalError('bad-request', `no default server: run narwhal login NAME URL first, or name a cache URL`);
  const server = config.servers[serverName];
  if (!server)
    throw new NarwhalError('bad-request', `no server named ${serverName}: run narwhal login ${serverName} URL first`);
  return { url: `${server.url}/${encodeURIComponent(cache)}`, server: serverName, token: server.token };
}
