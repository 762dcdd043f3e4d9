import type { ServerResponse } from 'node:http';
import { isHttp2 } from '../send-text.ts';

/** Answers with `value` as JSON; `close` ends the connection after it (a request body may be left unread). */
export function sendJson(res: ServerResponse, status: number, value: unknown, close = false): void {
  const body = Buffer.from(`${JSON.stringify(value)}\n`);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': body.length,
    ...(close && !isHttp2(res.req) ? { Connection: 'close' } : {}),
  });
  res.end(body);
}
