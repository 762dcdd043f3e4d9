import { parseArgs } from 'node:util';
import { readUserConfig, userConfigFile, withServer, writeUserConfig } from '../client/user-config.ts';
import { NarwhalError } from '../errors.ts';
import { readSecret } from './read-secret.ts';

/** `narwhal login NAME URL [--token T] [--default]`: saves a server and its token in the user's config. */
export async function loginCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { token: { type: 'string' }, default: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 2) throw new NarwhalError('bad-request', 'usage: narwhal login NAME URL [--token T]');
  const [name, url] = positionals;
  const token = values.token ?? (await readSecret(`Token for ${name} (empty for none): `));
  const file = userConfigFile();
  const config = withServer(await readUserConfig(file), name, { url, token }, values.default);
  await writeUserConfig(config, file);
  const isDefault = config.default === name ? ', the default server' : '';
  process.stderr.write(
    `narwhal login: saved ${name} (${config.servers[name].url}${token ? ', with a token' : ''}${isDefault}) in ${file}\n`,
  );
  return 0;
}
