/**
 * A hostile-suite server in a process of its own, so that a test can measure the server's memory
 * alone: prints `{ "port": ..., "auth": {...} }` as one line, and stops when its stdin closes.
 */
import { startHostileServer } from './hostile-server.ts';

const h = await startHostileServer();
process.stdout.write(`${JSON.stringify({ port: h.port, auth: h.auth })}\n`);
process.stdin.resume();
process.stdin.on('end', () => void h.close().then(() => process.exit(0)));
