import type { IncomingMessage } from 'node:http';
import { NarwhalError } from '../errors.ts';

/** Reads a whole (small) request body, refusing it as soon as it passes `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new NarwhalError('too-large', `request body larger than ${limit} bytes`);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req as AsyncIterable<Buffer>) {
    size += part.length;
    if (size > limit) throw new NarwhalError('too-large', `request body larger than ${limit} bytes`);
    parts.push(part);
  }
  return Buffer.concat(parts);
}
