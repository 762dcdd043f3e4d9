import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { createSecureContext } from 'node:tls';
import type { Narwhal } from '../context/narwhal.ts';
import { NarwhalError } from '../errors.ts';
import { listenForRequests, type ServerOptions } from './server.ts';

export interface TlsFiles {
  /** PEM certificate chain: the server's certificate first, then any intermediates. */
  cert: string;
  /** PEM private key of the certificate. */
  key: string;
}

/** The certificate and key, read and checked to belong together. */
export interface TlsCredentials {
  cert: Buffer;
  key: Buffer;
}

/** Reads `--tls-cert` and `--tls-key`, refusing a file that is missing, not PEM, or a key that is not the certificate's. */
export function loadTlsCredentials(files: TlsFiles): TlsCredentials {
  const credentials = { cert: readPem(files.cert, '--tls-cert'), key: readPem(files.key, '--tls-key') };
  try {
    createSecureContext(credentials);
  } catch (err) {
    throw new NarwhalError(
      'bad-request',
      `cannot serve TLS with --tls-cert ${files.cert} and --tls-key ${files.key}: ${(err as Error).message}`,
    );
  }
  return credentials;
}

/**
 * The server over TLS: HTTP/2 to clients that offer it through ALPN (Nix's curl does, unless its
 * `http2` setting is off), where many narinfo lookups share one connection; HTTP/1.1 to the rest.
 * Requests are answered as by createNarwhalServer.
 */
export function createNarwhalTlsServer(
  nw: Narwhal,
  credentials: TlsCredentials,
  options: ServerOptions = {},
): Http2SecureServer {
  const server = createSecureServer({ ...credentials, allowHTTP1: true });
  listenForRequests(server, nw, options);
  // An HTTP/2 session, or an HTTP/1.1 connection, on which nothing moves for this long is dropped.
  server.setTimeout(options.idleTimeoutMs ?? 300_000);
  // HTTP/1.1 requests on this server go through node:http's connection handling, which reads these
  // (they exist at run time on an HTTP/2 server allowing HTTP/1.1, untyped): no absolute request
  // deadline, and headers that must arrive promptly, as createNarwhalServer sets them.
  Object.assign(server, { requestTimeout: 0, headersTimeout: options.headersTimeoutMs ?? 60_000 });
  return server;
}

function readPem(file: string, option: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new NarwhalError('bad-request', `cannot read ${option} ${file}: ${(err as Error).message}`);
  }
}
