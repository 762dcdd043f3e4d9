import { parseArgs } from 'node:util';
import { useCache } from '../client/use-cache.ts';
import { readUserConfig } from '../client/user-config.ts';
import { NarwhalError } from '../errors.ts';
import { printJsonOr } from './output.ts';

/** `narwhal use CACHE [--nix-conf FILE] [--netrc FILE]`: makes Nix substitute from the cache (client/use-cache.ts). */
export async function useCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      'nix-conf': { type: 'string' },
      netrc: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1)
    throw new NarwhalError(
      'bad-request',
      'usage: narwhal use CACHE [--nix-conf FILE] [--netrc FILE] (CACHE: SERVER/CACHE, CACHE or a URL)',
    );
  const result = await useCache(await readUserConfig(), positionals[0], {
    nixConf: values['nix-conf'],
    netrc: values.netrc,
  });
  printJsonOr(values.json, result, () =>
    result.changes.length === 0
      ? `nothing to change: Nix already substitutes from ${result.cacheUrl}\n`
      : `${result.changes.join('\n')}\n`,
  );
  return 0;
}
