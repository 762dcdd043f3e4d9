import { once } from 'node:events';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheAndToken } from '../client/credentials.ts';
import { startSubstituter } from '../client/substituter.ts';
import { NarwhalError } from '../errors.ts';
import { parseByteSize, parseListen } from './options.ts';

/** `narwhal substituter`: a local binary cache for stock Nix that fetches only what this machine lacks. */
export async function substituterCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      cache: { type: 'string' },
      token: { type: 'string' },
      listen: { type: 'string', default: '127.0.0.1:5001' },
      store: { type: 'string' },
      'cache-dir': { type: 'string', default: join(homedir(), '.cache', 'narwhal-substituter') },
      'cache-size': { type: 'string', default: '10G' },
    },
    strict: true,
  });
  if (values.cache === undefined)
    throw new NarwhalError('bad-request', '--cache is required: a URL (<server>/<cache>), SERVER/CACHE or CACHE');
  const { host, port } = parseListen(values.listen);
  const target = await cacheAndToken(values.cache, values.token);
  const { server } = await startSubstituter({
    ...target,
    storeRoot: values.store,
    cacheDir: values['cache-dir'],
    cacheBytes: parseByteSize('--cache-size', values['cache-size']),
  });
  server.listen(port, host);
  await once(server, 'listening');
  const address = server.address();
  const shown = typeof address === 'object' && address ? `${address.address}:${address.port}` : values.listen;
  process.stderr.write(`narwhal substituter: serving http://${shown}/ for ${target.cacheUrl}\n`);
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stderr.write(`narwhal substituter: ${signal}, shutting down\n`);
  server.close();
  server.closeAllConnections();
  return 0;
}
