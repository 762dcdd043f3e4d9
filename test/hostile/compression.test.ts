import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { NarTokenWriter, writeNar } from '../../src/nix/nar-writer.ts';
import { narHashOf } from '../helpers/narwhal-fixtures.ts';
import { narwhal, startServer, tempDir } from '../e2e/harness.ts';
import {
  answerOf,
  assertClientError,
  assertNothingStored,
  nix32Sha256,
  startHostileServer,
  type HostileServer,
} from './hostile-server.ts';

type Format = 'xz' | 'zstd' | 'bzip2' | 'br' | 'gzip' | 'lz4';

/** The CLI tools produce the streams; the URL suffix Nix uses for each (gzip shares the bare `.nar`). */
const FORMATS: Record<Format, { command: string[]; suffix: string; name: RegExp }> = {
  xz: { command: ['xz', '-c', '-T1', '-1'], suffix: '.xz', name: /xz/ },
  zstd: { command: ['zstd', '-q', '-c'], suffix: '.zst', name: /zstd/ },
  bzip2: { command: ['bzip2', '-c', '-1'], suffix: '.bz2', name: /bzip2/ },
  br: { command: ['brotli', '-c', '-q', '1'], suffix: '.br', name: /br/ },
  gzip: { command: ['gzip', '-c', '-n', '-1'], suffix: '', name: /gzip/ },
  lz4: { command: ['lz4', '-q', '-c'], suffix: '.lz4', name: /lz4/ },
};
const ALL = Object.keys(FORMATS) as Format[];

function compress(format: Format, data: Uint8Array): Buffer {
  const [command, ...args] = FORMATS[format].command;
  const result = spawnSync(command, args, { input: data, maxBuffer: 1 << 30 });
  assert.equal(result.status, 0, `${command}: ${result.stderr}`);
  return result.stdout;
}

/**
 * A decompression bomb: a valid NAR of one file of `zeros` zero bytes, compressed by the CLI tool
 * straight from /dev/zero, so neither side ever holds the decompressed bytes.
 */
