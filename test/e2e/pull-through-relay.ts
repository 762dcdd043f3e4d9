/**
 * A relay in front of an upstream cache for the pull-through suites: it counts the requests per
 * path, and can cut the next NAR it sends halfway (the upstream dying mid-NAR) or send NARs slowly
 * (so that concurrent clients overlap).
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Relay {
  url: string;
  /** Requests seen per path (below the relay's root), by path. */
  requests: Map<string, number>;
  /** Cut the next NAR answer of more than 64 KiB after half its bytes, then close the connection. */
  cutNextNar: boolean;
  /** Milliseconds to wait between 16 KiB pieces of NAR answers. */
  narDelayMs: number;
  close(): void;
}

export async function startRelay(target: string): Promise<Relay> {
  const relay: Relay = { url: '', requests: new Map(), cutNextNar: false, narDelayMs: 0, close: () => undefined };
  const server: Server = createServer(async (req, res) => {
    const path = req.url ?? '/';
    relay.requests.set(path, (relay.requests.get(path) ?? 0) + 1);
    try {
      const answer = await fetch(`${target}${path}`, { method: req.method });
      const bytes = Buffer.from(await answer.arrayBuffer());
      const headers = {
        'Content-Type': answer.headers.get('content-type') ?? 'application/octet-stream',
        'Content-Length': bytes.length,
      };
      res.writeHead(answer.status, headers);
      if (!path.startsWith('/nar/') || answer.status !== 200 || req.method === 'HEAD') return void res.end(bytes);
      const cut = relay.cutNextNar && bytes.length > 64 * 1024;
      if (cut) relay.cutNextNar = false;
      const end = cut ? Math.floor(bytes.length / 2) : bytes.length;
      for (let at = 0; at < end; at += 16 * 1024) {
        res.write(bytes.subarray(at, Math.min(end, at + 16 * 1024)));
        if (relay.narDelayMs > 0) await new Promise((r) => setTimeout(r, relay.narDelayMs));
      }
      if (cut) setTimeout(() => res.destroy(), 50);
      else res.end();
    } catch {
      res.destroy();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  relay.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  relay.close = () => {
    server.closeAllConnections();
    server.close();
  };
  return relay;
}

/** Requests the relay saw for paths matching the pattern. */
export function requestsFor(relay: Relay, pattern: RegExp): number {
  let count = 0;
  for (const [path, n] of relay.requests) if (pattern.test(path)) count += n;
  return count;
}
