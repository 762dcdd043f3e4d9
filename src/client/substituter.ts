import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compressionFromNarinfo } from '../compression/compression.ts';
import { createDecompressor } from '../compression/decompress.ts';
import { parseNarinfo, serializeNarinfo } from '../nix/narinfo.ts';
import { ChunkCache } from './chunk-cache.ts';
import type { Upstream } from './chunk-list.ts';
import { emptyVersionFigures, type LocalChunkList, LocalVersions, type VersionFigures } from './local-versions.ts';
import { type AssemblyFigures, assembleNar, emptyFigures } from './nar-assembly.ts';

export interface SubstituterOptions {
  /** The cache on the server, `<server>/<cache>`. */
  cacheUrl: string;
  token?: string;
  /** Root of the local Nix store to find other versions in, when not `/`. */
  storeRoot?: string;
  cacheDir: string;
  cacheBytes: number;
}

/** What the substituter remembers of a narinfo it served, to serve its NAR. */
interface NarSource {
  storePath: string;
  narSize: number;
  /** The server's own NAR URL (for the fallback), relative to the cache. */
  url: string;
  compression: string | undefined;
  /** The local versions, looked up when the narinfo was asked for; taken by the NAR's request. */
  versions?: Promise<LocalChunkList[]>;
}

/** Narinfos' NARs remembered at most (Nix asks for a NAR right after its narinfo). */
const MAX_REMEMBERED = 10_000;
/** Local version lookups started by narinfo requests at once, at most (each walks store paths). */
const MAX_EARLY_LOOKUPS = 4;

export interface Substituter {
  server: Server;
  figures: AssemblyFigures & VersionFigures & { fallbacks: number };
}

/**
 * `narwhal substituter`: a binary cache on this machine for a stock Nix. Narinfos come from the
 * server with their signatures (Nix checks those over NarHash, NarSize and references, not the
 * URL), rewritten to name an uncompressed NAR served here; the NAR is assembled from chunks this
 * machine has and those it fetches (nar-assembly.ts), or, when that cannot start, the server's
 * own NAR passes through. Nix checks the NarHash of whatever it receives.
 */
