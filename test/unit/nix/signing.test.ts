import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  fingerprint,
  generateSigningKey,
  narinfoFingerprint,
  parsePublicKey,
  parseSecretKey,
  signFingerprint,
  verifySignature,
} from '../../../src/nix/signing.ts';
import { parseNarinfo, serializeNarinfo, type NarInfo } from '../../../src/nix/narinfo.ts';
import { writeNar } from '../../../src/nix/nar-writer.ts';
import { formatSha256Nix32 } from '../../../src/nix/hash.ts';
import { isNarwhalError } from '../../../src/errors.ts';
import { evalPath, scratchNix } from '../../helpers/scratch-nix.ts';

const H1 = 'ab3li50xq0nl4q5lxdyinb8w8y13my9s';
const H2 = 'dkw0fn2kqdqjwg9lwpspsac36gmw9cg6';
const NARHASH = 'sha256:11c86c4k78207p48gyp8yri9c9nnxbsnpsvwg1cc2zsqnj6lbfhg';

test('fingerprint format', () => {
  assert.equal(
    fingerprint(`/nix/store/${H2}-b`, NARHASH, 160, [`/nix/store/${H2}-b`, `/nix/store/${H1}-f`]),
    `1;/nix/store/${H2}-b;${NARHASH};160;/nix/store/${H1}-f,/nix/store/${H2}-b`,
  );
  assert.equal(fingerprint(`/nix/store/${H1}-f`, NARHASH, 120, []), `1;/nix/store/${H1}-f;${NARHASH};120;`);
  const hex = execFileSync('nix-hash', ['--type', 'sha256', '--to-base16', NARHASH.slice(7)], {
    encoding: 'utf8',
  }).trim();
  assert.equal(fingerprint(`/nix/store/${H1}-f`, `sha256:${hex}`, 120, []), `1;/nix/store/${H1}-f;${NARHASH};120;`);
  assert.throws(
    () => fingerprint(`/nix/store/${H1}-f`, NARHASH, 0, []),
    (e) => isNarwhalError(e, 'bad-narinfo'),
  );
});

test('generated keys sign and verify; wrong keys, names and data do not', () => {
  const k = generateSigningKey('cache.example.org-1');
  assert.match(k.secretKey, /^cache\.example\.org-1:[A-Za-z0-9+/]{86}==$/);
  assert.match(k.publicKey, /^cache\.example\.org-1:[A-Za-z0-9+/]{43}=$/);
  assert.equal(Buffer.from(parseSecretKey(k.secretKey).publicKey).toString('base64'), k.publicKey.split(':')[1]);
  const fp = `1;/nix/store/${H1}-f;${NARHASH};120;`;
  const sig = signFingerprint(fp, k.secretKey);
  assert.match(sig, /^cache\.example\.org-1:[A-Za-z0-9+/]{86}==$/);
  assert.equal(signFingerprint(fp, parseSecretKey(k.secretKey)), sig);
  assert.equal(verifySignature(fp, sig, [k.publicKey]), true);
  assert.equal(verifySignature(fp, sig, [parsePublicKey(k.publicKey)]), true);
  const other = generateSigningKey('other');
  assert.equal(verifySignature(fp, sig, [other.publicKey, k.publicKey]), true);
  assert.equal(verifySignature(fp, sig, [other.publicKey]), false);
  assert.equal(verifySignature(fp, sig, []), false);
  assert.equal(verifySignature(fp + 'x', sig, [k.publicKey]), false);
  // Same key material under another name does not count.
  assert.equal(verifySignature(fp, sig, ['renamed:' + k.publicKey.split(':')[1]]), false);
  const sameName = generateSigningKey('cache.example.org-1');
  assert.equal(verifySignature(fp, sig, [sameName.publicKey]), false);
  for (const bad of [
    '',
    'nocolon',
    ':abc',
    `cache.example.org-1:${'A'.repeat(86)}==`,
    'cache.example.org-1:AAAA',
    `cache.example.org-1:!${sig.slice(21)}`,
  ]) {
    assert.equal(verifySignature(fp, bad, [k.publicKey]), false, bad);
  }
});

test('key parsing rejects malformed keys', () => {
  const k = generateSigningKey('n');
  const secret = Buffer.from(k.secretKey.slice(2), 'base64');
  const bad = [
    '',
    'n',
    'n:',
    ':' + k.secretKey.slice(2),
    'n:' + secret.subarray(0, 63).toString('base64'),
    'n:' + Buffer.concat([secret.subarray(0, 32), Buffer.alloc(32)]).toString('base64'), // halves disagree
    'n:' + k.secretKey.slice(2) + '!',
    k.publicKey,
  ];
  for (const s of bad)
    assert.throws(
      () => parseSecretKey(s),
      (e) => isNarwhalError(e, 'bad-request'),
      s,
    );
  for (const s of ['', 'n:', k.secretKey, 'n:AAAA', 'n:*']) {
    assert.throws(
      () => parsePublicKey(s),
      (e) => isNarwhalError(e, 'bad-request'),
      s,
    );
  }
  assert.equal(parseSecretKey(k.secretKey + '\n').name, 'n');
  assert.equal(parsePublicKey(k.publicKey + '\n').name, 'n');
  assert.throws(
    () => generateSigningKey(''),
    (e) => isNarwhalError(e, 'bad-request'),
  );
  assert.throws(
    () => generateSigningKey('a:b'),
    (e) => isNarwhalError(e, 'bad-request'),
  );
});

