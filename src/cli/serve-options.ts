import { NarwhalError } from '../errors.ts';
import { DEFAULT_RECOMPRESS_LEVEL } from '../maintenance/recompress.ts';

/** One setting of `narwhal serve`: a flag, a NARWHAL_* variable and a config file key alike. */
export interface ServeOption {
  type: 'string' | 'boolean';
  default?: string | boolean;
  /** One line for docs and the NixOS module. */
  help: string;
}

/**
 * Every setting serve takes, by its long flag name. The environment variable is the name in
 * capitals after `NARWHAL_` (envVarOf), and a config file key is the name itself. Other parts add
 * theirs here; nothing else needs to change for a flag, a variable and a key to exist.
 */
export const SERVE_OPTIONS = {
  'data-dir': { type: 'string', default: './narwhal-data', help: 'directory of the default stores' },
  storage: { type: 'string', help: 'chunk store: pack:DIR, a castr directory or s3://BUCKET/PREFIX?...' },
  database: { type: 'string', help: 'metadata: sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB' },
  listen: { type: 'string', default: '127.0.0.1:5000', help: 'HOST:PORT the server listens on' },
  processes: { type: 'string', default: '1', help: 'server processes sharing the port (auto: one per core)' },
  'log-requests': { type: 'boolean', default: false, help: 'log one line per request' },
  'log-format': { type: 'string', default: 'text', help: 'log lines as text or json (one object per line)' },
  'gc-interval': { type: 'string', default: '6h', help: 'time between GC runs (0: never)' },
  'gc-grace': { type: 'string', default: '1h', help: 'how long unused NARs and chunks stay before GC deletes them' },
  'stats-interval': {
    type: 'string',
    default: '10m',
    help: 'time between storage samples the web UI draws (0: never)',
  },
  'max-nar-size': { type: 'string', help: 'largest NAR accepted, in bytes or with K, M, G, T' },
  'recompress-level': {
    type: 'string',
    default: String(DEFAULT_RECOMPRESS_LEVEL),
    help: 'zstd level idle recompression raises chunks to (0: never)',
  },
  'recompress-after': { type: 'string', default: '60s', help: 'idle time without uploads before recompressing' },
  deltas: { type: 'boolean', default: false, help: 'also store older chunks as deltas of newer ones' },
  'metrics-token': { type: 'string', help: 'bearer token /metrics requires' },
  'metrics-listen': {
    type: 'string',
    help: 'HOST:PORT of a separate listener for /metrics (then not on the main one)',
  },
  'tls-cert': { type: 'string', help: 'PEM certificate chain: serve over TLS (HTTP/2 and HTTP/1.1)' },
  'tls-key': { type: 'string', help: 'PEM private key of --tls-cert' },
  'upstream-timeout': {
    type: 'string',
    default: '10s',
    help: 'how long a pull-through cache waits for an upstream before answering 404',
  },
  'upstream-negative-ttl': {
    type: 'string',
    default: '60s',
    help: 'how long a path no upstream has is remembered as missing (0: not at all)',
  },
  'netrc-file': { type: 'string', help: 'netrc file with the credentials of private upstreams' },
} as const satisfies Record<string, ServeOption>;

export type ServeOptionName = keyof typeof SERVE_OPTIONS;

/** The variable that sets an option: `data-dir` -> `NARWHAL_DATA_DIR`. */
export function envVarOf(name: string): string {
  return `NARWHAL_${name.toUpperCase().replace(/-/g, '_')}`;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off', '']);

/**
 * The serve arguments the NARWHAL_* variables stand for. They go after a config file's and before
 * the command line's, so that a flag beats a variable, which beats the file (the last wins).
 */
export function argsFromEnv(env: NodeJS.ProcessEnv): string[] {
  const args: string[] = [];
  for (const [name, option] of Object.entries(SERVE_OPTIONS) as [string, ServeOption][]) {
    const value = env[envVarOf(name)];
    if (value === undefined) continue;
    if (option.type === 'string') {
      args.push(`--${name}=${value}`);
      continue;
    }
    const word = value.trim().toLowerCase();
    if (TRUE.has(word)) args.push(`--${name}`);
    else if (FALSE.has(word)) args.push(`--no-${name}`);
    else throw new NarwhalError('bad-request', `${envVarOf(name)} takes 1 or 0 (true or false), not ${value}`);
  }
  return args;
}
