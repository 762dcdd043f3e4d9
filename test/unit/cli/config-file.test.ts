import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { applyConfigFile } from '../../../src/cli/config-file.ts';
import { isNarwhalError } from '../../../src/errors.ts';

async function withConfig(content: string, body: (file: string) => void | Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-config-'));
  try {
    const file = join(dir, 'narwhal.json');
    await writeFile(file, content);
    await body(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const SERVE_OPTIONS = {
  'data-dir': { type: 'string' },
  database: { type: 'string' },
  storage: { type: 'string' },
  listen: { type: 'string' },
  'log-requests': { type: 'boolean' },
} as const;

test('--config: the file supplies options, the command line wins, settings of other commands are left out', async () => {
  const settings = {
    database: 'postgres://u:secret@db/narwhal',
    storage: 's3://b/p?endpoint=http://s3:7480',
    listen: '0.0.0.0:5000',
    'log-requests': true,
  };
  await withConfig(JSON.stringify(settings), (file) => {
    const serve = parseArgs({
      args: applyConfigFile('serve', ['--config', file, '--listen', '127.0.0.1:1'], {}),
      options: SERVE_OPTIONS,
      strict: true,
    }).values;
    assert.deepEqual({ ...serve }, { ...settings, listen: '127.0.0.1:1' });
    const gc = applyConfigFile('gc', [`--config=${file}`, '--grace', '0']);
    assert.deepEqual(
      gc,
      ['--database', settings.database, '--storage', settings.storage, '--grace', '0'],
      "listen is serve's only",
    );
    assert.deepEqual(
      applyConfigFile('cache', ['create', 'team', '--public']),
      ['create', 'team', '--public'],
      'no --config: unchanged',
    );
  });
});

test('--config: a false boolean turns the option off, a missing file or bad content is a clear error', async () => {
  await withConfig('{"log-requests": false, "data-dir": "/srv/narwhal"}', (file) => {
    assert.deepEqual(applyConfigFile('serve', ['--config', file], {}), [
      '--no-log-requests',
      '--data-dir',
      '/srv/narwhal',
    ]);
  });
  const refused = (message: RegExp) => (err: unknown) =>
    isNarwhalError(err, 'bad-request') && message.test(err.message);
  assert.throws(() => applyConfigFile('serve', ['--config']), refused(/needs a file/));
  assert.throws(
    () => applyConfigFile('serve', ['--config', '/nonexistent/narwhal.json']),
    refused(/cannot read the config file/),
  );
  await withConfig('{"databse": "x"}', (file) =>
    assert.throws(() => applyConfigFile('serve', ['--config', file]), refused(/unknown setting "databse"/)),
  );
  await withConfig('["--database", "x"]', (file) =>
    assert.throws(() => applyConfigFile('serve', ['--config', file]), refused(/JSON object/)),
  );
  await withConfig('{"database": {"url": "x"}}', (file) =>
    assert.throws(() => applyConfigFile('serve', ['--config', file]), refused(/string, number or boolean/)),
  );
  await withConfig('{"database": ', (file) =>
    assert.throws(() => applyConfigFile('serve', ['--config', file]), refused(/cannot read/)),
  );
});
