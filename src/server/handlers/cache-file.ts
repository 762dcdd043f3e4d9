import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { cacheFileLimit, getCacheFile, putCacheFile, readCacheFile } from '../../tenancy/cache-files.ts';
import { NarwhalError } from '../../errors.ts';
import { refuseDeclaredOver, requestBody } from '../body.ts';
import type { RequestContext } from '../request-context.ts';

/** The file's name inside the cache: the request path below `/<cache>/`. */
function fileName(ctx: RequestContext): string {
  return ctx.params[ctx.params.length - 1];
}

/** GET streams the content a piece at a time as the client takes it; HEAD answers from the record. */
export async function getFile(ctx: RequestContext): Promise<void> {
  const file = await getCacheFile(ctx.nw, ctx.cache, fileName(ctx));
  if (!file) throw new NarwhalError('not-found', 'no such file');
  ctx.res.writeHead(200, {
    'Content-Type': file.contentType,
    'Content-Length': file.size,
    ...(file.contentEncoding ? { 'Content-Encoding': file.contentEncoding } : {}),
  });
  if (ctx.head) return void ctx.res.end();
  await pipeline(Readable.from(readCacheFile(ctx.nw, file), { objectMode: false }), ctx.res);
}

export async function putFile(ctx: RequestContext): Promise<void> {
  const name = fileName(ctx);
  refuseDeclaredOver(ctx.req, cacheFileLimit(name));
  const encoding = ctx.req.headers['content-encoding'];
  await putCacheFile(ctx.nw, ctx.cache, name, requestBody(ctx.req), {
    contentType: ctx.req.headers['content-type'] ?? 'application/octet-stream',
    contentEncoding: encoding && encoding !== 'identity' ? encoding : null,
  });
  ctx.res.writeHead(204).end();
}
