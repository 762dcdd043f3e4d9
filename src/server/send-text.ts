import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Answers with a short text body: a success (a narinfo, nix-cache-info) or an error (sendError).
 * `close` ends the connection after the answer, except while the request body is still arriving:
 * then the rest of it is discarded first and the connection stays usable (a client that is still
 * sending would otherwise meet a closed connection and see a reset in place of the answer).
 */
export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  opts: { contentType?: string; close?: boolean } = {},
): void {
  res.writeHead(status, {
    'Content-Type': opts.contentType ?? 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...(opts.close ? closeAfter(res.req) : {}),
  });
  // A string body goes out in one write with the headers; a Buffer would take a writev of both.
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/**
 * True for a request that came over HTTP/2. There one connection carries many streams: a
 * response ends its own stream only (an unread request body with it), and connection headers
 * are not allowed.
 */
export function isHttp2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2;
}

/** The header that ends an HTTP/1.1 connection after the answer, unless the rest of the body is read first. */
function closeAfter(req: IncomingMessage): { Connection?: string } {
  if (isHttp2(req)) return {};
  return { Connection: discardRestOfBody(req) ? 'keep-alive' : 'close' };
}

/** Request body bytes read and thrown away after an answer that came before the whole body did. */
const DISCARD_LIMIT = 16 * 1024 * 1024;

/**
 * Reads and discards what is left of the request body, up to DISCARD_LIMIT bytes (then the
 * connection is cut). False when nothing is left to read or more than that is announced.
 */
function discardRestOfBody(req: IncomingMessage): boolean {
  const socket = req.socket;
  if (req.complete || req.destroyed || !socket || socket.destroyed) return false;
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared - socket.bytesRead > DISCARD_LIMIT) return false;
  let left = DISCARD_LIMIT;
  req.unpipe();
  req.removeAllListeners('data');
  req.on('data', (part: Buffer) => {
    left -= part.length;
    if (left < 0) socket.destroy();
  });
  req.resume();
  return true;
}
