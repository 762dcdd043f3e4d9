import type { Http2SecureServer, Http2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';

/**
 * The TLS socket under each HTTP/2 session. `session.socket` is a stand-in that throws once the
 * session has ended, which is when a request's last bytes are counted (the client hung up after
 * the answer); the socket itself keeps its counts.
 */
const sockets = new WeakMap<Http2Session, TLSSocket>();

/**
 * Remembers the socket of every session the server opens. node:http2 makes a connection's session
 * and emits 'session' synchronously in its own 'secureConnection' listener, registered when the
 * server was made, so this server's next 'secureConnection' is for the same socket.
 */
export function rememberSessionSockets(server: Http2SecureServer): void {
  let opened: Http2Session | undefined;
  server.on('session', (session: Http2Session) => {
    opened = session;
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    if (opened) sockets.set(opened, socket);
    opened = undefined;
  });
}

export function sessionSocket(session: Http2Session | undefined): TLSSocket | undefined {
  return session && sockets.get(session);
}
