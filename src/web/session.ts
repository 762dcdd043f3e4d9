import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { NarwhalError } from '../errors.ts';
import type { Narwhal } from '../context/narwhal.ts';
import type { TokenRecord } from '../metadata/metadata-store.ts';
import { authenticate } from '../tenancy/tokens.ts';

/** The token a person signed in with, as typed: HttpOnly, so no script can read it. */
const TOKEN_COOKIE = 'narwhal_token';
/** A random value per browser session, renewed at sign-in and sign-out; CSRF tokens derive from it. */
const SESSION_COOKIE = 'narwhal_session';
const NONCE = /^[A-Za-z0-9_-]{43}$/;

export interface WebSession {
  /** The live token of the person signed in, if any. */
  token: TokenRecord | undefined;
  /** The value every form of this session must send back as `csrf`. */
  csrf: string;
  /** Cookies to set with the answer (a new session, a token found dead dropped). */
  setCookies: string[];
}

/**
 * The session of a request to the UI. A token cookie that no longer authenticates (revoked,
 * expired) is dropped: the person is signed out.
 */
export async function openSession(nw: Narwhal, req: IncomingMessage): Promise<WebSession> {
  const cookies = parseCookies(req.headers.cookie);
  const setCookies: string[] = [];
  let nonce = cookies.get(SESSION_COOKIE);
  if (nonce === undefined || !NONCE.test(nonce)) {
    nonce = newNonce();
    setCookies.push(cookie(req, SESSION_COOKIE, nonce));
  }
  const secret = cookies.get(TOKEN_COOKIE);
  let token: TokenRecord | undefined;
  if (secret !== undefined) {
    token = await authenticate(nw, secret).catch(() => undefined);
    if (!token) setCookies.push(cookie(req, TOKEN_COOKIE, '', 0));
  }
  return { token, csrf: csrfToken(nonce, token ? secret! : ''), setCookies };
}

/**
 * Refuses (403) a form post that another site could have made: its Origin must be this host, and
 * its `csrf` field the session's CSRF token, which only a page of this session holds. The token
 * is an HMAC keyed by the session cookie over the signed-in token, so it changes with both.
 */
export function checkFormPost(req: IncomingMessage, session: WebSession, form: URLSearchParams): void {
  if (!sameOrigin(req)) throw new NarwhalError('forbidden', 'this form was not sent from this site');
  const sent = Buffer.from(form.get('csrf') ?? '');
  const expected = Buffer.from(session.csrf);
  if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) {
    throw new NarwhalError('forbidden', 'this form has expired or was not made here; reload the page and try again');
  }
}

/** Cookies that sign in with the token's secret, in a new session (so no session fixed beforehand survives it). */
export function signInCookies(req: IncomingMessage, secret: string): string[] {
  return [cookie(req, SESSION_COOKIE, newNonce()), cookie(req, TOKEN_COOKIE, secret)];
}

export function signOutCookies(req: IncomingMessage): string[] {
  return [cookie(req, SESSION_COOKIE, newNonce()), cookie(req, TOKEN_COOKIE, '', 0)];
}

function csrfToken(nonce: string, secret: string): string {
  return createHmac('sha256', nonce).update(`narwhal-csrf\0${secret}`).digest('base64url');
}

function newNonce(): string {
  return randomBytes(32).toString('base64url');
}

/** Whether the request's Origin names the host it was sent to (browsers send Origin with every form post). */
function sameOrigin(req: IncomingMessage): boolean {
  const { origin, host } = req.headers;
  if (!origin || !host) return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/** HttpOnly, SameSite=Strict, whole site; Secure when the request came over TLS. */
function cookie(req: IncomingMessage, name: string, value: string, maxAge?: number): string {
  const secure = (req.socket as TLSSocket).encrypted ? '; Secure' : '';
  const age = maxAge === undefined ? '' : `; Max-Age=${maxAge}`;
  return `${name}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=Strict${secure}${age}`;
}

function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (cookies.has(name)) continue;
    try {
      cookies.set(name, decodeURIComponent(part.slice(eq + 1).trim()));
    } catch {
      // A value that is not valid percent-encoding is ignored.
    }
  }
  return cookies;
}
