import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLogLine, parseLogFormat } from '../../../src/runtime/log-lines.ts';
import { isNarwhalError } from '../../../src/errors.ts';

const AT = new Date('2026-12-07T12:00:00.000Z');
const REQUEST = {
  level: 'info' as const,
  msg: 'GET /main/nix-cache-info 200',
  requestId: 'trace-1',
  method: 'GET',
  route: 'nix-cache-info',
  path: '/main/nix-cache-info',
  status: 200,
  durationMs: 1.25,
  bytes: 232,
};

test('json: one object per line, time first, only the fields given', () => {
  const line = formatLogLine('json', REQUEST, AT);
  assert.ok(!line.includes('\n'));
  assert.deepEqual(JSON.parse(line), { time: '2026-12-07T12:00:00.000Z', ...REQUEST });
  assert.ok(line.startsWith('{"time":'));
  assert.deepEqual(JSON.parse(formatLogLine('json', { level: 'error', msg: 'a "quoted"\nline' }, AT)), {
    time: '2026-12-07T12:00:00.000Z',
    level: 'error',
    msg: 'a "quoted"\nline',
  });
});

test('text: the message, then time, bytes and request id', () => {
  assert.equal(formatLogLine('text', REQUEST, AT), 'GET /main/nix-cache-info 200 1.3ms 232B id=trace-1');
  assert.equal(formatLogLine('text', { level: 'info', msg: 'serving' }, AT), 'serving');
});

test('--log-format takes text or json only', () => {
  assert.equal(parseLogFormat('json'), 'json');
  assert.equal(parseLogFormat('text'), 'text');
  assert.throws(
    () => parseLogFormat('xml'),
    (err: unknown) => isNarwhalError(err, 'bad-request') && /text or json/.test(err.message),
  );
});
