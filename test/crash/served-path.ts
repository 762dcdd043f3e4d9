import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';
import { parseNarinfo } from '../../src/nix/narinfo.ts';
import { assertSameBytes } from '../helpers/bytes.ts';

/** What a client expects a cache to serve for one store path. */
export interface ExpectedPath {
  storePath: string;
  hashPart: string;
  references: string[];
  narHash: string;
  nar: Uint8Array;
}

/**
 * Reads a path back the way a substituting client does and checks every byte: 'absent' when the
 * narinfo answers 404; otherwise the narinfo must describe exactly what was pushed, the NAR its
 * URL names must decompress to the pushed NAR, and `nar/<narhash>.nar` must serve it plain.
 * With `bytes: false` only the narinfo is checked. Any other answer fails the assertion.
 */
export async function checkServedPath(
  cacheUrl: string,
  expected: ExpectedPath,
  options: { bytes?: boolean } = {},
): Promise<'absent' | 'served'> {
  const response = await fetch(`${cacheUrl}/${expected.hashPart}.narinfo`, { signal: AbortSignal.timeout(60_000) });
  const text = await response.text();
  if (response.status === 404) return 'absent';
  assert.equal(response.status, 200, `GET ${expected.hashPart}.narinfo: ${response.status} ${text.trim()}`);
  const info = parseNarinfo(text);
  assert.equal(info.storePath, expected.storePath, `${expected.hashPart}.narinfo StorePath`);
  assert.equal(info.narHash, expected.narHash, `${expected.storePath}: NarHash`);
  assert.equal(info.narSize, expected.nar.length, `${expected.storePath}: NarSize`);
  assert.deepEqual([...info.references].sort(), [...expected.references].sort(), `${expected.storePath}: References`);
  if (options.bytes === false) return 'served';

  const viaUrl = await fetchBytes(`${cacheUrl}/${info.url}`);
  const nar = info.compression === 'zstd' ? await zstdDecompress(viaUrl) : viaUrl;
  assert.equal(sha256Nix32(nar), expected.narHash, `${expected.storePath}: ${info.url} does not hash to its NarHash`);
  assertSameBytes(nar, expected.nar, `${expected.storePath}: ${info.url}`);
  const plain = await fetchBytes(`${cacheUrl}/nar/${expected.narHash.slice('sha256:'.length)}.nar`);
  assertSameBytes(plain, expected.nar, `${expected.storePath}: plain NAR`);
  return 'served';
}

export async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url, { signal: AbortSignal.timeout(60_000) });
  const body = new Uint8Array(await response.arrayBuffer());
  assert.equal(response.status, 200, `GET ${url}: ${response.status} ${Buffer.from(body.subarray(0, 200)).toString()}`);
  return body;
}

/** The real zstd decompresses: the served file is many frames back to back (node:zlib stops after the first). */
export async function zstdDecompress(bytes: Uint8Array): Promise<Buffer> {
  const child = spawn('zstd', ['-dcq'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin.on('error', () => undefined); // an early exit is reported below
  child.stdin.end(bytes);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 0, `zstd -d failed: ${err.trim()}`);
  return Buffer.concat(out);
}

export function sha256Nix32(bytes: Uint8Array): string {
  return formatSha256Nix32(createHash('sha256').update(bytes).digest());
}

/** Runs `work` over `items` with at most `limit` at once; rejects with the first failure. */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