test('interoperates with Nix 2.8 signatures and keys', () => {
  const nix = scratchNix('narwhal-signing-');
  const { dir, store, run } = nix;
  try {
    const a = nix.addText('f', 'hello\n');
    // A path with a reference, so the fingerprint's reference list is exercised.
    const b = evalPath(nix, `builtins.toFile "b" "\${builtins.storePath "${a}"}"`);
    run('nix-store', '--generate-binary-cache-key', 'nix-key-1', join(dir, 'sk'), join(dir, 'pk'));
    const nixSk = readFileSync(join(dir, 'sk'), 'utf8');
    const nixPk = readFileSync(join(dir, 'pk'), 'utf8');

    // Nix signs (nix store sign); we verify and reproduce the exact signature with Nix's key.
    run('nix', 'store', 'sign', '--store', store, '--key-file', join(dir, 'sk'), a, b);
    const infos = JSON.parse(run('nix', 'path-info', '--store', store, '--json', '--sigs', a, b)) as {
      path: string;
      narHash: string;
      narSize: number;
      references: string[];
      signatures: string[];
    }[];
    assert.equal(infos.length, 2);
    for (const p of infos) {
      const fp = fingerprint(p.path, p.narHash, p.narSize, p.references);
      assert.equal(p.signatures.length, 1);
      assert.equal(verifySignature(fp, p.signatures[0], [nixPk]), true, p.path);
      assert.equal(signFingerprint(fp, nixSk), p.signatures[0], p.path);
    }
    assert.deepEqual(infos.find((p) => p.path === b)?.references, [a]);

    // Nix signs narinfo files (nix copy with secret-key=); our fingerprint of the parsed narinfo matches.
    const cache = join(dir, 'cache');
    run('nix', 'copy', '--store', store, '--to', `file://${cache}?compression=none&secret-key=${join(dir, 'sk')}`, b);
    for (const f of readdirSync(cache).filter((n) => n.endsWith('.narinfo'))) {
      const info = parseNarinfo(readFileSync(join(cache, f), 'utf8'));
      assert.equal(verifySignature(narinfoFingerprint(info), info.sigs[0], [nixPk]), true, f);
      assert.equal(signFingerprint(narinfoFingerprint(info), nixSk), info.sigs[0], f);
    }

    // Our key, used by Nix: Nix signs with it and Nix verifies our signature with our public key.
    const ours = generateSigningKey('narwhal-1');
    writeFileSync(join(dir, 'our-sk'), ours.secretKey);
    run('nix', 'store', 'sign', '--store', store, '--key-file', join(dir, 'our-sk'), a);
    const [pa] = JSON.parse(run('nix', 'path-info', '--store', store, '--json', '--sigs', a)) as {
      path: string;
      narHash: string;
      narSize: number;
      references: string[];
      signatures: string[];
    }[];
    const fpa = fingerprint(pa.path, pa.narHash, pa.narSize, pa.references);
    const ourSig = signFingerprint(fpa, ours.secretKey);
    assert.ok(pa.signatures.includes(ourSig), 'Nix signed with our key exactly as we do');
    assert.equal(verifySignature(fpa, ourSig, [ours.publicKey]), true);
  } finally {
    nix.remove();
  }
});

test('Nix 2.8 accepts input-addressed paths we sign, and only with our key trusted', () => {
  const nix = scratchNix('narwhal-signing-');
  const dir = nix.dir;
  const run = (...args: string[]): string => nix.run('nix', ...args);
  try {
    // A file:// binary cache written entirely by our code: NARs, narinfo files, signatures.
    const cache = join(dir, 'cache');
    mkdirSync(join(cache, 'nar'), { recursive: true });
    writeFileSync(join(cache, 'nix-cache-info'), 'StoreDir: /nix/store\n');
    const key = generateSigningKey('narwhal-test-1');
    const dep = `/nix/store/${H1}-narwhal-dep`;
    const top = `/nix/store/${H2}-narwhal-top`;
    const publish = (storePath: string, nar: Uint8Array, references: string[]): void => {
      const narHash = formatSha256Nix32(createHash('sha256').update(nar).digest());
      const info: NarInfo = {
        storePath,
        url: `nar/${narHash.slice(7)}.nar`,
        compression: 'none',
        fileHash: narHash,
        fileSize: nar.length,
        narHash,
        narSize: nar.length,
        references,
        sigs: [],
      };
      info.sigs.push(signFingerprint(narinfoFingerprint(info), key.secretKey));
      writeFileSync(join(cache, info.url), nar);
      writeFileSync(join(cache, `${storePath.slice(11, 43)}.narinfo`), serializeNarinfo(info));
    };
    publish(dep, writeNar({ type: 'regular', contents: new TextEncoder().encode('dep\n') }), []);
    publish(
      top,
      writeNar({
        type: 'directory',
        entries: { link: { type: 'symlink', target: dep }, self: { type: 'symlink', target: top } },
      }),
      [`${H1}-narwhal-dep`, `${H2}-narwhal-top`],
    );
    const copy = (storeName: string, trusted: string): string =>
      run(
        'copy',
        '--from',
        `file://${cache}`,
        '--to',
        join(dir, storeName),
        '--option',
        'trusted-public-keys',
        trusted,
        top,
      );
    assert.throws(() => copy('store-untrusted', generateSigningKey('narwhal-test-1').publicKey), /signature/);
    copy('store', key.publicKey);
    const [info] = JSON.parse(run('path-info', '--store', join(dir, 'store'), '--json', '--sigs', top)) as {
      references: string[];
      signatures: string[];
    }[];
    assert.deepEqual(info.references, [dep, top]);
    assert.equal(info.signatures.length, 1);
    assert.equal(info.signatures[0].startsWith('narwhal-test-1:'), true);
  } finally {
    nix.remove();
  }
});
