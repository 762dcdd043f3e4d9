import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { findCache } from '../tenancy/caches.ts';
import { requireCacheAccess } from '../tenancy/access.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { StorageFullGuard } from '../ingest/storage-full.ts';
import { isNarwhalError, NarwhalError } from '../errors.ts';
import { handleApi } from './api/api-router.ts';
import { requestToken } from './auth.ts';
import { sendError, statusFor } from './http-errors.ts';
import { handleWeb, isWebPath } from '../web/web-router.ts';
import { sendText } from './send-text.ts';
import { CACHE_INFO_ROUTE, matchRoute, normalizeCachePath, type Route } from './routes.ts';

export interface ServerOptions {
  log?: (message: string) => void;
  /** Log one line per request: method, path, status. */
  logRequests?: boolean;
  /** A connection on which nothing arrives or leaves for this long is dropped (default 300 s). */
  idleTimeoutMs?: number;
  /** A request's line and headers must all arrive within this time (default 60 s). */
  headersTimeoutMs?: number;
}

/**
 * The HTTP server: `/_api/v1/...` is the management API; `/<cache>/<file>` is routed to the
 * cache's binary cache protocol. It holds no state of its own beyond the Narwhal it serves.
 */
export function createNarwhalServer(nw: Narwhal, options: ServerOptions = {}): Server {
  const log = options.log ?? ((message: string) => console.error(message));
  const headersTimeout = options.headersTimeoutMs ?? 60_000;
  // Headers deadlines are checked on this period, so it bounds how late a slow sender is dropped.
  const full = new StorageFullGuard(nw.chunks);
  const logWhenDone = (req: IncomingMessage, res: ServerResponse): void => {
    if (options.logRequests) res.once('finish', () => log(`${req.method} ${req.url} ${res.statusCode}`));
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    logWhenDone(req, res);
    handle(nw, req, res, log).catch((err: unknown) => {
      if (isNarwhalError(err, 'storage-full')) void full.noteFull();
      sendError(res, err, log);
    });
  };
  const server = createServer({ connectionsCheckingInterval: Math.min(30_000, headersTimeout) }, onRequest);
  // An upload announced with `Expect: 100-continue` is refused before its body while the store
  // is known to be full (storage-full.ts says why that matters to Nix).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    (req.method === 'PUT' ? full.refuses() : Promise.resolve(false)).then(
      (refused) => {
        if (!refused) {
          res.writeContinue();
          return onRequest(req, res);
        }
        logWhenDone(req, res);
        // The client has not sent the body and will not: answer and close, without reading it.
        const body = 'the chunk store is full\n';
        res
          .writeHead(507, {
            'Content-Type': 'text/plain; charset=utf-8',
            'Content-Length': Buffer.byteLength(body),
            Connection: 'close',
          })
          .end(body);
      },
      (err: unknown) => sendError(res, err, log),
    );
  });
  // No absolute deadline for a request: an honest large upload on a slow link must finish.
  // An idle socket is still dropped, and headers must arrive promptly.
  server.requestTimeout = 0;
  server.headersTimeout = headersTimeout;
  server.timeout = options.idleTimeoutMs ?? 300_000;
  return server;
}

async function handle(
  nw: Narwhal,
  req: IncomingMessage,
  res: ServerResponse,
  log: (message: string) => void,
): Promise<void> {
  const method = req.method ?? 'GET';
  const rawPath = (req.url ?? '/').split('?', 1)[0];
  if (isWebPath(rawPath)) return handleWeb(nw, req, res, { statusFor, log });
  const token = await requestToken(nw, req);
  if (rawPath.startsWith('/_api/')) return handleApi({ nw, req, res, token, path: rawPath, log });

  const slash = rawPath.indexOf('/', 1);
  const cache = await findCache(nw, slash < 0 ? rawPath.slice(1) : rawPath.slice(1, slash));
  if (!cache) throw new NarwhalError('not-found', 'no such cache');
  const matched = slash < 0 ? undefined : matchRoute(normalizeCachePath(rawPath.slice(slash + 1)));
  const head = method === 'HEAD';
  const read = method === 'GET' || head;

  // Checked before the route is known to exist, so a cache the caller may not read answers
  // every name alike (tenancy/access.ts says why).
  if (read || method === 'POST') {
    requireCacheAccess(token, cache, matched?.route === CACHE_INFO_ROUTE ? 'read-cache-info' : 'read');
  }
  if (!matched) throw new NarwhalError('not-found', 'not found');
  const { route, params } = matched;
  if (read && route.get) return route.get({ nw, cache, req, res, params, head, token, log });
  if (method === 'POST' && route.post) return route.post({ nw, cache, req, res, params, head: false, token, log });
  if (method === 'PUT' && route.put) {
    requireCacheAccess(token, cache, 'push');
    return route.put({ nw, cache, req, res, params, head: false, token, log });
  }
  res.setHeader('Allow', allowed(route).join(', '));
  sendText(res, 405, 'method not allowed\n', { close: true });
}

function allowed(route: Route): string[] {
  return [...(route.get ? ['GET', 'HEAD'] : []), ...(route.put ? ['PUT'] : []), ...(route.post ? ['POST'] : [])];
}
