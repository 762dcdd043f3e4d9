import { readFileSync } from 'node:fs';
import { NarwhalError } from '../errors.ts';
import { argsFromEnv, SERVE_OPTIONS } from './serve-options.ts';

/** What the stores are: every command that opens them takes these. */
const STORE_SETTINGS = ['data-dir', 'database', 'storage'];
/** The settings a config file may hold, by command; a setting another command takes is left out. */
const SETTINGS_BY_COMMAND: Record<string, string[]> = {
  serve: Object.keys(SERVE_OPTIONS),
  migrate: ['data-dir', 'database'],
  'migrate-storage': ['data-dir'],
};
const KNOWN = new Set(Object.values(SETTINGS_BY_COMMAND).flat());

/**
 * `--config FILE`: a JSON object of long option names and values, e.g.
 * `{"database": "postgres://...", "storage": "s3://...", "listen": "0.0.0.0:5000"}`, so that a
 * deployment keeps its settings (and the database password) out of the command line. The file
 * may also be named by NARWHAL_CONFIG. For serve, the NARWHAL_* variables (serve-options.ts) come
 * next. Returns the arguments in the order file, variables, command line: the last one given
 * wins, so a flag beats a variable, which beats the file, which beats the default.
 */
export function applyConfigFile(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = command === 'serve' ? argsFromEnv(env) : [];
  const at = args.findIndex((arg) => arg === '--config' || arg.startsWith('--config='));
  const named = at < 0 && command === 'serve' && env.NARWHAL_CONFIG ? env.NARWHAL_CONFIG : undefined;
  if (at < 0 && named === undefined) return [...fromEnv, ...args];
  const inline = at >= 0 && args[at].startsWith('--config=');
  const file = named ?? (inline ? args[at].slice('--config='.length) : args[at + 1]);
  if (!file) throw new NarwhalError('bad-request', '--config needs a file');
  const rest = at < 0 ? args : [...args.slice(0, at), ...args.slice(at + (inline ? 1 : 2))];
  const settings = readSettings(file);
  const accepted = SETTINGS_BY_COMMAND[command] ?? STORE_SETTINGS;
  const fromFile: string[] = [];
  for (const [name, value] of Object.entries(settings)) {
    if (!accepted.includes(name)) continue;
    if (typeof value === 'boolean') {
      if (value) fromFile.push(`--${name}`);
      else if (command === 'serve') fromFile.push(`--no-${name}`);
    } else {
      fromFile.push(`--${name}`, String(value));
    }
  }
  return [...fromFile, ...fromEnv, ...rest];
}

function readSettings(file: string): Record<string, string | number | boolean> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new NarwhalError('bad-request', `cannot read the config file ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new NarwhalError('bad-request', `the config file ${file} must hold a JSON object`);
  }
  for (const [name, value] of Object.entries(parsed)) {
    if (!KNOWN.has(name))
      throw new NarwhalError(
        'bad-request',
        `the config file ${file} has an unknown setting "${name}" (known: ${[...KNOWN].join(', ')})`,
      );
    const type = typeof value;
    if (type !== 'string' && type !== 'number' && type !== 'boolean') {
      throw new NarwhalError('bad-request', `the config file ${file}: "${name}" must be a string, number or boolean`);
    }
  }
  return parsed as Record<string, string | number | boolean>;
}
