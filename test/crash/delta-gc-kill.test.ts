/**
 * GC and the delta pass side by side (issue 19): `narwhal recompress --deltas` and `narwhal gc`
 * run at once and are SIGKILLed at random moments (seeded), while every round adds a newer
 * version and deletes paths, old and new, so that GC has NARs and chunks to take while chunks
 * are stored as deltas of the ones it may take. Afterwards every remaining NAR must be whole
 * (plain, and as a `.nar.zst` exactly as long as its FileSize), verify clean, and no delta
 * without its bases: a base outlives its dependants (src/maintenance/gc.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { closeNarwhal, type Narwhal } from '../../src/context/narwhal.ts';
import { openNarwhal } from '../../src/tenancy/open-narwhal.ts';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import { openNar, readNarBytes, readStoredFrames } from '../../src/serving/nar-reader.ts';
import { verifyStore } from '../../src/maintenance/verify.ts';
import { CLOCK_MARGIN_MS } from '../../src/maintenance/gc.ts';
import { parseStored } from '../../src/delta/stored-form.ts';
import { assertSameBytes, collect } from '../helpers/bytes.ts';
import { unzstd } from '../helpers/zstd-cli.ts';
import { versionNar } from '../helpers/test-data.ts';
import { addPath, bodyOf, narHashOf } from '../helpers/narwhal-fixtures.ts';
import { seededRandom } from './synthetic-paths.ts';

const BIN = resolve(import.meta.dirname, '../../bin/narwhal.js');
const ROUNDS = Number(process.env.NARWHAL_CRASH_KILLS ?? 6);

/** Runs the narwhal command and SIGKILLs it after `killAfterMs`: whether it finished first, and how long it ran. */
function runUntilKilled(args: string[], killAfterMs: number): Promise<{ finished: boolean; ms: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  return new Promise((resolvePromise, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolvePromise({ finished: code === 0, ms: performance.now() - started });
    });
  });
}

/**
 * Kill times spread over a whole run: the first run of each command goes to the end and sets how
 * long a run takes (process start included, which a loaded machine stretches); each later one is
 * killed at a random 30% to 110% of the latest finished run's time.
 */
class KillClock {
  readonly #random: () => number;
  #runMs: number | undefined;
  constructor(random: () => number) {
    this.#random = random;
  }
  next(): number {
    return this.#runMs === undefined ? 600_000 : this.#runMs * (0.3 + 0.8 * this.#random());
  }
  noteRun(run: { finished: boolean; ms: number }): void {
    if (run.finished) this.#runMs = run.ms;
  }
}

/** A killed run's lease would keep the next one out until it expires: expire it now. */
function expireLeases(dataDir: string): void {
  const db = new DatabaseSync(join(dataDir, 'narwhal.sqlite'));
  try {
    db.exec('UPDATE leases SET expires_at = 0');
  } finally {
    db.close();
  }
}

async function withNarwhal<T>(dataDir: string, work: (nw: Narwhal) => Promise<T>): Promise<T> {
  const nw = await openNarwhal({ dataDir, options: { zstdLevel: 1 } });
  try {
    return await work(nw);
  } finally {
    await closeNarwhal(nw);
  }
}

interface Version {
  nar: Uint8Array;
  hashPart: string;
}

