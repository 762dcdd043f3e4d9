import { narinfoWithUpstreams } from '../../upstream/pull-through.ts';
import { putNarinfo as storeNarinfo } from '../../ingest/put-narinfo.ts';
import { NarwhalError } from '../../errors.ts';
import { prepareUpgradeDeltas } from '../../serving/upgrade-deltas.ts';
import { readBody } from '../body.ts';
import { sendText } from '../send-text.ts';
import type { RequestContext } from '../request-context.ts';

const MAX_NARINFO_SIZE = 64 * 1024;

export async function getNarinfo({ nw, cache, res, params }: RequestContext): Promise<void> {
  const text = await narinfoWithUpstreams(nw, cache, params[0]);
  if (text === undefined) throw new NarwhalError('not-found', 'no such path');
  sendText(res, 200, text, { contentType: 'text/x-nix-narinfo' });
}

export async function putNarinfo({ nw, cache, req, res, params, token }: RequestContext): Promise<void> {
  const body = await readBody(req, MAX_NARINFO_SIZE);
  const stored = await storeNarinfo(nw, cache, params[0], body.toString('utf8'), { token });
  res.writeHead(204).end();
  prepareUpgradeDeltas(nw, cache, stored.narId, stored.storePath);
}