async function bomb(format: Format, zeros: number): Promise<Buffer> {
  const head = new NarTokenWriter().str('nix-archive-1').strs('(', 'type', 'regular', 'contents').u64(zeros).finish();
  const tail = new NarTokenWriter().padding(zeros).str(')').finish();
  const [command, ...args] = FORMATS[format].command;
  const child = spawn(
    'sh',
    [
      '-c',
      `{ cat; head -c ${zeros} /dev/zero; printf '${[...tail].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('')}'; } | ${command} ${args.join(' ')}`,
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  child.stdin.end(head);
  const parts: Buffer[] = [];
  for await (const part of child.stdout) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

describe('hostile compressed uploads', () => {
  let h: HostileServer;
  let nar: Uint8Array;
  before(async () => {
    h = await startHostileServer();
    const binary = await readFile(process.execPath);
    nar = writeNar({
      type: 'directory',
      entries: {
        bin: { type: 'regular', contents: binary.subarray(1_000_000, 1_300_000), executable: true },
        etc: {
          type: 'directory',
          entries: Object.fromEntries(
            Array.from({ length: 200 }, (_, i) => [`f${i}`, { type: 'regular', contents: Buffer.from(`file ${i}\n`) }]),
          ),
        },
      },
    });
  });
  after(() => h.close());

  const put = async (format: Format, body: Uint8Array) =>
    answerOf(
      await fetch(h.url(`nar/${nix32Sha256(body)}.nar${FORMATS[format].suffix}`), {
        method: 'PUT',
        body: Buffer.from(body),
        headers: h.auth,
      }),
    );

  test('every compression: corrupt, truncated, foreign and empty streams get 400 and store nothing', async () => {
    const garbage = createHash('sha512').update('garbage').digest();
    for (const format of ALL) {
      const good = compress(format, nar);
      const flipped = Buffer.from(good);
      // In the middle of the stream, where every format's checks (or the NAR grammar) notice.
      for (const at of [Math.floor(good.length / 2), Math.floor(good.length / 3)]) flipped[at] ^= 0x55;
      const other = compress(format === 'xz' ? 'zstd' : 'xz', nar);
      const variants: [string, Uint8Array, RegExp][] = [
        ['truncated', good.subarray(0, Math.floor(good.length * 0.6)), /corrupt .* stream|truncated/],
        ['header only', good.subarray(0, 4), /corrupt .* stream|truncated|invalid NAR/],
        ['bytes flipped', flipped, /corrupt .* stream|invalid NAR|truncated/],
        ['garbage', garbage, /corrupt .* stream|invalid NAR|truncated/],
        ['empty', new Uint8Array(0), /corrupt .* stream|truncated/],
        ['another format', other, /corrupt .* stream|invalid NAR/],
        ['trailing garbage', Buffer.concat([good, garbage]), /corrupt .* stream|trailing|invalid NAR/],
        ['a valid stream of something else', compress(format, garbage), /invalid NAR|truncated/],
      ];
      for (const [label, body, pattern] of variants) {
        const answer = await assertNothingStored(h.nw, () => put(format, body));
        assertClientError(answer, 400, pattern, `${format}: ${label}`);
        if (/corrupt/.test(answer.body))
          assert.match(answer.body, FORMATS[format].name, `${format}: ${label} names the format`);
      }
      // The intact stream is accepted: what failed above was the damage alone.
      assert.equal((await put(format, good)).status, 204, `${format}: intact`);
    }
    assert.deepEqual(h.logged, []);
  });
});

describe('decompression bombs', () => {
  const LIMIT = 1024 * 1024;
  const ZEROS = 200_000_000;
  let h: HostileServer;
  const bombs = new Map<Format, Buffer>();
  before(async () => {
    h = await startHostileServer({ narwhal: { maxNarSize: LIMIT } });
    await Promise.all(ALL.map(async (format) => bombs.set(format, await bomb(format, ZEROS))));
  });
  after(() => h.close());

  test('200 MB of zeros in every compression gets 413 at a 1 MiB limit, in bounded memory', async () => {
    for (const format of ALL) {
      const body = bombs.get(format)!;
      assert.ok(body.length < 1_000_000, `${format} bomb is small (${body.length} bytes)`);
      const baseline = process.memoryUsage.rss();
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
      try {
        const answer = await assertNothingStored(h.nw, async () =>
          answerOf(
            await fetch(h.url(`nar/${nix32Sha256(body)}.nar${FORMATS[format].suffix}`), {
              method: 'PUT',
              body,
              headers: h.auth,
            }),
          ),
        );
        assertClientError(answer, 413, new RegExp(`NAR exceeds the size limit of ${LIMIT} bytes`), format);
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, process.memoryUsage.rss());
      // Decompressing the whole bomb into memory would take 200 MB.
      assert.ok(
        peak - baseline < 100 * 1024 * 1024,
        `${format}: memory grew by ${((peak - baseline) / 2 ** 20).toFixed(0)} MiB`,
      );
    }
    assert.deepEqual(h.logged, []);
  });

  test('a plain NAR over the limit gets 413 too, and one under it is stored', async () => {
    const over = writeNar({ type: 'regular', contents: new Uint8Array(LIMIT + 1) });
    const answer = await assertNothingStored(h.nw, async () =>
      answerOf(
        await fetch(h.url(`nar/${nix32Sha256(over)}.nar`), { method: 'PUT', body: Buffer.from(over), headers: h.auth }),
      ),
    );
    assertClientError(answer, 413, /NAR exceeds the size limit/);
    const under = writeNar({ type: 'regular', contents: new Uint8Array(LIMIT - 200) });
    assert.equal(
      (
        await fetch(h.url(`nar/${narHashOf(under).slice(7)}.nar`), {
          method: 'PUT',
          body: Buffer.from(under),
          headers: h.auth,
        })
      ).status,
      204,
    );
  });

  test('narwhal serve --max-nar-size sets the limit', async () => {
    const dir = await tempDir('max-nar-size');
    try {
      await assert.rejects(
        narwhal(['serve', '--data-dir', dir.path, '--max-nar-size', '12X']),
        /--max-nar-size takes a size in bytes/,
      );
      const { secret } = JSON.parse(
        await narwhal(['token', 'create', '--data-dir', dir.path, '--cache', 'main', '--perm', 'push', '--json']),
      ) as { secret: string };
      const server = await startServer(dir.path, ['--max-nar-size', '4K']);
      try {
        const small = writeNar({ type: 'regular', contents: new Uint8Array(3000) });
        const big = writeNar({ type: 'regular', contents: new Uint8Array(5000) });
        const upload = (nar: Uint8Array) =>
          fetch(`${server.url}/main/nar/${nix32Sha256(nar)}.nar`, {
            method: 'PUT',
            body: Buffer.from(nar),
            headers: { Authorization: `Bearer ${secret}` },
          });
        const refused = await answerOf(await upload(big));
        assertClientError(refused, 413, /NAR exceeds the size limit of 4096 bytes/);
        assert.equal((await upload(small)).status, 204);
      } finally {
        await server.stop();
      }
    } finally {
      await dir.remove();
    }
  });
});
