import { Readable, Transform } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import { NarwhalError } from '../errors.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { netrcAuthorization } from './netrc.ts';
import { pullCounters } from './pull-counters.ts';

/** An upstream's answer: its status, and for a 200 the body, counted and watched for stalls. */
export interface UpstreamAnswer {
  status: number;
  body?: Readable;
}

/**
 * GETs a URL of an upstream, with credentials for its host from the netrc file. The answer must
 * start within the upstream timeout, and its body may then go quiet for no longer than that
 * (time the reader is not reading does not count: data waiting in the buffer is not a stall).
 * A failure to connect or a timeout throws 'unavailable'; an error status is returned, its body
 * dropped.
 */
export async function upstreamGet(nw: Narwhal, url: URL): Promise<UpstreamAnswer> {
  const counters = pullCounters(nw);
  const authorization = await netrcAuthorization(nw.options.netrcFile, url);
  const timeoutMs = nw.options.upstreamTimeoutMs;
  const controller = new AbortController();
  let timer = setTimeout(() => controller.abort(), timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, {
      headers: authorization ? { Authorization: authorization } : {},
      signal: controller.signal,
    });
  } catch (err) {
    clearTimeout(timer);
    counters.upstreamErrors++;
    const reason = controller.signal.aborted ? 'timed out' : err instanceof Error ? err.message : String(err);
    throw new NarwhalError('unavailable', `upstream ${url.origin}: ${reason}`);
  }
  clearTimeout(timer);
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel().catch(() => undefined);
    if (res.status !== 404 && res.status !== 410) counters.upstreamErrors++;
    return { status: res.status };
  }
  const source = Readable.fromWeb(res.body as ReadableStream<Uint8Array>);
  const body = new Transform({
    transform(data: Buffer, _encoding, done) {
      counters.upstreamBytes += data.length;
      clearTimeout(timer);
      timer = setTimeout(stalled, timeoutMs);
      done(null, data);
    },
  });
  const stalled = (): void => {
    if (body.readableLength > 0 || body.writableLength > 0) return void (timer = setTimeout(stalled, timeoutMs));
    controller.abort();
    body.destroy(new NarwhalError('unavailable', `upstream ${url.origin} sent nothing for ${timeoutMs} ms`));
  };
  timer = setTimeout(stalled, timeoutMs);
  // A body that fails midway is counted by whoever reads it (pull-nar.ts), once.
  source.on('error', (err) => body.destroy(err));
  body.on('close', () => {
    clearTimeout(timer);
    source.destroy();
  });
  source.pipe(body);
  return { status: 200, body };
}

/** Reads a whole small body, refusing one longer than `limit` bytes. */
export async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const part of body) {
    length += (part as Buffer).length;
    if (length > limit) {
      body.destroy();
      throw new NarwhalError('bad-narinfo', `the answer exceeds ${limit} bytes`);
    }
    parts.push(part as Buffer);
  }
  return Buffer.concat(parts);
}
