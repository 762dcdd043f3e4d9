import type { IncomingMessage, ServerResponse } from 'node:http';
import { NarwhalError, type ErrorCode } from '../errors.ts';

/** The one mapping from error codes to HTTP statuses. */
const STATUS: Record<ErrorCode, number> = {
  'bad-request': 400,
  'bad-nar': 400,
  'bad-narinfo': 400,
  'bad-compression': 400,
  'bad-index': 400,
  'hash-mismatch': 400,
  'missing-reference': 400,
  'too-large': 413,
  'not-found': 404,
  conflict: 409,
  unauthorized: 401,
  forbidden: 403,
  'chunk-missing': 503,
  'chunk-corrupt': 503,
  'storage-full': 507,
  unavailable: 503,
  internal: 500,
};

export function statusFor(err: unknown): number {
  return err instanceof NarwhalError ? STATUS[err.code] : 500;
}

/**
 * Answers with a short text body. Internal errors are logged and shown to the client only as
 * "internal error": their messages may hold paths or other details the client has no business with.
 */
export function sendError(res: ServerResponse, err: unknown, log: (message: string) => void): void {
  const status = statusFor(err);
  const message = err instanceof NarwhalError && status < 500 ? err.message : status === 500 ? 'internal error' : (err as Error).message;
  if (status >= 500) log(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  if (res.headersSent) {
    // Too late for a status: cut the connection so the client sees an incomplete transfer.
    res.destroy();
    return;
  }
  if (status === 401) res.setHeader('WWW-Authenticate', 'Basic realm="narwhal"');
  // Keep the connection unless a request body may be left unread (Nix looks up many absent paths).
  sendText(res, status, `${message}\n`, { close: !res.req.complete });
}

/**
 * `close` ends the connection after the answer, except while the request body is still arriving:
 * then the rest of it is discarded first and the connection stays usable (a client that is still
 * sending would otherwise meet a closed connection and see a reset in place of the answer).
 */
export function sendText(res: ServerResponse, status: number, text: string, opts: { contentType?: string; close?: boolean } = {}): void {
  res.writeHead(status, {
    'Content-Type': opts.contentType ?? 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...(opts.close ? { Connection: discardRestOfBody(res.req) ? 'keep-alive' : 'close' } : {}),
  });
  // A string body goes out in one write with the headers; a Buffer would take a writev of both.
  res.end(res.req.method === 'HEAD' ? undefined : text);
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
