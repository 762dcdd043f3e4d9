import { nixCacheInfo } from '../../tenancy/caches.ts';
import { readBody } from '../body.ts';
import { sendText } from '../send-text.ts';
import type { RequestContext } from '../request-context.ts';
import { NarwhalError } from '../../errors.ts';

export async function getCacheInfo({ cache, res }: RequestContext): Promise<void> {
  sendText(res, 200, nixCacheInfo(cache), { contentType: 'text/x-nix-cache-info' });
}

/** Nix PUTs a nix-cache-info to a cache it found none in; ours is generated, so only check it. */
export async function putCacheInfo({ req, res }: RequestContext): Promise<void> {
  const text = (await readBody(req, 4096)).toString('utf8');
  const storeDir = /^StoreDir: (.*)$/m.exec(text)?.[1];
  if (storeDir !== undefined && storeDir !== '/nix/store') {
    throw new NarwhalError('bad-request', `this cache serves /nix/store, not ${storeDir}`);
  }
  res.writeHead(204).end();
}
