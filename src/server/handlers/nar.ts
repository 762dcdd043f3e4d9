import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ingestNar } from '../../ingest/ingest-nar.ts';
import { readNarBytes, readStoredFrames } from '../../serving/nar-reader.ts';
import { caibxOf, chunkFileOf, openNarByHash, openNarByUploadName } from '../../serving/nar-downloads.ts';
import { compressionFromNarUrlSuffix, type Compression } from '../../compression/compression.ts';
import { createCompressor } from '../../compression/compress.ts';
import { decodeNixBase32 } from '../../nix/base32.ts';
import { NarwhalError } from '../../errors.ts';
import type { NarRecord } from '../../metadata/metadata-store.ts';
import { requestBody } from '../body.ts';
import { parseRange } from '../range.ts';
import type { RequestContext } from '../request-context.ts';
import { openPulledNar, pullByNarHash, pulledNarCompression } from '../../upstream/pull-through.ts';

const NAR_TYPE = 'application/x-nix-nar';

/**
 * GET/HEAD `nar/<hash>.nar<suffix>`: by NarHash as our narinfos name them (`.nar.zst`, the stored
 * frames back to back; `.nar`, plain with Range), else by the name a client uploaded it under.
 */
export async function getNar(ctx: RequestContext): Promise<void> {
  const [hash, suffix] = ctx.params;
  const request = { cache: ctx.cache, token: ctx.token, head: ctx.head };
  if (suffix === '.zst' || suffix === '') {
    const nar = await openNarByHash(ctx.nw, request, `sha256:${hash}`);
    if (nar) return suffix === '.zst' ? sendFrames(ctx, nar) : sendPlain(ctx, nar);
  }
  const found = await openNarByUploadName(ctx.nw, request, `sha256:${hash}`, suffix);
  if (!found) throw new NarwhalError('not-found', 'no such NAR');
  return sendCompressed(ctx, found.nar, found.compression);
}

/** A stored NAR in `compression`: its frames for zstd, else compressed on the fly (a few at once). */
async function sendCompressed(ctx: RequestContext, nar: NarRecord, compression: Compression): Promise<void> {
  if (compression === 'zstd') return sendFrames(ctx, nar);
  if (ctx.head) return void ctx.res.writeHead(200, { 'Content-Type': NAR_TYPE }).end();
  return ctx.nw.recompressions.run(() => sendRecompressed(ctx, nar, compression));
}

async function sendRecompressed({ nw, res }: RequestContext, nar: NarRecord, compression: Compression): Promise<void> {
  res.writeHead(200, { 'Content-Type': NAR_TYPE });
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

export async function putNar({ nw, cache, req, res, params }: RequestContext): Promise<void> {
  const [hash, suffix] = params;
  const compression = suffix === '' ? 'auto' : compressionFromNarUrlSuffix(suffix.slice(1));
  if (!compression) throw new NarwhalError('bad-request', `unsupported compression suffix ${suffix}`);
  await ingestNar(nw, requestBody(req), {
    compression,
    uploadedTo: cache.id,
    upload: { fileHash: decodeNixBase32(hash), fileHashText: `sha256:${hash}`, suffix },
  });
  res.writeHead(204).end();
}

/**
 * GET/HEAD `pull/<hashPart>.nar<suffix>`, the NAR a narinfo answered from an upstream names, in
 * the upstream's compression: the upstream's file as it arrives, or the stored NAR. A file that
 * fails once bytes went out cuts the connection (never a short 200 that ends cleanly).
 */
export async function getPulledNar(ctx: RequestContext): Promise<void> {
  const { nw, res, head, params } = ctx;
  const compression = pulledNarCompression(params[1].slice(1));
  if (!compression) throw new NarwhalError('not-found', 'no such NAR');
  const found = await openPulledNar(nw, { cache: ctx.cache, token: ctx.token, head }, params[0], compression);
  if ('nar' in found)
    return compression === 'none' ? sendPlain(ctx, found.nar) : sendCompressed(ctx, found.nar, compression);
  const length = 'head' in found ? found.head : found.fileSize;
  res.writeHead(200, { 'Content-Type': NAR_TYPE, ...(length === undefined ? {} : { 'Content-Length': length }) });
  if ('head' in found) return void res.end();
  await pipeline(found.file, res).catch(() => res.destroy());
}

export async function getCaibx({ nw, cache, res, params, head }: RequestContext): Promise<void> {
  const narHash = `sha256:${params[0]}`;
  // A substituter asks for the chunk list of a path answered from an upstream: pulled first.
  const index = await caibxOf(nw, cache, narHash).catch(async (err: unknown) => {
    if (!(err instanceof NarwhalError && err.code === 'not-found') || !(await pullByNarHash(nw, cache, narHash)))
      throw err;
    return caibxOf(nw, cache, narHash);
  });
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': index.length });
  res.end(head ? undefined : index);
}

export async function getChunk({ nw, cache, res, params, head }: RequestContext): Promise<void> {
  if (params[1].slice(0, 4) !== params[0]) throw new NarwhalError('not-found', 'no such chunk');
  const stored = await chunkFileOf(nw, cache, Buffer.from(params[1], 'hex'), head);
  const length = typeof stored === 'number' ? stored : stored.length;
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': length });
  res.end(typeof stored === 'number' ? undefined : stored);
}
