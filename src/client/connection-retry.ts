import { NarwhalError } from '../errors.ts';

/**
 * A request that went out on a kept-alive connection just as the server closed it (its idle
 * timeout; timers run late on a loaded machine) fails before any answer, with no harm done: sent
 * again on a new connection, it is answered. Seen as `fetch failed: other side closed` from a push
 * with --jobs 8 under a load of 9.
 */

/** Times a request is sent again after its connection was lost before an answer. */
const AGAIN = 2;
/** undici's and the socket's codes for a connection closed or reset under a request. */
const LOST_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED']);

/** Whether `err` is fetch's failure for a connection lost before the answer began. */
export function isConnectionLost(err: unknown): boolean {
  // The same failure after asServerFailure named it.
  if (err instanceof NarwhalError && err.code === 'unavailable') return isConnectionLost(err.cause);
  if (!(err instanceof TypeError)) return false;
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' && LOST_CODES.has(cause.code);
}

/**
 * fetch, sent again (up to AGAIN times) when the connection is lost before an answer; a failure
 * that remains is named by asServerFailure with `doing`. Only for requests whose body can be sent
 * again and that do the same when repeated.
 */
export async function fetchAgainIfLost(url: string, init: RequestInit, doing: string): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (err) {
      if (attempt >= AGAIN || !isConnectionLost(err)) throw asServerFailure(err, doing);
    }
  }
}

/**
 * A failed request to the server (fetch's TypeError: connection lost, refused or reset) as an
 * error `narwhal push` reports in one line, naming what it was doing; other errors as they are.
 * Without it such an error left the command as an uncaught exception with a stack trace.
 */
export function asServerFailure(err: unknown, doing: string): unknown {
  if (!(err instanceof TypeError) || (err as { cause?: unknown }).cause === undefined) return err;
  const cause = (err as { cause: { message?: unknown; code?: unknown } }).cause;
  const why = typeof cause.message === 'string' && cause.message !== '' ? cause.message : err.message;
  const code = typeof cause.code === 'string' ? ` (${cause.code})` : '';
  return new NarwhalError('unavailable', `${doing}: the connection to the server failed${code}: ${why}`, {
    cause: err,
  });
}
