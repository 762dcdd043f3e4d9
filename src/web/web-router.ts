import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Narwhal } from '../context/narwhal.ts';
import { NarwhalError } from '../errors.ts';
import { authenticate } from '../tenancy/tokens.ts';
import { pinPath } from '../tenancy/paths.ts';
import { forgetGcNext } from './gc-next-view.ts';
import { cachePage } from './cache-page.ts';
import { filePage, sendFileDownload } from './file-page.ts';
import { readForm } from './form.ts';
import { html } from './html.ts';
import { homePage, searchPage } from './home-page.ts';
import { links } from './links.ts';
import { page, PAGE_HEADERS, sendPage } from './page.ts';
import { pathPage } from './path-page.ts';
import { checkFormPost, openSession, signInCookies, signOutCookies, type WebSession } from './session.ts';
import { STYLESHEET } from './style.ts';
import { mayPin, requireVisibleCache } from './visible-caches.ts';

export interface WebOptions {
  /** The HTTP status of an error (the server's one mapping). */
  statusFor(err: unknown): number;
  log(message: string): void;
}

/** The UI answers `/` and everything under `/_ui/` (no cache name starts with `_`). */
export function isWebPath(path: string): boolean {
  return path === '/' || path.startsWith('/_ui/');
}

const CACHE_PAGE = /^\/_ui\/c\/([^/]+)$/;
const PIN = /^\/_ui\/c\/([^/]+)\/pin$/;
const PATH_PAGE = /^\/_ui\/c\/([^/]+)\/p\/([^/]+)$/;
const FILE_PAGE = /^\/_ui\/c\/([^/]+)\/p\/([^/]+)\/f(?:\/(.*))?$/;

/** Answers a request of the web UI: pages on GET and HEAD, forms on POST; errors as a page. */
export async function handleWeb(
  nw: Narwhal,
  req: IncomingMessage,
  res: ServerResponse,
  options: WebOptions,
): Promise<void> {
  const target = req.url ?? '/';
  const question = target.indexOf('?');
  // The path as sent: URL parsing would resolve dot segments, and a page must not answer for a name it does not have.
  const url = {
    pathname: question < 0 ? target : target.slice(0, question),
    searchParams: new URLSearchParams(question < 0 ? '' : target.slice(question + 1)),
  };
  if (url.pathname === '/_ui/style.css') return sendStylesheet(res);
  const session = await openSession(nw, req);
  try {
    await route(nw, req, res, url, session);
  } catch (err) {
    const status = options.statusFor(err);
    if (status >= 500) options.log(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const message =
      err instanceof NarwhalError && status < 500
        ? err.message
        : status === 503
          ? (err as Error).message
          : 'internal error';
    const body = html`<h1>${status === 404 ? 'Not found' : `Error ${status}`}</h1><p class="error">${message}</p><p><a href="/">Caches</a></p>`;
    sendPage(res, status, page(session, `Error ${status}`, body), { 'Set-Cookie': session.setCookies });
  }
}

async function route(
  nw: Narwhal,
  req: IncomingMessage,
  res: ServerResponse,
  url: { pathname: string; searchParams: URLSearchParams },
  session: WebSession,
): Promise<void> {
  const path = url.pathname;
  const read = req.method === 'GET' || req.method === 'HEAD';
  const cookies = { 'Set-Cookie': session.setCookies };
  if (req.method === 'POST') return post(nw, req, res, path, session);
  if (!read) {
    res.setHeader('Allow', 'GET, HEAD, POST');
    return sendPage(res, 405, page(session, 'Method not allowed', html`<h1>Method not allowed</h1>`), cookies);
  }
  if (path === '/') {
    const query = url.searchParams.get('q');
    return sendPage(
      res,
      200,
      query === null ? await homePage(nw, session) : await searchPage(nw, session, query),
      cookies,
    );
  }
  let match = CACHE_PAGE.exec(path);
  if (match) {
    const cache = await requireVisibleCache(nw, session.token, decode(match[1]));
    return sendPage(res, 200, await cachePage(nw, session, req, cache), cookies);
  }
  match = PATH_PAGE.exec(path);
  if (match) {
    const cache = await requireVisibleCache(nw, session.token, decode(match[1]));
    return sendPage(res, 200, await pathPage(nw, session, cache, decode(match[2])), cookies);
  }
  match = FILE_PAGE.exec(path);
  if (match) {
    const cache = await requireVisibleCache(nw, session.token, decode(match[1]));
    const request = { cache, hashPart: decode(match[2]), file: filePath(match[3] ?? '') };
    if (url.searchParams.has('download')) return sendFileDownload(nw, res, request);
    return sendPage(res, 200, await filePage(nw, session, request), cookies);
  }
  throw new NarwhalError('not-found', 'no such page');
}

async function post(
  nw: Narwhal,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  session: WebSession,
): Promise<void> {
  const known = path === '/_ui/sign-in' || path === '/_ui/sign-out' || PIN.test(path);
  if (!known) throw new NarwhalError('not-found', 'no such form');
  const form = await readForm(req);
  checkFormPost(req, session, form);
  if (path === '/_ui/sign-in') {
    const secret = (form.get('token') ?? '').trim();
    await authenticate(nw, secret).catch(() => {
      throw new NarwhalError('unauthorized', 'that token is not valid (unknown, revoked or expired)');
    });
    return redirect(res, links.home(), signInCookies(req, secret));
  }
  if (path === '/_ui/sign-out') return redirect(res, links.home(), signOutCookies(req));
  const cache = await requireVisibleCache(nw, session.token, decode(PIN.exec(path)![1]));
  if (!mayPin(session.token, cache)) {
    throw new NarwhalError('forbidden', `pinning in ${cache.name} needs a token with push or admin on it`);
  }
  const pinned = await pinPath(nw, cache.name, (form.get('path') ?? '').trim(), form.get('pinned') === '1');
  forgetGcNext(nw, cache.id);
  const hashPart = pinned.storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
  redirect(
    res,
    form.get('back') === 'cache' ? links.cache(cache.name) : links.path(cache.name, hashPart),
    session.setCookies,
  );
}

/** 303: the browser fetches the page with GET, so reloading it does not post the form again. */
function redirect(res: ServerResponse, location: string, setCookies: string[]): void {
  res.writeHead(303, { ...PAGE_HEADERS, Location: location, 'Set-Cookie': setCookies, 'Content-Length': 0 }).end();
}

function sendStylesheet(res: ServerResponse): void {
  res.writeHead(200, {
    'Content-Type': 'text/css; charset=utf-8',
    'Content-Length': Buffer.byteLength(STYLESHEET),
    'Cache-Control': 'public, max-age=3600',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(res.req.method === 'HEAD' ? undefined : STYLESHEET);
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new NarwhalError('not-found', 'no such page');
  }
}

/** A file's path from the URL: decoded segments; none may be empty, `.` or `..`, or hold a `/` (no NAR has such names). */
function filePath(raw: string): string {
  if (raw === '') return '';
  const segments = raw.split('/').map(decode);
  if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('/') || s.includes('\0'))) {
    throw new NarwhalError('not-found', 'no such file in this path');
  }
  return segments.join('/');
}
