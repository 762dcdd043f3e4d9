import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerPool } from '../../../src/runtime/worker-pool.ts';

test('a worker that dies fails what it was asked, and later requests to it fail at once instead of waiting', async () => {
  const pool = new WorkerPool<{ echo?: string; die?: boolean }, string>(
    new URL('./fixtures/dying-worker.ts', import.meta.url),
    2,
  );
  try {
    assert.deepEqual(await Promise.all([pool.run({ echo: 'a' }), pool.run({ echo: 'b' })]), ['a', 'b']);
    await assert.rejects(pool.run({ die: true }), /worker died/);
    // Round robin: of the next two requests one goes to the dead worker, one to the live one.
    const answers = await Promise.allSettled([pool.run({ echo: 'c' }), pool.run({ echo: 'd' })]);
    assert.deepEqual(answers.map((a) => a.status).sort(), ['fulfilled', 'rejected']);
    const refused = answers.find((a) => a.status === 'rejected') as PromiseRejectedResult;
    assert.match(String(refused.reason), /worker died/);
  } finally {
    await pool.close();
  }
});

test('with idleMs, workers end once idle that long and new ones answer the next request', async () => {
  const pool = new WorkerPool<object, number>(new URL('./fixtures/thread-id-worker.ts', import.meta.url), 1, {
    idleMs: 50,
  });
  try {
    const first = await pool.run({});
    assert.equal(await pool.run({}), first, 'a busy pool keeps its worker');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await pool.run({});
    assert.notEqual(after, first, 'the idle worker ended and another one answered');
  } finally {
    await pool.close();
  }
});
