/**
 * A TCP relay between a client and a server for the bench: it counts the bytes each way and,
 * when given a rate, holds each direction to it (one token bucket per direction, shared by all
 * connections, as on one network link); when given a delay, holds every piece of data that long
 * in each direction (a round trip then takes twice the delay more). Everything passes unchanged.
 */
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

export interface Relay {
  /** `http://127.0.0.1:PORT`: the server's address as clients of the relay use it. */
  url: string;
  /** Bytes from the client to the server, and back, since the last reset. */
  bytesUp: number;
  bytesDown: number;
  reset(): void;
  close(): Promise<void>;
}

/** Holds one direction of the link to `bytesPerSecond`. */
class Bucket {
  readonly #rate: number;
  #free = 0;
  constructor(bytesPerSecond: number) {
    this.#rate = bytesPerSecond;
  }
  /** Resolves when `bytes` may pass. */
  async take(bytes: number): Promise<void> {
    const now = performance.now();
    this.#free = Math.max(this.#free, now) + (bytes / this.#rate) * 1000;
    const wait = this.#free - now;
    if (wait > 1) await delay(wait);
  }
}

/**
 * Passes each piece of data on `delayMs` after it arrived, in order (timers of one duration fire in
 * the order they were set), reading on meanwhile: the link's delay without limiting its rate.
 */
function pumpLate(from: Socket, to: Socket, delayMs: number, count: (n: number) => void): void {
  from.on('data', (data: Buffer) => {
    count(data.length);
    setTimeout(() => {
      if (to.destroyed) return;
      if (!to.write(data)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    }, delayMs);
  });
  from.on('end', () => setTimeout(() => to.end(), delayMs));
  from.on('error', () => to.destroy());
}

/**
 * Relays 127.0.0.1:PORT to the HTTP server at `target` (`http://host:port`), at `bitsPerSecond` if
 * given, and `delayMs` later each way if given.
 */
export async function startRelay(target: string, bitsPerSecond?: number, delayMs = 0): Promise<Relay> {
  const { hostname, port } = new URL(target);
  const up = bitsPerSecond ? new Bucket(bitsPerSecond / 8) : undefined;
  const down = bitsPerSecond ? new Bucket(bitsPerSecond / 8) : undefined;
  const sockets = new Set<Socket>();
  const state = { bytesUp: 0, bytesDown: 0 };
  const pump = (from: Socket, to: Socket, bucket: Bucket | undefined, count: (n: number) => void): void => {
    if (delayMs > 0) {
      pumpLate(from, to, delayMs, count);
      return;
    }
    from.on('data', (data: Buffer) => {
      count(data.length);
      if (!bucket) {
        if (!to.write(data)) from.pause();
        return;
      }
      from.pause();
      void bucket.take(data.length).then(() => {
        if (to.write(data)) from.resume();
        else to.once('drain', () => from.resume());
      });
    });
    to.on('drain', () => from.resume());
    from.on('end', () => to.end());
    from.on('error', () => to.destroy());
  };
  // Without Nagle's algorithm on either side, as the ends themselves run: the relay must not
  // hold back small writes (an HTTP/2 stream's frames waited for delayed ACKs, 40 ms each).
  const server: Server = createServer({ noDelay: true }, (client) => {
    const upstream = createConnection({ host: hostname, port: Number(port), noDelay: true });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    pump(client, upstream, up, (n) => {
      state.bytesUp += n;
    });
    pump(upstream, client, down, (n) => {
      state.bytesDown += n;
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the relay has no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    get bytesUp() {
      return state.bytesUp;
    },
    get bytesDown() {
      return state.bytesDown;
    },
    reset() {
      state.bytesUp = 0;
      state.bytesDown = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close').catch(() => undefined);
    },
  };
}
