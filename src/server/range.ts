/** A satisfiable byte range [start, end) of a resource of `size` bytes. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parses a Range header for a single byte range (RFC 9110). Returns undefined when the header is
 * absent or not one we honour (several ranges, other units): the whole resource is sent then.
 * Returns 'unsatisfiable' for a range that starts beyond the end.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(match[1]);
  const last = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size) return 'unsatisfiable';
  if (last < start) return undefined;
  return { start, end: last + 1 };
}
