import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import { findCache } from '../tenancy/caches.ts';
import { requireCacheAccess } from '../tenancy/access.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { StorageFullGuard } from '../ingest/storage-full.ts';
import { isNarwhalError, NarwhalError } from '../errors.ts';
import { formatLogLine, type LogEntry, type LogFormat } from '../runtime/log-lines.ts';
import { handleApi } from './api/api-router.ts';
import { requestToken } from './auth.ts';
import { getMetrics, type MetricsAccess } from './handlers/metrics.ts';
import { sendError, statusFor } from './http-errors.ts';
import { handleWeb, isWebPath } from '../web/web-router.ts';
import { requestIdOf } from './request-id.ts';
import { isHttp2, sendText } from './send-text.ts';
import { CACHE_INFO_ROUTE, matchRoute, normalizeCachePath, type Route } from './routes.ts';

export interface ServerOptions {
  /** Where log lines go, each without its newline (default: stderr). */
  log?: (line: string) => void;
  /**
   * Log one line per request: method, path, status (then `HTTP/2` for a request over HTTP/2),
   * time, bytes and request id.
   */
  logRequests?: boolean;
  /** How log lines are written (default text). */
  logFormat?: LogFormat;
  /**
   * `/metrics` on this listener: open, limited to a bearer token, or answered 404 (`false`: a
   * separate listener serves it, createMetricsServer).
   */
  metrics?: MetricsAccess | false;
  /** A connection on which nothing arrives or leaves for this long is dropped (default 300 s). */
  idleTimeoutMs?: number;
  /** A request's line and headers must all arrive within this time (default 60 s). */
  headersTimeoutMs?: number;
}

/** What the server learns of a request while handling it, for its metrics and log line. */
interface RequestState {
  /** The route's name; `other` for paths no route knows. */
  route: string;
}

/**
 * The HTTP server: `/_api/v1/...` is the management API; `/<cache>/<file>` is routed to the
 * cache's binary cache protocol; `/metrics` answers the metrics. It holds no state of its own
 * beyond the Narwhal it serves.
 */
export function createNarwhalServer(nw: Narwhal, options: ServerOptions = {}): Server {
  const headersTimeout = options.headersTimeoutMs ?? 60_000;
  // Headers deadlines are checked on this period, so it bounds how late a slow sender is dropped.
  const server = createServer({ connectionsCheckingInterval: Math.min(30_000, headersTimeout) });
  listenForRequests(server, nw, options);
  // No absolute deadline for a request: an honest large upload on a slow link must finish.
  // An idle socket is still dropped, and headers must arrive promptly.
  server.requestTimeout = 0;
  server.headersTimeout = headersTimeout;
  server.timeout = options.idleTimeoutMs ?? 300_000;
  return server;
}

/**
 * Answers the requests `server` receives: node:http's, or node:http2's with HTTP/1.1 allowed
 * (tls-server.ts). The caller sets the timeouts.
 */
export function listenForRequests(server: Server | Http2SecureServer, nw: Narwhal, options: ServerOptions): void {
  const full = new StorageFullGuard(nw.chunks);
  const track = requestTracker(nw, options);
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const { state, log } = track(req, res);
    handle(nw, req, res, log, state, options.metrics ?? {}).catch((err: unknown) => {
      if (isNarwhalError(err, 'storage-full')) void full.noteFull();
      nw.metrics.recordError(err instanceof NarwhalError ? err.code : 'internal');
      sendError(res, err, log);
    });
  };
  // An upload announced with `Expect: 100-continue` is refused before its body while the store
  // is known to be full (storage-full.ts says why that matters to Nix).
  const onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    (req.method === 'PUT' ? full.refuses() : Promise.resolve(false)).then(
      (refused) => {
        if (!refused) {
          res.writeContinue();
          return onRequest(req, res);
        }
        track(req, res);
        nw.metrics.recordError('storage-full');
        // The client has not sent the body and will not: answer and close, without reading it.
        const body = 'the chunk store is full\n';
        res
          .writeHead(507, {
            'Content-Type': 'text/plain; charset=utf-8',
            'Content-Length': Buffer.byteLength(body),
            ...(isHttp2(req) ? {} : { Connection: 'close' }),
          })
          .end(body);
      },
      (err: unknown) => sendError(res, err, track(req, res).log),
    );
  };
  // Over HTTP/2 the compat API's request and response (Http2ServerRequest, Http2ServerResponse)
  // stand in for node:http's: they have every member the handlers use, and where the protocols
  // differ (connection headers, whose connection a socket is) the code asks isHttp2.
  const asHttp1 = (listener: typeof onRequest) => listener as (req: unknown, res: unknown) => void;
  server.on('request', asHttp1(onRequest));
  server.on('checkContinue', asHttp1(onCheckContinue));
}

/**
 * A listener of its own for `/metrics` (`serve --metrics-listen`), so that scrapes can be kept to
 * an internal network; it answers 404 to everything else.
 */
