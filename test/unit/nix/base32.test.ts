import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { decodeNixBase32, encodeNixBase32, nixBase32Length } from '../../../src/nix/base32.ts';
import { isNarwhalError } from '../../../src/errors.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('known values', () => {
  const one = new Uint8Array(32);
  one[31] = 1;
  assert.equal(encodeNixBase32(one), '0080000000000000000000000000000000000000000000000000');
  const ff = new Uint8Array(32);
  ff[0] = 0xff;
  assert.equal(encodeNixBase32(ff), '000000000000000000000000000000000000000000000000007z');
  // sha256("") as Nix prints it.
  const empty = Buffer.from('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hex');
  assert.equal(encodeNixBase32(empty), '0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73');
  assert.equal(encodeNixBase32(new Uint8Array(0)), '');
  assert.equal(decodeNixBase32('').length, 0);
});

test('lengths follow (8n-1)/5+1', () => {
  assert.equal(nixBase32Length(32), 52);
  assert.equal(nixBase32Length(20), 32);
  assert.equal(nixBase32Length(16), 26);
  assert.equal(nixBase32Length(64), 103);
  for (let n = 0; n < 70; n++) {
    const bytes = randomBytes(n);
    const s = encodeNixBase32(bytes);
    assert.equal(s.length, nixBase32Length(n));
    assert.equal(hex(decodeNixBase32(s)), hex(bytes));
  }
});

test('agrees with nix-hash for random sha256, sha1, md5 and sha512 digests', () => {
  for (const [type, size] of [
    ['sha256', 32],
    ['sha1', 20],
    ['md5', 16],
    ['sha512', 64],
  ] as const) {
    const inputs = Array.from({ length: 25 }, () => randomBytes(size));
    const out = execFileSync('nix-hash', ['--type', type, '--to-base32', ...inputs.map(hex)], { encoding: 'utf8' })
      .trim()
      .split('\n');
    assert.equal(out.length, inputs.length);
    inputs.forEach((bytes, i) => {
      assert.equal(encodeNixBase32(bytes), out[i]);
      assert.equal(hex(decodeNixBase32(out[i])), hex(bytes));
    });
  }
});

test('rejects invalid characters, lengths and excess bits', () => {
  const valid = '0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73';
  const bad = [
    valid.replace('m', 'e'), // e is not in the alphabet
    valid.replace('m', 'o'),
    valid.replace('m', 'u'),
    valid.replace('m', 't'),
    valid.replace('m', 'M'),
    valid.replace('m', 'é'),
    valid.slice(1), // 51 chars: no byte length encodes to it
    valid + '00', // 54 chars
    '0', // 1 char
    '2' + valid.slice(1), // top digit has bits beyond byte 31
    'z' + valid.slice(1),
  ];
  for (const s of bad) {
    assert.throws(
      () => decodeNixBase32(s),
      (e) => isNarwhalError(e, 'bad-request'),
      s,
    );
  }
  // The top digit of a 32-byte value only carries one bit.
  assert.equal(decodeNixBase32('1' + valid.slice(1)).length, 32);
});
