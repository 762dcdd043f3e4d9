import type { IncomingMessage } from 'node:http';
import { authenticate } from '../tenancy/tokens.ts';
import type { Narwhal } from '../context/narwhal.ts';
import type { TokenRecord } from '../metadata/metadata-store.ts';

/**
 * The token a request carries: the password of HTTP Basic auth (what Nix sends from a netrc file;
 * the user name is ignored) or a Bearer token. No credentials: undefined. Credentials that are
 * not a live token: throws 'unauthorized', so a revoked token fails on its next request.
 */
export async function requestToken(nw: Narwhal, req: IncomingMessage): Promise<TokenRecord | undefined> {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return authenticate(nw, value);
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    return authenticate(nw, decoded.slice(decoded.indexOf(':') + 1));
  }
  return authenticate(nw, '');
}
