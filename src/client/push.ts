import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { NarwhalError } from '../errors.ts';
import { serializeNarinfo } from '../nix/narinfo.ts';
import { fingerprint, signFingerprint } from '../nix/signing.ts';
import { type CacheEndpoint, pushNar, startEncoders } from './nar-push.ts';
import { StoreVersions } from './push-bases.ts';
import { type PathInfo, queryPathInfos, referencesFirst } from './nix-paths.ts';
import { asServerFailure, fetchAgainIfLost } from './connection-retry.ts';

export interface PushOptions {
  /** The binary cache URL, `<server>/<cache>`. */
  cacheUrl: string;
  token?: string;
  /** A Nix secret key file's text: each narinfo pushed is signed with it too. */
  signingKey?: string;
  /** Paths whose NARs are uploaded at once. */
  jobs: number;
  /**
   * Send changed chunks as deltas of the previous version's (default true): far fewer bytes, more
   * client CPU (docs/benchmarks.md, "Push with deltas"). Off suits a fast link to the server.
   */
  deltas?: boolean;
  onProgress?: (progress: PushProgress) => void;
}

export interface PushProgress {
  paths: number;
  /** Paths the cache already had. */
  cached: number;
  pushed: number;
  narBytes: number;
  bytesSent: number;
  chunks: number;
  chunksSent: number;
  /** Of the chunks sent, those sent as deltas of chunks the cache has. */
  deltasSent: number;
}

/**
 * `narwhal push`: the closure of `paths`, of which only the paths the cache lacks are uploaded,
 * each NAR as a chunk list sending only the chunks the cache lacks (nar-push.ts), then its
 * narinfo, after the narinfos of its references. Safe to run again after an interruption: what
 * arrived is found there and skipped.
 */
export async function pushPaths(paths: readonly string[], options: PushOptions): Promise<PushProgress> {
  const cacheUrl = new URL(options.cacheUrl.replace(/\/+$/, ''));
  const cacheName = cacheUrl.pathname.replace(/^\//, '');
  if (!/^[^/]+$/.test(cacheName)) throw new NarwhalError('bad-request', `${options.cacheUrl} is not <server>/<cache>`);
  const headers: Record<string, string> = options.token ? { Authorization: `Bearer ${options.token}` } : {};
  const cache: CacheEndpoint = {
    api: `${cacheUrl.origin}/_api/v1/caches/${cacheName}`,
    headers,
    hasPath: options.deltas === false ? undefined : (path) => hasNarinfo(cacheUrl.href, path, headers),
    storeVersions: new StoreVersions(),
  };
  const closure = referencesFirst(await queryPathInfos(paths, true));
  const progress: PushProgress = {
    paths: closure.length,
    cached: 0,
    pushed: 0,
    narBytes: 0,
    bytesSent: 0,
    chunks: 0,
    chunksSent: 0,
    deltasSent: 0,
  };
  const report = (): void => options.onProgress?.({ ...progress });
  const lacking = await lackingPaths(cacheUrl.href, closure, headers).catch((err: unknown) => {
    throw asServerFailure(err, 'asking the cache which paths it has');
  });
  if (lacking.length > 0) startEncoders();
  progress.cached = closure.length - lacking.length;
  report();

  // Each path's narinfo waits for those of its references, which the cache checks are there.
  // The queue is in reference order, so a path's references were taken from it before it.
  const narinfos = new Map(lacking.map((info) => [info.path, Promise.withResolvers<void>()]));
  for (const { promise } of narinfos.values()) promise.catch(() => undefined);
  const pushOne = async (info: PathInfo): Promise<void> => {
    const figures = await pushNar(cache, info.path, info.narHash, info.narSize, (bytes) => {
      progress.bytesSent += bytes;
      report();
    });
    progress.chunks += figures.chunks;
    progress.chunksSent += figures.chunksSent;
    progress.deltasSent += figures.deltasSent;
    await Promise.all(info.references.filter((r) => r !== info.path).map((r) => narinfos.get(r)?.promise));
    await putNarinfo(cacheUrl.href, info, headers, options.signingKey);
    progress.pushed++;
    progress.narBytes += info.narSize;
    report();
  };
  const queue = [...lacking];
  const failures: unknown[] = [];
  const worker = async (): Promise<void> => {
    for (let info = queue.shift(); info; info = queue.shift()) {
      const narinfo = narinfos.get(info.path)!;
      await pushOne(info).then(narinfo.resolve, (err: unknown) => {
        failures.push(asServerFailure(err, `pushing ${info.path}`));
        narinfo.reject(err);
      });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.jobs) }, worker));
  if (failures.length > 0) throw failures[0];
  return progress;
}

/** The paths whose narinfo the cache does not answer, in the order given. */
async function lackingPaths(cacheUrl: string, infos: PathInfo[], headers: Record<string, string>): Promise<PathInfo[]> {
  const found = await Promise.all(infos.map((info) => hasNarinfo(cacheUrl, info.path, headers)));
  return infos.filter((_, i) => !found[i]);
}

async function hasNarinfo(cacheUrl: string, path: string, headers: Record<string, string>): Promise<boolean> {
  const res = await fetchAgainIfLost(
    `${cacheUrl}/${basename(path).slice(0, 32)}.narinfo`,
    { method: 'HEAD', headers },
    `looking up ${path} in the cache`,
  );
  if (res.status !== 200 && res.status !== 404) {
    throw new NarwhalError('unavailable', `looking up ${path} in the cache: ${res.status}`);
  }
  return res.status === 200;
}

async function putNarinfo(
  cacheUrl: string,
  info: PathInfo,
  headers: Record<string, string>,
  signingKey: string | undefined,
): Promise<void> {
  const sigs = [...info.signatures];
  if (signingKey)
    sigs.push(signFingerprint(fingerprint(info.path, info.narHash, info.narSize, info.references), signingKey));
  const text = serializeNarinfo({
    storePath: info.path,
    url: `nar/${info.narHash.slice('sha256:'.length)}.nar`,
    compression: 'none',
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references.map((r) => basename(r)),
    deriver: info.deriver === undefined ? undefined : basename(info.deriver),
    sigs,
    ca: info.ca,
  });
  const res = await fetchAgainIfLost(
    `${cacheUrl}/${basename(info.path).slice(0, 32)}.narinfo`,
    {
      method: 'PUT',
      headers: { ...headers, 'Content-Type': 'text/x-nix-narinfo' },
      body: text,
    },
    `uploading the narinfo of ${info.path}`,
  );
  if (!res.ok)
    throw new NarwhalError(
      'bad-request',
      `uploading the narinfo of ${info.path}: ${res.status} ${(await res.text()).trim()}`,
    );
}

/** Reads a signing key file given on the command line. */
export async function readSigningKey(file: string | undefined): Promise<string | undefined> {
  return file === undefined ? undefined : (await readFile(file, 'utf8')).trim();
}
