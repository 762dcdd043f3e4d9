import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { NarwhalError } from '../errors.ts';

/**
 * Reads a whole (small) request body, refusing it as soon as it passes `limit` bytes. A refused
 * body is left unread rather than destroyed, so that the error answer still reaches the client
 * (see sendError).
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  refuseDeclaredOver(req, limit);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += part.length;
    if (size > limit) throw new NarwhalError('too-large', `request body larger than ${limit} bytes`);
    parts.push(part);
  }
  return Buffer.concat(parts);
}

/** Refuses a request whose Content-Length announces more than `limit` bytes, before reading any. */
export function refuseDeclaredOver(req: IncomingMessage, limit: number): void {
  if (Number(req.headers['content-length'] ?? 0) > limit)
    throw new NarwhalError('too-large', `request body larger than ${limit} bytes`);
}

/**
 * The request body as a stream of its own, for consumers that destroy their input when they fail
 * (stream pipelines): destroying it leaves the request unread but intact, so that the error answer
 * still reaches the client (see sendError). A body cut short (the client went away) fails it.
 */
export function requestBody(req: IncomingMessage): Readable {
  const body = new PassThrough({ highWaterMark: 64 * 1024 });
  const cut = (cause?: unknown): void => {
    if (!req.complete) body.destroy(new NarwhalError('bad-request', 'the request body ended early', { cause }));
  };
  req.on('error', cut);
  req.on('close', cut);
  return req.pipe(body);
}
