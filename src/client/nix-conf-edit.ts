/**
 * Adding a substituter, its public key and a netrc file to a nix.conf, keeping every other line
 * as it was. Pure: text in, text and the changes made out; no change when all is there already.
 */

export interface NixConfAdditions {
  substituter: string;
  publicKey: string;
  /** The netrc file Nix should read (`netrc-file`), when the cache needs a token. */
  netrcFile?: string;
}

export interface Edit {
  text: string;
  /** One line per change, for the user; empty when the file already had everything. */
  changes: string[];
}

interface Setting {
  line: number;
  name: string;
  values: string[];
  /** The line's comment (`# ...`), kept when the line is rewritten. */
  comment: string;
}

/** The `name = values` lines of a nix.conf (comments stripped, as Nix does). */
export function nixConfSettings(text: string): Setting[] {
  const settings: Setting[] = [];
  text.split('\n').forEach((raw, line) => {
    const hash = raw.indexOf('#');
    const match = /^\s*([A-Za-z0-9-]+)\s*=(.*)$/.exec(hash < 0 ? raw : raw.slice(0, hash));
    if (!match) return;
    const values = match[2].split(/\s+/).filter((v) => v !== '');
    settings.push({ line, name: match[1], values, comment: hash < 0 ? '' : ` ${raw.slice(hash)}` });
  });
  return settings;
}

export function addToNixConf(text: string, add: NixConfAdditions): Edit {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const changes: string[] = [];
  const sameUrl = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
  addValue(lines, changes, ['substituters', 'extra-substituters'], add.substituter, sameUrl);
  // A key of the same name but other bytes is another key (a rotated one): both stay trusted.
  addValue(lines, changes, ['trusted-public-keys', 'extra-trusted-public-keys'], add.publicKey, (a, b) => a === b);
  if (add.netrcFile !== undefined) {
    const current = nixConfSettings(lines.join('\n'))
      .filter((s) => s.name === 'netrc-file')
      .at(-1);
    if (!current) {
      lines.push(`netrc-file = ${add.netrcFile}`);
      changes.push(`added netrc-file = ${add.netrcFile}`);
    } else if (current.values.join(' ') !== add.netrcFile) {
      lines[current.line] = `netrc-file = ${add.netrcFile}`;
      changes.push(`changed netrc-file from ${current.values.join(' ')} to ${add.netrcFile}`);
    }
  }
  return { text: lines.length === 0 ? '' : `${lines.join('\n')}\n`, changes };
}

/**
 * Adds `value` to the setting `extra` (the second of `names`) unless one of `names` already
 * holds it: to the last such line if there is one, else on a line of its own.
 */
function addValue(
  lines: string[],
  changes: string[],
  names: [string, string],
  value: string,
  same: (a: string, b: string) => boolean,
): void {
  const settings = nixConfSettings(lines.join('\n')).filter((s) => names.includes(s.name));
  if (settings.some((s) => s.values.some((v) => same(v, value)))) return;
  const extra = names[1];
  const last = settings.filter((s) => s.name === extra).at(-1);
  if (last) {
    lines[last.line] = `${extra} = ${[...last.values, value].join(' ')}${last.comment}`;
  } else {
    lines.push(`${extra} = ${value}`);
  }
  changes.push(`added ${value} to ${extra}`);
}
