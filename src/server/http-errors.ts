import type { ServerResponse } from 'node:http';
import { NarwhalError, type ErrorCode } from '../errors.ts';
import { sendText } from './send-text.ts';

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
 * Answers an error with a short text body. Internal errors are logged and shown to the client only as
 * "internal error": their messages may hold paths or other details the client has no business with.
 */
export function sendError(res: ServerResponse, err: unknown, log: (message: string) => void): void {
  const status = statusFor(err);
  const message =
    err instanceof NarwhalError && status < 500
      ? err.message
      : status === 500
        ? 'internal error'
        : (err as Error).message;
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
