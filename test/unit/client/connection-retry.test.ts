/**
 * A push request whose connection the server closes before answering (as an idle keep-alive
 * connection is closed just as a request goes out on it) is sent again and answered; a request
 * answered with an error is not sent again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { asServerFailure, fetchAgainIfLost, isConnectionLost } from '../../../src/client/connection-retry.ts';
import { NarwhalError } from '../../../src/errors.ts';

/** An HTTP server that drops the connection of its first `drops` requests unanswered, then answers each with `status`. */
async function serverDropping(drops: number, status = 200) {
  let seen = 0;
  const server = createServer((req, res) => {
    seen++;
    req.resume();
    if (seen <= drops) req.socket.destroy();
    else res.writeHead(status).end(`answer ${seen}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/missing-chunks`;
  return { url, seen: () => seen, close: () => new Promise((resolve) => server.close(resolve)) };
}

test('a request whose connection is lost before an answer is sent again, with its body', async () => {
  const server = await serverDropping(1);
  try {
    await assert.rejects(fetch(server.url, { method: 'POST', body: 'ids' }), isConnectionLost);
    const res = await fetchAgainIfLost(server.url, { method: 'POST', body: Buffer.from('ids') }, 'asking');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'answer 2');
  } finally {
    await server.close();
  }
});

test('a connection lost every time fails after two more tries; an error answer is not sent again', async () => {
  const dropping = await serverDropping(10);
  try {
    await assert.rejects(fetchAgainIfLost(dropping.url, { method: 'POST', body: 'ids' }, 'asking'), isConnectionLost);
    assert.equal(dropping.seen(), 3);
  } finally {
    await dropping.close();
  }
  const failing = await serverDropping(0, 500);
  try {
    assert.equal((await fetchAgainIfLost(failing.url, { method: 'POST', body: 'ids' }, 'asking')).status, 500);
    assert.equal(failing.seen(), 1);
  } finally {
    await failing.close();
  }
});

test('a lost connection, named by asServerFailure, is one line saying what failed and is still sent again', async () => {
  const dropping = await serverDropping(10);
  try {
    const err = await fetchAgainIfLost(
      dropping.url,
      { method: 'POST', body: 'ids' },
      'asking which chunks to send',
    ).catch((e: unknown) => e);
    assert.ok(err instanceof NarwhalError);
    assert.equal(err.code, 'unavailable');
    assert.match(err.message, /^asking which chunks to send: the connection to the server failed \(\w+\): .+$/);
    assert.ok(isConnectionLost(err), 'a NAR upload that failed so is sent again');
    const other = new Error('not a fetch failure');
    assert.equal(asServerFailure(other, 'x'), other);
  } finally {
    await dropping.close();
  }
});
