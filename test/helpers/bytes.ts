import assert from 'node:assert/strict';

/**
 * Byte equality with a short failure message (first differing offset and lengths): assert's own
 * diff of two multi-megabyte buffers takes minutes and gigabytes.
 */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, message = 'bytes differ'): void {
  if (Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(expected)) return;
  let at = 0;
  while (at < actual.length && at < expected.length && actual[at] === expected[at]) at++;
  assert.fail(`${message}: lengths ${actual.length} vs ${expected.length}, first difference at byte ${at}`);
}

/** Every byte of an async stream of pieces, in one buffer. */
export async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of source) parts.push(Buffer.from(part));
  return Buffer.concat(parts);
}
