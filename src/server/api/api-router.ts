import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  cachesVisibleTo,
  localAdmin,
  requireApiToken,
  requireCacheAdmin,
  requireGlobalAdmin,
} from '../../tenancy/admin-operations.ts';
import type { Narwhal } from '../../context/narwhal.ts';
import { NarwhalError } from '../../errors.ts';
import type { TokenRecord } from '../../metadata/metadata-store.ts';
import { readBody } from '../body.ts';
import { cacheChangesFromJson, newCacheFromJson, newTokenFromJson } from './api-json.ts';
import { handlePushApi } from './push-routes.ts';
import { sendJson } from './send-json.ts';

export interface ApiContext {
  nw: Narwhal;
  req: IncomingMessage;
  res: ServerResponse;
  token: TokenRecord | undefined;
  path: string;
  log: (message: string) => void;
}

const MAX_JSON_BODY = 64 * 1024;

/**
 * The management API under `/_api/v1/` (JSON in and out). Who may call what is decided in
 * tenancy/admin-operations.ts, each check made before the body is read.
 */
export async function handleApi(ctx: ApiContext): Promise<void> {
  const { nw, req } = ctx;
  const method = req.method ?? 'GET';
  const token = requireApiToken(ctx.token);
  const admin = localAdmin(nw);
  const segments = ctx.path.replace(/^\/_api\/v1\//, '').split('/');
  if (!ctx.path.startsWith('/_api/v1/')) throw new NarwhalError('not-found', 'unknown API version');

  const [collection, name, extra, ...rest] = segments;
  if (collection === 'caches' && name !== undefined && extra !== undefined && rest.length === 0) {
    if (await handlePushApi(nw, req, ctx.res, ctx.token, name, extra)) return;
  }
  if (extra !== undefined) throw new NarwhalError('not-found', 'no such API route');
  if (collection === 'caches' && name === undefined) {
    if (method === 'GET') return sendJson(ctx.res, 200, await cachesVisibleTo(nw, token));
    if (method === 'POST') {
      requireGlobalAdmin(token);
      const { name: newName, options } = newCacheFromJson(await readJson(ctx));
      return sendJson(ctx.res, 201, await admin.createCache(newName, options));
    }
  }
  if (collection === 'caches' && name !== undefined) {
    await requireCacheAdmin(nw, token, name);
    if (method === 'GET') return sendJson(ctx.res, 200, await admin.cacheInfo(name));
    if (method === 'PATCH')
      return sendJson(ctx.res, 200, await admin.configureCache(name, cacheChangesFromJson(await readJson(ctx))));
    if (method === 'DELETE') {
      await admin.destroyCache(name);
      return sendJson(ctx.res, 200, { destroyed: name });
    }
  }
  if (collection === 'tokens') {
    requireGlobalAdmin(token);
    if (name === undefined && method === 'GET') return sendJson(ctx.res, 200, await admin.listTokens());
    if (name === undefined && method === 'POST')
      return sendJson(ctx.res, 201, await admin.createToken(newTokenFromJson(await readJson(ctx))));
    if (name !== undefined && method === 'DELETE') {
      await admin.revokeToken(name);
      return sendJson(ctx.res, 200, { revoked: name });
    }
  }
  throw new NarwhalError('not-found', 'no such API route');
}

async function readJson(ctx: ApiContext): Promise<unknown> {
  const body = await readBody(ctx.req, MAX_JSON_BODY);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new NarwhalError('bad-request', 'the body must be JSON');
  }
}
