const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Bytes in binary units, three significant figures: `1.50 MiB`. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toPrecision(3)} ${UNITS[unit]}`;
}

/** A time as UTC, to the second: `2026-12-07 12:03:54Z`. */
export function formatTime(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

/** NAR bytes per stored byte, `3.21x`; `-` when nothing is stored. */
export function formatRatio(narBytes: number, storedBytes: number): string {
  return storedBytes > 0 ? `${(narBytes / storedBytes).toFixed(2)}x` : '-';
}
