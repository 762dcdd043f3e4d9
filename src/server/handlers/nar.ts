import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ingestNar } from '../../cache/ingest-nar.ts';
import { assertChunksPresent, readNarBytes, readStoredFrames } from '../../cache/nar-reader.ts';
import { mayAccess } from '../../cache/access.ts';
import { renderCaibx } from '../../cache/casync-view.ts';
import { noteNarAccess } from '../../cache/access-times.ts';
import { compressionFromNarUrlSuffix, type Compression } from '../../compression/compression.ts';
import { createCompressor } from '../../compression/compress.ts';
import { decodeNixBase32 } from '../../nix/base32.ts';
import { NarwhalError } from '../../errors.ts';
import type { NarRecord } from '../../metadata/metadata-store.ts';
import { requestBody } from '../body.ts';
import { parseRange } from '../range.ts';
import type { RequestContext } from '../request-context.ts';

const NAR_TYPE = 'application/x-nix-nar';

/**
 * GET/HEAD `nar/<hash>.nar<suffix>`. The canonical names are the ones our narinfos give:
 * `nar/<narhash>.nar.zst` (the stored frames back to back) and `nar/<narhash>.nar` (plain, with
 * Range). A name a client uploaded under (`nar/<filehash>.nar.xz`, ...) exists too: a pushing Nix
 * remembers the narinfo it wrote and later downloads that name expecting that compression, so it
 * is served compressed that way on the fly.
 */
export async function getNar(ctx: RequestContext): Promise<void> {
  const [hash, suffix] = ctx.params;
  const narHash = `sha256:${hash}`;
  if (suffix === '.zst' || suffix === '') {
    const nar = await findNar(ctx, narHash);
    if (nar) return suffix === '.zst' ? sendFrames(ctx, nar) : sendPlain(ctx, nar);
  }
  const uploaded = await ctx.nw.meta.getNarByUpload(narHash, suffix);
  const nar = uploaded && (await findNar(ctx, uploaded.narHash));
  if (!nar) throw new NarwhalError('not-found', 'no such NAR');
  if (suffix === '.zst') return sendFrames(ctx, nar);
  // Without a suffix the upload was plain (then its name is the NarHash, handled above) or gzip.
  return sendRecompressed(ctx, nar, suffix === '' ? 'gzip' : compressionFromNarUrlSuffix(suffix.slice(1))!);
}

/**
 * The NAR, if this request may see it: a path of this cache uses it, or (for HEAD, the check
 * before an upload) the caller may push here, so an upload another cache already made is not
 * sent again. HEAD answers from metadata alone; GET first makes sure every chunk is there.
 * A NAR flagged damaged is absent, also for the HEAD before an upload, so that a client pushing
 * it again sends it (which repairs it).
 */
async function findNar({ nw, cache, token, head }: RequestContext, narHash: string): Promise<NarRecord | undefined> {
  const nar = await nw.meta.getNar(narHash);
  if (!nar || nar.damagedAt !== null) return undefined;
  if (!(head && mayAccess(token, cache, 'push')) && !(await nw.meta.cacheHasNar(cache.id, nar.id))) return undefined;
  if (!head) {
    await assertChunksPresent(nw, nar);
    await noteNarAccess(nw, cache, nar);
  }
  return nar;
}

async function sendRecompressed({ nw, res, head }: RequestContext, nar: NarRecord, compression: Compression): Promise<void> {
  res.writeHead(200, { 'Content-Type': NAR_TYPE });
  if (head) return void res.end();
  await pipeline(Readable.from(readNarBytes(nw, nar), { objectMode: false }), createCompressor(compression), res);
}

async function sendFrames({ nw, res, head }: RequestContext, nar: NarRecord): Promise<void> {
  res.writeHead(200, { 'Content-Type': NAR_TYPE, 'Content-Length': nar.storedSize });
  if (head) return void res.end();
  await pipeline(Readable.from(readStoredFrames(nw, nar), { objectMode: false }), res);
}

async function sendPlain({ nw, req, res, head }: RequestContext, nar: NarRecord): Promise<void> {
  const range = parseRange(req.headers.range, nar.narSize);
  if (range === 'unsatisfiable') {
    res.writeHead(416, { 'Content-Range': `bytes */${nar.narSize}`, 'Content-Length': 0 }).end();
    return;
  }
  const { start, end } = range ?? { start: 0, end: nar.narSize };
  res.writeHead(range ? 206 : 200, {
    'Content-Type': NAR_TYPE,
    'Content-Length': end - start,
    'Accept-Ranges': 'bytes',
    ...(range ? { 'Content-Range': `bytes ${start}-${end - 1}/${nar.narSize}` } : {}),
  });
  if (head) return void res.end();
  await pipeline(Readable.from(readNarBytes(nw, nar, start, end), { objectMode: false }), res);
}

export async function putNar({ nw, req, res, params }: RequestContext): Promise<void> {
  const [hash, suffix] = params;
  const compression = suffix === '' ? 'auto' : compressionFromNarUrlSuffix(suffix.slice(1));
  if (!compression) throw new NarwhalError('bad-request', `unsupported compression suffix ${suffix}`);
  await ingestNar(nw, requestBody(req), {
    compression,
    upload: { fileHash: decodeNixBase32(hash), fileHashText: `sha256:${hash}`, suffix },
  });
  res.writeHead(204).end();
}

export async function getCaibx({ nw, cache, res, params, head }: RequestContext): Promise<void> {
  const nar = await nw.meta.getNar(`sha256:${params[0]}`);
  if (!nar || !(await nw.meta.cacheHasNar(cache.id, nar.id))) throw new NarwhalError('not-found', 'no such NAR');
  const index = renderCaibx(nar);
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': index.length });
  res.end(head ? undefined : index);
}

/** A chunk file, served only when a NAR this cache uses contains it. */
export async function getChunk({ nw, cache, res, params, head }: RequestContext): Promise<void> {
  if (params[1].slice(0, 4) !== params[0]) throw new NarwhalError('not-found', 'no such chunk');
  const id = Buffer.from(params[1], 'hex');
  if (!(await nw.meta.cacheHasChunk(cache.id, id))) throw new NarwhalError('not-found', 'no such chunk');
  const stored = head ? await nw.chunks.storedSize(id) : await nw.chunks.get(id).catch(notFoundIfMissing);
  if (stored === undefined) throw new NarwhalError('not-found', 'no such chunk');
  const length = typeof stored === 'number' ? stored : stored.length;
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': length });
  res.end(typeof stored === 'number' ? undefined : stored);
}

function notFoundIfMissing(err: unknown): never {
  if (err instanceof NarwhalError && err.code === 'chunk-missing') throw new NarwhalError('not-found', 'no such chunk');
  throw err;
}
