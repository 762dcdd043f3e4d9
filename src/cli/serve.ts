import { parseArgs } from 'node:util';
import { once } from 'node:events';
import { openNarwhal, closeNarwhal } from '../cache/narwhal.ts';
import { createNarwhalServer } from '../server/server.ts';
import { NarwhalError } from '../errors.ts';
import { STORE_OPTIONS } from './options.ts';

export async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      listen: { type: 'string', default: '127.0.0.1:5000' },
      'log-requests': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const { host, port } = parseListen(values.listen);
  const nw = await openNarwhal({ dataDir: values['data-dir'] });
  const server = createNarwhalServer(nw, { logRequests: values['log-requests'] });
  server.listen(port, host);
  await once(server, 'listening');
  const address = server.address();
  const shown = typeof address === 'object' && address ? `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}` : values.listen;
  process.stderr.write(`narwhal: serving ${values['data-dir']} on http://${shown}/ (cache "main" at http://${shown}/main)\n`);

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stderr.write(`narwhal: ${signal}, shutting down\n`);
  server.close();
  server.closeIdleConnections();
  await closeNarwhal(nw);
  return 0;
}

function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!match) throw new NarwhalError('bad-request', `--listen takes HOST:PORT, not ${listen}`);
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port: Number(match[3]) };
}
