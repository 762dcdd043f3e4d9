import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TaskLimit } from '../../../src/runtime/task-limit.ts';
import { isNarwhalError } from '../../../src/errors.ts';
import { parseDuration } from '../../../src/tenancy/duration.ts';

test('TaskLimit runs at most maxRunning tasks, queues maxWaiting more, refuses the rest', async () => {
  const limit = new TaskLimit(2, 1, 'busy');
  let running = 0;
  let most = 0;
  const gates: (() => void)[] = [];
  const task = () =>
    limit.run(async () => {
      most = Math.max(most, ++running);
      await new Promise<void>((resolve) => gates.push(resolve));
      running--;
      return 'done';
    });
  const accepted = [task(), task(), task()];
  await assert.rejects(task(), (err: unknown) => isNarwhalError(err, 'unavailable') && err.message === 'busy');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(gates.length, 2, 'the third waits');
  gates.shift()!();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(gates.length, 2, 'the third started when a slot freed');
  for (const open of gates.splice(0)) open();
  assert.deepEqual(await Promise.all(accepted), ['done', 'done', 'done']);
  assert.equal(most, 2);
  assert.equal(await limit.run(async () => 'again'), 'again', 'slots are given back');
});

test('TaskLimit gives the slot back when a task fails', async () => {
  const limit = new TaskLimit(1, 0, 'busy');
  await assert.rejects(
    limit.run(async () => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(await limit.run(async () => 1), 1);
});

test('durations: units, and nothing past 100 years', () => {
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('2w'), 14 * 86_400_000);
  assert.equal(parseDuration('36500d'), 36_500 * 86_400_000);
  for (const text of ['36501d', '99999999999999999999d', '1e3s', '-1d', '5y', ''])
    assert.throws(() => parseDuration(text), /duration/, text);
});
