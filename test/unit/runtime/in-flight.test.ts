import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InFlight } from '../../../src/runtime/in-flight.ts';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('InFlight keeps at most its limit running: add waits for a slot, settled for every task', async () => {
  const tasks = new InFlight<number>(2);
  let running = 0;
  let most = 0;
  const gates: (() => void)[] = [];
  const task = (value: number) => async (): Promise<number> => {
    most = Math.max(most, ++running);
    await new Promise<void>((resolve) => gates.push(resolve));
    running--;
    return value;
  };
  await tasks.add(task(1));
  await tasks.add(task(2));
  let thirdAdded = false;
  const third = tasks.add(task(3)).then(() => {
    thirdAdded = true;
  });
  await tick();
  assert.equal(thirdAdded, false, 'the third waits for a slot');
  gates.shift()!();
  await third;
  assert.equal(gates.length, 2, 'the third runs once the first ended');
  let settled = false;
  const all = tasks.settled().then(() => {
    settled = true;
  });
  await tick();
  assert.equal(settled, false, 'settled waits for the tasks still running');
  for (const open of gates.splice(0)) open();
  await all;
  assert.equal(most, 2);
  assert.deepEqual(
    tasks.results().sort((a, b) => a - b),
    [1, 2, 3],
  );
});

test('InFlight: after a task fails, add throws its error, the others still end, and throwIfFailed throws', async () => {
  const tasks = new InFlight<string>(2);
  let release!: () => void;
  let slowEnded = false;
  await tasks.add(async () => {
    await new Promise<void>((resolve) => {
      release = resolve;
    });
    slowEnded = true;
    return 'slow';
  });
  await tasks.add(async () => {
    throw new Error('worker gone');
  });
  await tick();
  let started = false;
  await assert.rejects(
    tasks.add(async () => {
      started = true;
      return 'late';
    }),
    /worker gone/,
  );
  assert.equal(started, false, 'no task starts after a failure');
  release();
  await tasks.settled();
  assert.equal(slowEnded, true);
  assert.throws(() => tasks.throwIfFailed(), /worker gone/);
  assert.deepEqual(tasks.results(), ['slow']);
});
