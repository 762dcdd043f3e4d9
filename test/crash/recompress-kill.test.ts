/**
 * Recompression rewrites chunk files that committed NARs use: SIGKILLs at random moments of
 * `narwhal recompress` must leave every NAR whole, readable, with a `.nar.zst` exactly as long as
 * its FileSize, and a later run must finish the job.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DatabaseSync } from 'node:sqlite';
import { closeNarwhal, type Narwhal } from '../../src/context/narwhal.ts';
import { openNarwhal } from '../../src/tenancy/open-narwhal.ts';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import { openNar, readNarBytes, readStoredFrames } from '../../src/serving/nar-reader.ts';
import { verifyStore } from '../../src/maintenance/verify.ts';
import { writeNar } from '../../src/nix/nar-writer.ts';
import { assertSameBytes, collect } from '../helpers/bytes.ts';
import { unzstd } from '../helpers/zstd-cli.ts';
import { versionNar } from '../helpers/test-data.ts';
import { addPath, bodyOf, narHashOf } from '../helpers/narwhal-fixtures.ts';
import { loadBinarySource, seededRandom } from './synthetic-paths.ts';

const BIN = resolve(import.meta.dirname, '../../bin/narwhal.js');
const KILLS = Number(process.env.NARWHAL_CRASH_KILLS ?? 8);

/** Runs `narwhal recompress` and SIGKILLs it after `killAfterMs`; resolves with whether it finished first. */
function recompressUntilKilled(dataDir: string, killAfterMs: number): Promise<boolean> {
  const child = spawn(process.execPath, [BIN, 'recompress', '--data-dir', dataDir, '--level', '19', '--deltas'], {
    stdio: 'ignore',
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  return new Promise((resolvePromise, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolvePromise(code === 0);
    });
  });
}

async function pendingChunks(dataDir: string): Promise<number> {
  const nw = await openNarwhal({ dataDir });
  try {
    return (await nw.meta.chunksToRecompress(new Uint8Array(0), 100_000)).length;
  } finally {
    await closeNarwhal(nw);
  }
}

function expireLeases(dataDir: string): void {
  const db = new DatabaseSync(join(dataDir, 'narwhal.sqlite'));
  try {
    db.exec('UPDATE leases SET expires_at = 0');
  } finally {
    db.close();
  }
}

async function fileBytes(nw: Narwhal): Promise<number> {
  let total = 0;
  for await (const file of nw.chunks.list()) total += file.storedSize;
  return total;
}

test(`recompression SIGKILLed at random moments (up to ${KILLS} times): every NAR stays whole, its .nar.zst as long as its FileSize`, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-recompress-kill-'));
  try {
    // NARs of real binary bytes, stored at zstd 1 so that level 19 rewrites nearly every chunk.
    const random = seededRandom('recompress-kill');
    const binary = loadBinarySource();
    const nars: Uint8Array[] = [];
    let nw = await openNarwhal({ dataDir: dir, options: { zstdLevel: 1 } });
    try {
      for (let i = 0; i < 6; i++) {
        const start = Math.floor(random() * (binary.length - 4_000_000));
        const nar = writeNar({
          type: 'directory',
          entries: {
            bin: {
              type: 'regular',
              contents: binary.subarray(start, start + 1_500_000 + i * 200_000),
              executable: true,
            },
            shared: { type: 'regular', contents: binary.subarray(0, 1_000_000) },
          },
        });
        nars.push(nar);
        await addPath(nw, 'main', await ingestNar(nw, bodyOf(nar), { compression: 'none' }));
      }
      // Three versions of one binary, oldest first: the run also stores older chunks as deltas
      // of newer ones (delta-encode.ts), so kills land in that too.
      for (const seed of [1000, 2000, 3000]) {
        const nar = versionNar(seed, 200_000);
        nars.push(nar);
        await addPath(nw, 'main', await ingestNar(nw, bodyOf(nar), { compression: 'none' }));
      }
    } finally {
      await closeNarwhal(nw);
    }

    const pendingBefore = await pendingChunks(dir);
    let kills = 0;
    // Kills land at random moments of a window that widens after a run killed before it committed
    // anything (on a loaded machine starting Node and the first batch can take most of it).
    let window = 2000;
    for (let finished = false, pending = pendingBefore; kills < KILLS && !finished; kills++) {
      finished = await recompressUntilKilled(dir, 600 + Math.floor(random() * window));
      // A killed run's lease would keep others out until it expires (tested in the metadata
      // suite); expire it now rather than wait.
      expireLeases(dir);
      const now = await pendingChunks(dir);
      if (now === pending) window *= 1.5;
      pending = now;
    }
    assert.ok(kills >= 2, `killed ${kills} runs before one finished`);
    t.diagnostic(`${kills} runs killed or finished`);
    const pendingAfter = await pendingChunks(dir);
    assert.ok(
      pendingAfter < pendingBefore,
      `killed runs made progress: ${pendingBefore} -> ${pendingAfter} chunks to do`,
    );
    t.diagnostic(`chunks to recompress: ${pendingBefore} before, ${pendingAfter} after the killed runs`);
    await sleep(50);
    // Whatever the kills left, a run to the end finishes it.
    assert.equal(await recompressUntilKilled(dir, 600_000), true, 'a last run completes');

    nw = await openNarwhal({ dataDir: dir });
    try {
      const verify = await verifyStore(nw);
      assert.deepEqual([verify.chunks.missing, verify.chunks.corrupt, verify.nars.damaged], [0, 0, 0]);
      assert.equal(await fileBytes(nw), (await nw.meta.stats()).storedBytes, 'every record has the size of its file');
      assert.deepEqual(await nw.meta.chunksToRecompress(new Uint8Array(0), 1), [], 'nothing left to do');
      const deltas = (await nw.meta.listChunks(new Uint8Array(0), 100_000)).filter((c) => c.encoding === 'delta');
      assert.ok(deltas.length > 0, 'the runs stored chunks as deltas');
      t.diagnostic(`${deltas.length} chunks stored as deltas`);
      for (const nar of nars) {
        const opened = await openNar(nw, narHashOf(nar));
        assert.ok(opened, `NAR of ${nar.length} bytes opens`);
        assertSameBytes(await collect(readNarBytes(nw, opened)), nar);
        const frames = await collect(readStoredFrames(nw, opened));
        assert.equal(frames.length, opened.storedSize);
        assertSameBytes(unzstd(frames), nar);
      }
    } finally {
      await closeNarwhal(nw);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
