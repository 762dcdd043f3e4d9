import { serveCommand } from './serve.ts';
import { statsCommand } from './stats.ts';
import { cacheCommand } from './cache-command.ts';
import { tokenCommand } from './token-command.ts';
import { NarwhalError } from '../errors.ts';

const USAGE = `Usage: narwhal <command> [options]

Commands:
  serve   [--data-dir DIR] [--listen HOST:PORT] [--log-requests]
          run the binary cache server (default 127.0.0.1:5000)
  stats   [--data-dir DIR] [--json]               storage and dedup figures
  cache create NAME [--public] [--priority N] [--signing-key FILE] [--json]
  cache list [--json]
  cache info NAME [--json]
  cache configure NAME [--public|--private] [--priority N] [--signing-key FILE]
                       [--trusted-key KEY]... [--no-trusted-keys]
                       [--require-signature|--no-require-signature]
  cache destroy NAME
  token create --cache NAME[,NAME|glob] --perm pull,push,delete,admin
               [--expires 30d] [--name TEXT] [--json]
  token list [--json]
  token revoke ID

Options shared by all commands:
  --data-dir DIR   where the database and chunks live (default ./narwhal-data)
  --server URL --token T   (cache and token commands) use a running server's API
                           instead of --data-dir; NARWHAL_TOKEN may hold the token
`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  serve: serveCommand,
  stats: statsCommand,
  cache: cacheCommand,
  token: tokenCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`narwhal: unknown command ${command}\n\n${USAGE}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (err) {
    if (err instanceof NarwhalError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`narwhal ${command}: ${(err as Error).message}\n`);
      return 2;
    }
    throw err;
  }
}
