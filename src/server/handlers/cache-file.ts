import { getCacheFile, putCacheFile, MAX_CACHE_FILE_SIZE } from '../../cache/cache-files.ts';
import { NarwhalError } from '../../errors.ts';
import { readBody } from '../body.ts';
import type { RequestContext } from '../request-context.ts';

/** The file's name inside the cache: the request path below `/<cache>/`. */
function fileName(ctx: RequestContext): string {
  return ctx.params[ctx.params.length - 1];
}

export async function getFile(ctx: RequestContext): Promise<void> {
  const file = await getCacheFile(ctx.nw, ctx.cache, fileName(ctx));
  if (!file) throw new NarwhalError('not-found', 'no such file');
  ctx.res.writeHead(200, {
    'Content-Type': file.contentType,
    'Content-Length': file.content.length,
    ...(file.contentEncoding ? { 'Content-Encoding': file.contentEncoding } : {}),
  });
  ctx.res.end(ctx.head ? undefined : file.content);
}

export async function putFile(ctx: RequestContext): Promise<void> {
  const content = await readBody(ctx.req, MAX_CACHE_FILE_SIZE);
  const encoding = ctx.req.headers['content-encoding'];
  await putCacheFile(ctx.nw, ctx.cache, fileName(ctx), {
    content,
    contentType: ctx.req.headers['content-type'] ?? 'application/octet-stream',
    contentEncoding: encoding && encoding !== 'identity' ? encoding : null,
  });
  ctx.res.writeHead(204).end();
}