export async function startSubstituter(options: SubstituterOptions): Promise<Substituter> {
  const figures = { ...emptyFigures(), ...emptyVersionFigures(), fallbacks: 0 };
  const upstream: Upstream = {
    cacheUrl: options.cacheUrl.replace(/\/+$/, ''),
    headers: options.token ? { Authorization: `Bearer ${options.token}` } : {},
    received: (bytes) => {
      figures.bytesFromServer += bytes;
    },
  };
  const chunks = await ChunkCache.open(options.cacheDir, options.cacheBytes);
  const versions = new LocalVersions(options.storeRoot, join(options.cacheDir, 'versions'), upstream, figures);
  const sources = new Map<string, NarSource>();
  const assemblies = new Map<string, Promise<unknown>>();
  let earlyLookups = 0;
  /** The local versions of the path, looked up now so that its NAR's request finds them ready. */
  const lookUpEarly = (storePath: string): Promise<LocalChunkList[]> | undefined => {
    if (earlyLookups >= MAX_EARLY_LOOKUPS) return undefined;
    earlyLookups++;
    const found = versions.like(storePath).finally(() => earlyLookups--);
    found.catch(() => {});
    return found;
  };

  const narinfo = async (res: ServerResponse, hashPart: string, head: boolean): Promise<void> => {
    const answer = await fetch(`${upstream.cacheUrl}/${hashPart}.narinfo`, { headers: upstream.headers });
    if (answer.status === 404) return send(res, 404, 'not found\n');
    if (!answer.ok) return send(res, 502, `the server answered ${answer.status}\n`);
    const info = parseNarinfo(await answer.text());
    const nix32 = info.narHash.slice('sha256:'.length);
    if (sources.size >= MAX_REMEMBERED) sources.delete(sources.keys().next().value!);
    sources.set(nix32, {
      storePath: info.storePath,
      narSize: info.narSize,
      url: info.url,
      compression: info.compression,
      versions: head ? undefined : lookUpEarly(info.storePath),
    });
    const text = serializeNarinfo({
      ...info,
      url: `nar/${nix32}.nar`,
      compression: 'none',
      fileHash: info.narHash,
      fileSize: info.narSize,
    });
    res.writeHead(200, { 'Content-Type': 'text/x-nix-narinfo', 'Content-Length': Buffer.byteLength(text) });
    res.end(head ? undefined : text);
  };

  const nar = async (res: ServerResponse, nix32: string, head: boolean): Promise<void> => {
    const source = sources.get(nix32);
    if (!source) return send(res, 404, 'ask for the narinfo first\n');
    const headers = { 'Content-Type': 'application/x-nix-nar', 'Content-Length': source.narSize };
    if (head) return void res.writeHead(200, headers).end();
    // Concurrent requests for one NAR: each waits for the one before, then finds in the cache what it wrote.
    const earlier = assemblies.get(nix32);
    const done = Promise.withResolvers<void>();
    assemblies.set(nix32, done.promise);
    try {
      await earlier;
      // Looked up for the narinfo moments ago, or now; a later request looks again (paths change).
      const local = source.versions ?? versions.like(source.storePath);
      source.versions = undefined;
      const parts = assembleNar(upstream, chunks, nix32, local, figures);
      let first: IteratorResult<Uint8Array>;
      try {
        first = await parts.next();
      } catch {
        figures.fallbacks++;
        return await passThrough(res, source);
      }
      res.writeHead(200, headers);
      // Once bytes went out, a failure cuts the response: Nix sees a short NAR, never a wrong one.
      await pipeline(Readable.from(rest(first, parts), { objectMode: false }), res).catch(() => res.destroy());
    } finally {
      done.resolve();
      if (assemblies.get(nix32) === done.promise) assemblies.delete(nix32);
    }
  };

  const passThrough = async (res: ServerResponse, source: NarSource): Promise<void> => {
    const answer = await fetch(`${upstream.cacheUrl}/${source.url}`, { headers: upstream.headers });
    const compression = compressionFromNarinfo(source.compression);
    if (!answer.ok || !answer.body || compression === undefined) {
      return send(res, 502, `the server's NAR is not available (${answer.status})\n`);
    }
    res.writeHead(200, { 'Content-Type': 'application/x-nix-nar', 'Content-Length': source.narSize });
    const body = Readable.fromWeb(answer.body as import('node:stream/web').ReadableStream<Uint8Array>);
    await pipeline(body, createDecompressor(compression), res).catch(() => res.destroy());
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) return send(res, 405, 'method not allowed\n');
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/nix-cache-info') {
      const answer = await fetch(`${upstream.cacheUrl}/nix-cache-info`, { headers: upstream.headers });
      return send(res, answer.ok ? 200 : 502, answer.ok ? await answer.text() : 'the server is not reachable\n');
    }
    if (path === '/_narwhal/stats') return send(res, 200, `${JSON.stringify(figures)}\n`, 'application/json');
    const info = /^\/([0-9a-df-np-sv-z]{32})\.narinfo$/.exec(path);
    if (info) return narinfo(res, info[1], head);
    const file = /^\/nar\/([0-9a-df-np-sv-z]{52})\.nar$/.exec(path);
    if (file) return nar(res, file[1], head);
    send(res, 404, 'not found\n');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) res.destroy();
      else send(res, 502, `${err instanceof Error ? err.message : String(err)}\n`);
    });
  });
  return { server, figures };
}

async function* rest(first: IteratorResult<Uint8Array>, parts: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (!first.done) yield first.value;
  yield* parts;
}

function send(res: ServerResponse, status: number, text: string, type = 'text/plain'): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
