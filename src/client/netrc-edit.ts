import { NarwhalError } from '../errors.ts';
import { parseNetrc } from './credentials.ts';
import type { Edit } from './nix-conf-edit.ts';

/**
 * Sets the password for `host` in a netrc file's text: a new `machine` line, or the password of
 * the one-line entry already there. No change when the entry already has it. Pure.
 */
export function setNetrcPassword(text: string, host: string, login: string, password: string): Edit {
  const entry = parseNetrc(text).find((e) => e.machine === host);
  if (entry?.password === password) return { text, changes: [] };
  const line = `machine ${host} login ${login} password ${password}`;
  if (!entry) {
    const separator = text === '' || text.endsWith('\n') ? '' : '\n';
    return { text: `${text}${separator}${line}\n`, changes: [`added the token for ${host}`] };
  }
  const lines = text.split('\n');
  const at = lines.findIndex((l) =>
    new RegExp(`^\\s*machine\\s+${escapeRegExp(host)}\\s+login\\s+\\S+\\s+password\\s+\\S+\\s*$`).test(l),
  );
  if (at < 0)
    throw new NarwhalError('conflict', `the netrc entry for ${host} spans several lines: set its password by hand`);
  lines[at] = line;
  return { text: lines.join('\n'), changes: [`replaced the token for ${host}`] };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
