import { NarwhalError } from '../errors.ts';

/** Where chunks live: a local pack store, a local directory in castr layout, or a prefix in an S3 bucket. */
export type StorageLocation = PackLocation | LocalLocation | S3Location;

/** `pack:DIR`: chunks appended to pack files under DIR, with an index (src/storage/pack-chunk-store.ts). */
export interface PackLocation {
  kind: 'pack';
  /** As given; relative paths are resolved by whoever opens it. */
  path: string;
}

/** A bare directory: a file per chunk in casync's castr layout, which casync can read as it is. */
export interface LocalLocation {
  kind: 'local';
  /** As given; relative paths are resolved by whoever opens it. */
  path: string;
}

export interface S3Location {
  kind: 's3';
  bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket's root. */
  prefix: string;
  /** `http(s)://host[:port]` of an S3-compatible service; undefined for AWS itself. */
  endpoint: string | undefined;
  region: string;
  /** Addresses the bucket as `endpoint/bucket/key` instead of `bucket.endpoint/key`. */
  pathStyle: boolean;
}

export const DEFAULT_S3_REGION = 'us-east-1';

const PACK_PREFIX = 'pack:';
const FORMS = 'pack:DIR, a directory, or s3://BUCKET/PREFIX?endpoint=URL&region=R&path-style=1';
const S3_PARAMS = new Set(['endpoint', 'region', 'path-style']);
/** S3's bucket naming rules (no dots next to each other or to a hyphen, not an IP address). */
const BUCKET = /^(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)(?!.*\.-)(?!.*-\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Parses `--storage`: `pack:DIR`, a path (castr layout), or `s3://BUCKET/PREFIX?endpoint=URL&region=R&path-style=1` where
 * every query parameter is optional (region defaults to us-east-1). Anything unexpected is
 * refused with a message that says what was expected, rather than guessed at. Credentials never
 * come from the URL: the SDK's default chain reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
 */
export function parseStorageUrl(url: string): StorageLocation {
  if (url === '') throw bad('--storage is empty');
  if (url.startsWith(PACK_PREFIX)) {
    const path = url.slice(PACK_PREFIX.length);
    if (path === '') throw bad('pack: names no directory (expected pack:DIR)');
    return { kind: 'pack', path };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
  if (scheme === undefined) return { kind: 'local', path: url };
  if (scheme !== 's3') throw bad(`unsupported storage URL scheme ${scheme}:// (expected ${FORMS})`);
  return parseS3(url.slice('s3://'.length));
}

function parseS3(rest: string): S3Location {
  const queryAt = rest.indexOf('?');
  const beforeQuery = queryAt < 0 ? rest : rest.slice(0, queryAt);
  const query = queryAt < 0 ? '' : rest.slice(queryAt + 1);
  if (beforeQuery.includes('#')) throw bad('an s3:// storage URL takes no #fragment');
  const slashAt = beforeQuery.indexOf('/');
  const bucket = slashAt < 0 ? beforeQuery : beforeQuery.slice(0, slashAt);
  const rawPrefix = slashAt < 0 ? '' : beforeQuery.slice(slashAt + 1);

  if (bucket.includes('@')) {
    throw bad('put no credentials in the storage URL: they come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  }
  if (bucket === '') throw bad(`the storage URL names no bucket (expected ${FORMS})`);
  if (!BUCKET.test(bucket)) {
    throw bad(`"${bucket}" is not a valid S3 bucket name (3-63 characters: lowercase letters, digits, dots, hyphens)`);
  }

  const prefix = decodePrefix(rawPrefix).replace(/\/+$/, '');
  if (prefix.startsWith('/') || prefix.includes('//')) throw bad(`the S3 prefix "${prefix}" has an empty path segment`);
  if (prefix.split('/').some((part) => part === '.' || part === '..'))
    throw bad(`the S3 prefix "${prefix}" may not contain . or .. segments`);

  const params = new URLSearchParams(query);
  const seen = new Set<string>();
  for (const name of params.keys()) {
    if (!S3_PARAMS.has(name))
      throw bad(`unknown storage URL parameter "${name}" (known: endpoint, region, path-style)`);
    if (seen.has(name)) throw bad(`the storage URL parameter "${name}" is given twice`);
    seen.add(name);
  }
  return {
    kind: 's3',
    bucket,
    prefix,
    endpoint: parseEndpoint(params.get('endpoint')),
    region: parseRegion(params.get('region')),
    pathStyle: parseFlag(params.get('path-style')),
  };
}

function decodePrefix(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw bad(`the S3 prefix "${raw}" has a malformed %-escape`);
  }
}

function parseEndpoint(value: string | null): string | undefined {
  if (value === null) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad(`endpoint=${value} is not a URL (expected http://HOST[:PORT] or https://HOST[:PORT])`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw bad(`endpoint=${value} must be an http:// or https:// URL`);
  if (url.username !== '' || url.password !== '') {
    throw bad('put no credentials in the endpoint: they come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '')
    throw bad(`endpoint=${value} must be only a scheme, host and port`);
  return url.origin;
}

function parseRegion(value: string | null): string {
  if (value === null) return DEFAULT_S3_REGION;
  if (!REGION.test(value)) throw bad(`region=${value} is not a region name (such as us-east-1)`);
  return value;
}

function parseFlag(value: string | null): boolean {
  if (value === null || value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true') return true;
  throw bad(`path-style=${value} must be 1 or 0`);
}

/** The location as a URL again, for messages: canonical and free of secrets. */
export function formatStorageLocation(location: StorageLocation): string {
  if (location.kind === 'local') return location.path;
  if (location.kind === 'pack') return `${PACK_PREFIX}${location.path}`;
  const params = new URLSearchParams();
  if (location.endpoint !== undefined) params.set('endpoint', location.endpoint);
  if (location.region !== DEFAULT_S3_REGION) params.set('region', location.region);
  if (location.pathStyle) params.set('path-style', '1');
  const query = params.size > 0 ? `?${params}` : '';
  return `s3://${location.bucket}/${location.prefix.split('/').map(encodeURIComponent).join('/')}${query}`;
}

function bad(message: string): NarwhalError {
  return new NarwhalError('bad-request', message);
}
