import { NarwhalError } from '../errors.ts';
import { applyConfigFile } from './config-file.ts';

const USAGE = `Usage: narwhal <command> [options]

Commands:
  serve   [--data-dir DIR] [--listen HOST:PORT] [--processes N|auto]
          [--log-requests] [--log-format text|json] [--gc-interval 6h|0] [--gc-grace 1h]
          [--stats-interval 10m|0]
          [--max-nar-size BYTES] [--recompress-level 19|0] [--recompress-after 60s] [--deltas]
          [--metrics-token TOKEN] [--metrics-listen HOST:PORT] [--tls-cert FILE --tls-key FILE]
          [--upstream-timeout 10s] [--upstream-negative-ttl 60s] [--netrc-file FILE]
          run the binary cache server (default 127.0.0.1:5000) in N processes
          sharing the port (default 1; auto = one per core), with GC every
          interval (0 = never), and chunks recompressed at the level once no
          upload has run for the given time (0 = never); /metrics for Prometheus;
          with a PEM certificate and key, over TLS (HTTP/2 to clients that offer
          it, else HTTP/1.1).
          Every option is also NARWHAL_<OPTION> (NARWHAL_LISTEN, NARWHAL_DATA_DIR, ...):
          a flag beats the variable, which beats --config, which beats the default
  stats   [--data-dir DIR] [--json]               storage and dedup figures
  cache create NAME [--public] [--priority N] [--signing-key FILE]
                    [--retention 30d|0] [--json]
                    [--upstream URL]... [--upstream-key NAME:KEY]...
                          pull-through: ask these caches, in order, for what
                          this one lacks; keep only what a key signed
  cache list [--json]
  cache info NAME [--json]
  cache configure NAME [--public|--private] [--priority N] [--signing-key FILE]
                       [--trusted-key KEY]... [--no-trusted-keys]
                       [--require-signature|--no-require-signature]
                       [--retention 30d|0]   drop paths unused that long (0 = never)
                       [--upstream URL]... [--no-upstreams] [--upstream-key KEY]...
  cache destroy NAME
  token create --cache NAME[,NAME|glob] --perm pull,push,delete,admin
               [--expires 30d] [--name TEXT] [--json]
  token list [--json]
  token revoke ID
  path list CACHE [--json]
  path pin|unpin CACHE STOREPATH|HASH...   a pinned path and its closure outlive retention
  path delete CACHE STOREPATH|HASH...      refused while other paths refer to them
  gc      [--grace 1h] [--json]   expire paths by retention, delete unused NARs and
          chunks (those unused for longer than the grace period)
  verify  [--repair] [--json]     check every chunk and NAR; flag damaged NARs (their
          narinfos answer 404 until uploaded again); --repair deletes corrupt
          chunks; exit status 1 while damage remains
  recompress [--level 19] [--deltas] [--json]   rewrite the chunks still at their ingest
          level at a higher one where that saves space (serve does it when idle);
          --deltas also stores older chunks as deltas of newer similar ones
  migrate-storage [--from URL] [--to URL] [--data-dir DIR]
          copy the chunks --from has and --to lacks, checking each;
          either defaults to the data dir's chunk store
  migrate [--database URL] [--json]   bring the metadata schema up to date
          (opening the stores does it too) and print its version
  import DIR [--cache NAME]   import a static binary cache directory (nix copy
          --to file://DIR) into the cache (default main), checking every NAR
          against its narinfo; exit status 1 if a path failed
  login NAME URL [--token T] [--default]   save a server and its token (read from
          standard input when not given) in ~/.config/narwhal/config.json (mode 600);
          the first server saved is the default
  use CACHE [--nix-conf FILE] [--netrc FILE] [--json]   make Nix substitute from a
          cache (SERVER/CACHE, CACHE under the default server, or a URL): adds it,
          its public key and the token's netrc line (as root /etc/nix/nix.conf and
          /etc/nix/netrc, else ~/.config/nix/); prints what it changed
  push --cache URL [--token T] [--signing-key FILE] [--jobs 4] [--no-deltas] [--json] PATH...|--watch-store
          upload the paths and their closure to the cache at URL (<server>/<cache>),
          only the paths it lacks, and of their NARs only the chunks it lacks;
          --watch-store pushes every path that becomes valid until stopped;
          the token from --token, NARWHAL_TOKEN, narwhal login or the netrc entry for
          the host; --cache may also be SERVER/CACHE or CACHE as for use
  substituter --cache URL [--listen 127.0.0.1:5001] [--store DIR] [--cache-dir DIR]
              [--cache-size 10G] [--token T]
          a local substituter for Nix (substituters = http://127.0.0.1:5001) that
          fetches from the cache only the chunks this machine lacks, as deltas
          against chunks of other versions in its store where that is smaller

Options shared by all commands:
  --data-dir DIR   where the database and chunks live (default ./narwhal-data)
  --storage URL    where chunks live instead of DIR/chunks (pack files; DIR/castr
                   if a data dir already has it): pack:DIR, a directory in
                   casync's castr layout, or
                   s3://BUCKET/PREFIX?endpoint=URL&region=R&path-style=1
                   (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
  --database URL   where metadata lives instead of DIR/narwhal.sqlite:
                   postgres://USER:PASSWORD@HOST:PORT/DB (replicas may share it)
  --config FILE    a JSON object of these options (and serve's), e.g.
                   {"database": "postgres://...", "storage": "s3://..."};
                   options given on the command line win
  --server URL --token T   (cache and token commands) use a running server's API
                           instead of --data-dir; NARWHAL_TOKEN may hold the token
`;

// Each command's modules are loaded when it runs: loading every command's (the server's among them)
// took `narwhal push` about 0.3 s at each start.
const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  serve: async (args) => (await import('./serve.ts')).serveCommand(args),
  stats: async (args) => (await import('./stats.ts')).statsCommand(args),
  cache: async (args) => (await import('./cache-command.ts')).cacheCommand(args),
  token: async (args) => (await import('./token-command.ts')).tokenCommand(args),
  path: async (args) => (await import('./path-command.ts')).pathCommand(args),
  gc: async (args) => (await import('./gc-command.ts')).gcCommand(args),
  verify: async (args) => (await import('./verify-command.ts')).verifyCommand(args),
  'migrate-storage': async (args) => (await import('./migrate-storage-command.ts')).migrateStorageCommand(args),
  migrate: async (args) => (await import('./migrate-command.ts')).migrateCommand(args),
  import: async (args) => (await import('./import-command.ts')).importCommand(args),
  recompress: async (args) => (await import('./recompress-command.ts')).recompressCommand(args),
  push: async (args) => (await import('./push-command.ts')).pushCommand(args),
  substituter: async (args) => (await import('./substituter-command.ts')).substituterCommand(args),
  login: async (args) => (await import('./login-command.ts')).loginCommand(args),
  use: async (args) => (await import('./use-command.ts')).useCommand(args),
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
    return await run(applyConfigFile(command, rest));
  } catch (err) {
    if (err instanceof NarwhalError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`narwhal ${command}: ${(err as Error).message}\n`);
      return 2;
    }
    throw err;
  }
}
