/** Number formatting for the report. Sizes are decimal: 1 MB = 10^6 bytes. */

export function mb(bytes: number): string {
  const v = bytes / 1e6;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} MB`;
}

export function seconds(s: number): string {
  if (!Number.isFinite(s)) return '-';
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : s < 0.1 ? 1 : 0)} ms`;
  return `${s >= 100 ? s.toFixed(0) : s >= 10 ? s.toFixed(1) : s.toFixed(2)} s`;
}

export function rate(bytes: number, s: number): string {
  return s > 0 ? `${(bytes / 1e6 / s).toFixed(1)} MB/s` : '-';
}

export function times(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : '-';
}

export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A markdown table; cells are escaped for pipes. */
export function table(header: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  const sep = header.map((_, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? '---:' : '---'));
  return [header, sep, ...rows].map((r, i) => `| ${(i === 1 ? r : r.map(esc)).join(' | ')} |`).join('\n');
}
