import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { formatSha256Nix32, normalizeSha256, parseSha256 } from '../../../src/nix/hash.ts';
import { isNarwhalError } from '../../../src/errors.ts';

const NIX_ENV = { ...process.env, NIX_CONFIG: 'experimental-features = nix-command' };
const nixHash = (conv: string, hash: string): string =>
  execFileSync('nix', ['hash', conv, '--type', 'sha256', hash], { env: NIX_ENV, encoding: 'utf8' }).trim();

const digest = createHash('sha256').update('hello\n').digest();
const NIX32 = 'sha256:00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq';

test('formatSha256Nix32 matches Nix', () => {
  assert.equal(formatSha256Nix32(digest), `sha256:${nixHash('to-base32', digest.toString('hex'))}`);
  assert.throws(
    () => formatSha256Nix32(new Uint8Array(20)),
    (e) => isNarwhalError(e, 'internal'),
  );
});

test('parses every notation Nix prints, and they agree', () => {
  for (let i = 0; i < 8; i++) {
    const bytes = i === 0 ? digest : randomBytes(32);
    const hex = bytes.toString('hex');
    const forms = [
      `sha256:${nixHash('to-base32', hex)}`,
      `sha256:${hex}`,
      `sha256:${hex.toUpperCase()}`,
      `sha256:${nixHash('to-base64', hex)}`,
      nixHash('to-sri', hex),
    ];
    for (const f of forms) {
      assert.deepEqual(Buffer.from(parseSha256(f)), bytes, f);
      assert.equal(normalizeSha256(f), forms[0]);
    }
  }
});

test('sha256 of "hello\n" as nix-hash --flat --base32 prints it', () => {
  assert.equal(normalizeSha256(`sha256-${digest.toString('base64')}`), NIX32);
});

test('rejects malformed hashes with the requested code', () => {
  const hex = digest.toString('hex');
  const b64 = digest.toString('base64');
  const bad = [
    '',
    NIX32.slice(7), // no algorithm
    NIX32.replace('sha256', 'sha512'),
    NIX32.replace('sha256:', 'SHA256:'),
    NIX32.replace('sha256:', 'md5:'),
    NIX32.slice(0, -1),
    NIX32 + '0',
    NIX32.replace('00xy', '00ey'), // 'e' is not nix32
    'sha256:2' + NIX32.slice(8), // excess high bits
    `sha256:${hex.slice(0, 63)}g`,
    `sha256:${hex}0`,
    `sha256:${b64.slice(0, -1)}`, // unpadded
    `sha256:${b64.slice(0, -2)}*=`,
    `sha256:${b64.slice(0, -2)}B=`, // trailing bits set: not the canonical encoding
    `sha256-${NIX32.slice(7)}`, // SRI must be base64
    `sha256-${hex}`,
    ` ${NIX32}`,
    `${NIX32}\n`,
  ];
  for (const s of bad) {
    assert.throws(
      () => parseSha256(s, 'bad-narinfo'),
      (e) => isNarwhalError(e, 'bad-narinfo'),
      JSON.stringify(s),
    );
  }
  assert.throws(
    () => parseSha256(''),
    (e) => isNarwhalError(e, 'bad-request'),
  );
});
