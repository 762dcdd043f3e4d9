import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Narwhal } from '../../context/narwhal.ts';
import { NarwhalError } from '../../errors.ts';
import { scrapeText } from '../../metrics/cluster-metrics.ts';
import { sendText } from '../send-text.ts';

export interface MetricsAccess {
  /** When set, a scrape must send `Authorization: Bearer <token>`. */
  token?: string;
}

/** `GET /metrics`: the figures of every server process, in the Prometheus text format. */
export async function getMetrics(nw: Narwhal, req: IncomingMessage, res: ServerResponse, access: MetricsAccess) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return sendText(res, 405, 'method not allowed\n', { close: true });
  }
  if (access.token !== undefined && !bearerMatches(req.headers.authorization, access.token)) {
    res.setHeader('WWW-Authenticate', 'Bearer realm="narwhal metrics"');
    return sendText(res, 401, 'metrics need the metrics token\n');
  }
  let text: string;
  try {
    text = await scrapeText(nw.metrics);
  } catch (err) {
    throw new NarwhalError('unavailable', `cannot gather the metrics: ${(err as Error).message}`);
  }
  sendText(res, 200, text, { contentType: nw.metrics.contentType });
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match) return false;
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(match[1]), digest(token));
}
