import { NarwhalError } from '../errors.ts';

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses `90s`, `45m`, `12h`, `30d`, `2w` into milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)([smhdw])$/.exec(text.trim());
  if (!match) throw new NarwhalError('bad-request', `invalid duration ${JSON.stringify(text)}: use a number and s, m, h, d or w (e.g. 30d)`);
  return Number(match[1]) * UNITS[match[2]];
}
