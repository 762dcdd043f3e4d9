import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { localAdmin, type AdminOperations } from '../tenancy/admin-operations.ts';
import { remoteAdmin } from '../client/remote-admin.ts';
import { NarwhalError } from '../errors.ts';

/** Options every command that opens the stores accepts. */
export const STORE_OPTIONS = {
  'data-dir': { type: 'string', default: './narwhal-data' },
  /** Where chunks live: pack:DIR, a castr directory or s3://BUCKET/PREFIX?... (default: defaultStorage(DIR)). */
  storage: { type: 'string' },
  /** Where metadata lives: postgres://USER:PASSWORD@HOST:PORT/DB or sqlite:PATH (default sqlite:DIR/narwhal.sqlite). */
  database: { type: 'string' },
} as const;

/** Options of the management commands: local stores, or a server's API. */
export const ADMIN_OPTIONS = {
  ...STORE_OPTIONS,
  server: { type: 'string' },
  token: { type: 'string' },
} as const;

export interface AdminTarget {
  admin: AdminOperations;
  close(): Promise<void>;
}

/** `--server URL --token T` talks to a running server; otherwise the stores under --data-dir are opened directly. */
export async function openAdminTarget(values: {
  'data-dir': string;
  storage?: string;
  database?: string;
  server?: string;
  token?: string;
}): Promise<AdminTarget> {
  if (values.server !== undefined) {
    const token = values.token ?? process.env.NARWHAL_TOKEN;
    if (!token) throw new NarwhalError('bad-request', '--server needs --token (or NARWHAL_TOKEN)');
    return { admin: remoteAdmin(values.server, token), close: async () => undefined };
  }
  const nw = await openNarwhal({ dataDir: values['data-dir'], storage: values.storage, database: values.database });
  return { admin: localAdmin(nw), close: () => closeNarwhal(nw) };
}

/** A zstd level, 1 to 22 (zstd's range; 20 and up need more memory to decompress), or 0 when `zeroMeansOff`. */
export function parseZstdLevel(option: string, text: string, zeroMeansOff = false): number {
  const level = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(level >= (zeroMeansOff ? 0 : 1) && level <= 22)) {
    throw new NarwhalError(
      'bad-request',
      `${option} takes a zstd level from 1 to 22${zeroMeansOff ? ' (0: off)' : ''}, not ${text}`,
    );
  }
  return level;
}

/** A size in bytes, optionally with a binary multiple: `1073741824`, `1024M`, `1G`. */
export function parseByteSize(option: string, text: string): number {
  const match = /^(\d+)([KMGT]?)$/i.exec(text);
  const size = match ? Number(match[1]) * 1024 ** ' KMGT'.indexOf((match[2] || ' ').toUpperCase()) : NaN;
  if (!Number.isSafeInteger(size) || size < 1)
    throw new NarwhalError('bad-request', `${option} takes a size in bytes (or with K, M, G, T), not ${text}`);
  return size;
}

/** `--listen HOST:PORT` (HOST may be `[v6]`, or empty for 127.0.0.1). */
export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!match) throw new NarwhalError('bad-request', `--listen takes HOST:PORT, not ${listen}`);
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port: Number(match[3]) };
}
