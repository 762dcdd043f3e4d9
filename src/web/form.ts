import type { IncomingMessage } from 'node:http';
import { NarwhalError } from '../errors.ts';

/** UI forms are a few short fields. */
const MAX_FORM_BYTES = 8 * 1024;

/** The body of a form post (application/x-www-form-urlencoded), refused when larger than MAX_FORM_BYTES. */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0].trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') throw new NarwhalError('bad-request', 'expected a form');
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req as AsyncIterable<Buffer>) {
    size += part.length;
    if (size > MAX_FORM_BYTES) throw new NarwhalError('too-large', 'form too large');
    parts.push(part);
  }
  return new URLSearchParams(Buffer.concat(parts).toString('utf8'));
}