export function createMetricsServer(nw: Narwhal, options: ServerOptions & { metrics: MetricsAccess }): Server {
  const track = requestTracker(nw, options);
  return createServer((req, res) => {
    const { state, log } = track(req, res);
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics')
      return sendError(res, new NarwhalError('not-found', 'this listener serves only /metrics'), log);
    state.route = 'metrics';
    getMetrics(nw, req, res, options.metrics).catch((err: unknown) => sendError(res, err, log));
  });
}

/**
 * Gives each request a log bound to its id (echoed in X-Request-Id when the client sent one or
 * requests are logged), and when the answer is done, records it in the metrics and, with
 * logRequests, logs it.
 */
function requestTracker(
  nw: Narwhal,
  options: ServerOptions,
): (req: IncomingMessage, res: ServerResponse) => { state: RequestState; log: (message: string) => void } {
  const sink = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const format = options.logFormat ?? 'text';
  const write = (entry: LogEntry): void => sink(formatLogLine(format, entry));
  return (req, res) => {
    const started = performance.now();
    const bytes = byteCounter(req, res);
    // Made only when something will show it: a UUID and a header cost a lookup a fifth of its time.
    let requestId: string | undefined;
    const idOf = (): string => (requestId ??= requestIdOf(req));
    const state: RequestState = { route: 'other' };
    if (options.logRequests || req.headers['x-request-id'] !== undefined) res.setHeader('X-Request-Id', idOf());
    // 'close' comes once per response.
    res.on('close', () => {
      const seconds = (performance.now() - started) / 1000;
      const method = req.method ?? 'GET';
      const { bytesIn, bytesOut } = bytes();
      nw.metrics.recordRequest({ route: state.route, method, status: res.statusCode, seconds, bytesIn, bytesOut });
      if (state.route === 'narinfo' && (method === 'GET' || method === 'HEAD')) {
        if (res.statusCode === 200 || res.statusCode === 404) nw.metrics.recordNarinfoLookup(res.statusCode === 200);
      }
      if (options.logRequests) {
        const path = (req.url ?? '/').split('?', 1)[0];
        write({
          level: res.statusCode >= 500 ? 'error' : 'info',
          msg: `${method} ${path} ${res.statusCode}${isHttp2(req) ? ' HTTP/2' : ''}`,
          requestId: idOf(),
          method,
          route: state.route,
          path,
          status: res.statusCode,
          durationMs: Math.round(seconds * 1e4) / 10,
          bytes: bytesOut,
        });
      }
    });
    const log = (message: string): void =>
      write({ level: message.startsWith('error') ? 'error' : 'info', msg: message, requestId: idOf() });
    return { state, log };
  };
}

/**
 * The bytes a request moved, read when it is done. Over HTTP/1.1 a connection carries one request
 * at a time, so its socket's counters tell. Over HTTP/2 streams share the socket, so the bodies'
 * declared lengths stand in (headers and frames uncounted; a body cut short counted whole).
 */
function byteCounter(req: IncomingMessage, res: ServerResponse): () => { bytesIn: number; bytesOut: number } {
  if (isHttp2(req)) {
    return () => ({
      bytesIn: Number(req.headers['content-length'] ?? 0) || 0,
      bytesOut: req.method === 'HEAD' ? 0 : Number(res.getHeader('content-length') ?? 0) || 0,
    });
  }
  const socket = req.socket;
  const readBefore = socket.bytesRead;
  const writtenBefore = socket.bytesWritten;
  return () => ({ bytesIn: socket.bytesRead - readBefore, bytesOut: socket.bytesWritten - writtenBefore });
}

async function handle(
  nw: Narwhal,
  req: IncomingMessage,
  res: ServerResponse,
  log: (message: string) => void,
  state: RequestState,
  metrics: MetricsAccess | false,
): Promise<void> {
  const method = req.method ?? 'GET';
  const rawPath = (req.url ?? '/').split('?', 1)[0];
  if (rawPath === '/metrics' && metrics !== false) {
    state.route = 'metrics';
    return getMetrics(nw, req, res, metrics);
  }
  if (isWebPath(rawPath)) {
    state.route = 'web';
    return handleWeb(nw, req, res, { statusFor, log });
  }
  const token = await requestToken(nw, req);
  if (rawPath.startsWith('/_api/')) {
    state.route = 'api';
    return handleApi({ nw, req, res, token, path: rawPath, log });
  }

  const slash = rawPath.indexOf('/', 1);
  const cache = await findCache(nw, slash < 0 ? rawPath.slice(1) : rawPath.slice(1, slash));
  if (!cache) throw new NarwhalError('not-found', 'no such cache');
  const matched = slash < 0 ? undefined : matchRoute(normalizeCachePath(rawPath.slice(slash + 1)));
  if (matched) state.route = matched.route.name;
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
