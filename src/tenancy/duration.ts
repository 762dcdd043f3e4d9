import { NarwhalError } from '../errors.ts';

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** The longest duration accepted anywhere (retention, token lifetimes, intervals): 100 years. */
export const MAX_DURATION_MS = 100 * 365 * UNITS.d;

/** Parses `90s`, `45m`, `12h`, `30d`, `2w` into milliseconds, up to MAX_DURATION_MS. */
export function parseDuration(text: string): number {
  const match = /^(\d{1,12})([smhdw])$/.exec(text.trim());
  if (!match)
    throw new NarwhalError(
      'bad-request',
      `invalid duration ${JSON.stringify(text)}: use a number and s, m, h, d or w (e.g. 30d)`,
    );
  const ms = Number(match[1]) * UNITS[match[2]];
  if (ms > MAX_DURATION_MS)
    throw new NarwhalError('bad-request', `duration ${JSON.stringify(text)} is longer than 100 years`);
  return ms;
}

/** Like parseDuration, and `0` alone for zero (off, or forever, as the option says). */
export function parseDurationOrZero(text: string): number {
  return text.trim() === '0' ? 0 : parseDuration(text);
}

/** A retention as given on the command line: a duration (`30d`), or `0` for forever; in whole seconds. */
export function parseRetention(text: string): number {
  return Math.round(parseDurationOrZero(text) / 1000);
}

/** Seconds as the largest unit that divides them (`2592000` -> `30d`); 0 is `forever`. */
export function formatRetention(seconds: number): string {
  if (seconds === 0) return 'forever';
  for (const unit of ['w', 'd', 'h', 'm'] as const) {
    const size = UNITS[unit] / 1000;
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
