import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** What an incoming X-Request-Id may be to be kept: short, printable, no spaces or quotes. */
const SANE = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/**
 * The id that ties a request's log lines to the client's: the client's X-Request-Id (set by a
 * proxy in front, say) when it is sane, else a fresh UUID. Logs and the answer's header carry it.
 */
export function requestIdOf(req: IncomingMessage): string {
  const sent = req.headers['x-request-id'];
  return typeof sent === 'string' && SANE.test(sent) ? sent : randomUUID();
}