test(`delta pass and GC SIGKILLed at random moments (${ROUNDS} rounds): every remaining NAR whole, no base gone before its dependants`, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-delta-gc-kill-'));
  try {
    const random = seededRandom('delta-gc-kill');
    const live: Version[] = [];
    let deletedPaths = 0;
    let finishedRuns = 0;
    const recompressClock = new KillClock(random);
    const gcClock = new KillClock(random);
    const addVersion = (nw: Narwhal, seed: number): Promise<void> =>
      (async () => {
        const nar = versionNar(seed, 150_000);
        const record = await ingestNar(nw, bodyOf(nar), { compression: 'none' });
        live.push({ nar, hashPart: await addPath(nw, 'main', record) });
      })();
    // Three versions to start with, oldest first: the pass stores the older as deltas of the newer.
    await withNarwhal(dir, async (nw) => {
      for (const seed of [100, 200, 300]) await addVersion(nw, seed);
    });

    for (let round = 0; round < ROUNDS; round++) {
      // A newer version arrives, and one path goes: mostly the oldest (retention), sometimes the
      // newest but one, whose chunks are the bases of older deltas.
      await withNarwhal(dir, async (nw) => {
        await addVersion(nw, 400 + round * 100);
        const victim = random() < 0.6 ? 0 : live.length - 2;
        const [gone] = live.splice(victim, 1);
        const main = (await nw.meta.getCache('main'))!;
        assert.deepEqual((await nw.meta.deletePaths(main.id, [gone.hashPart])).deleted, [gone.hashPart]);
        deletedPaths++;
      });
      const [recompress, gc] = await Promise.all([
        runUntilKilled(['recompress', '--data-dir', dir, '--level', '3', '--deltas'], recompressClock.next()),
        runUntilKilled(['gc', '--data-dir', dir, '--grace', '0'], gcClock.next()),
      ]);
      recompressClock.noteRun(recompress);
      gcClock.noteRun(gc);
      finishedRuns += Number(recompress.finished) + Number(gc.finished);
      expireLeases(dir);
    }
    t.diagnostic(`${ROUNDS} rounds, ${finishedRuns} of ${ROUNDS * 2} runs finished before their kill`);
    assert.ok(finishedRuns < ROUNDS * 2 - 2, 'runs were killed besides the first two');

    // Runs to the end finish whatever the kills left, and GC takes what the deleted paths left.
    const last = await runUntilKilled(['recompress', '--data-dir', dir, '--level', '3', '--deltas'], 600_000);
    assert.ok(last.finished, 'a last recompression completes');
    // GC spares files written within CLOCK_MARGIN_MS of its cutoff (file times come from a coarser
    // clock): a GC started sooner would leave the files of records it deletes for the next one.
    await new Promise((resolve) => setTimeout(resolve, CLOCK_MARGIN_MS + 100));
    for (let i = 0; i < 3; i++)
      assert.ok((await runUntilKilled(['gc', '--data-dir', dir, '--grace', '0'], 600_000)).finished, 'GC completes');

    await withNarwhal(dir, async (nw) => {
      const verify = await verifyStore(nw);
      assert.deepEqual(
        [verify.chunks.missing, verify.chunks.corrupt, verify.chunks.baseDamaged, verify.nars.damaged],
        [0, 0, 0, 0],
        'verify is clean',
      );
      const chunks = await nw.meta.listChunks(new Uint8Array(0), 1_000_000);
      const deltas = chunks.filter((c) => c.encoding === 'delta');
      assert.ok(deltas.length > 0, 'chunks are stored as deltas');
      t.diagnostic(`${deltas.length} of ${chunks.length} chunks stored as deltas; ${deletedPaths} paths deleted`);
      for (const chunk of deltas) {
        const form = parseStored(await nw.chunks.get(chunk.id));
        assert.equal(form.kind, 'delta', 'a chunk recorded as a delta is stored as one');
        for (const base of form.kind === 'delta' ? form.bases : [])
          assert.ok(await nw.meta.getChunk(base), 'every base of a delta has its record');
      }
      let fileBytes = 0;
      for await (const file of nw.chunks.list()) fileBytes += file.storedSize;
      assert.equal(fileBytes, (await nw.meta.stats()).storedBytes, 'every record has the size of its file');
      assert.equal((await nw.meta.stats()).nars, live.length, 'GC took the NARs of every deleted path');
      for (const { nar } of live) {
        const opened = await openNar(nw, narHashOf(nar));
        assert.ok(opened, 'a remaining NAR opens');
        assertSameBytes(await collect(readNarBytes(nw, opened)), nar);
        const frames = await collect(readStoredFrames(nw, opened));
        assert.equal(frames.length, opened.storedSize, '.nar.zst is FileSize bytes');
        assertSameBytes(unzstd(frames), nar);
      }
    });
  } finally {
    if (process.env.NARWHAL_KEEP_DATA) t.diagnostic(`data kept in ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
});
