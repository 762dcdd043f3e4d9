import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { applyConfigFile } from '../../../src/cli/config-file.ts';
import { argsFromEnv, envVarOf, SERVE_OPTIONS } from '../../../src/cli/serve-options.ts';
import { isNarwhalError } from '../../../src/errors.ts';

/** What serve would run with, given its command line, environment and config file. */
function serveValues(args: string[], env: NodeJS.ProcessEnv) {
  return parseArgs({
    args: applyConfigFile('serve', args, env),
    options: SERVE_OPTIONS,
    strict: true,
    allowNegative: true,
  }).values;
}

test('every serve option has a NARWHAL_* variable named after it', () => {
  assert.equal(envVarOf('data-dir'), 'NARWHAL_DATA_DIR');
  assert.equal(envVarOf('metrics-listen'), 'NARWHAL_METRICS_LISTEN');
  for (const name of Object.keys(SERVE_OPTIONS)) {
    const option = SERVE_OPTIONS[name as keyof typeof SERVE_OPTIONS];
    const value = option.type === 'boolean' ? '1' : 'x:1';
    const values = serveValues([], { [envVarOf(name)]: value }) as Record<string, unknown>;
    assert.equal(values[name], option.type === 'boolean' ? true : value, name);
  }
});

test('precedence: flag over variable over config file over default', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-serve-options-'));
  try {
    const file = join(dir, 'narwhal.json');
    await writeFile(file, JSON.stringify({ listen: '0.0.0.0:1', 'gc-grace': '2h', 'data-dir': '/file', deltas: true }));
    const env = { NARWHAL_LISTEN: '0.0.0.0:2', NARWHAL_DATA_DIR: '/env', NARWHAL_DELTAS: 'false' };
    const values = serveValues(['--config', file, '--listen', '0.0.0.0:3'], env);
    assert.equal(values.listen, '0.0.0.0:3', 'the flag wins');
    assert.equal(values['data-dir'], '/env', 'the variable beats the file');
    assert.equal(values.deltas, false, 'a variable turns off what the file turned on');
    assert.equal(values['gc-grace'], '2h', 'the file beats the default');
    assert.equal(values['gc-interval'], '6h', 'the default');
    // NARWHAL_CONFIG names the file when --config does not.
    assert.equal(serveValues([], { NARWHAL_CONFIG: file })['gc-grace'], '2h');
    assert.equal(serveValues(['--deltas'], { NARWHAL_DELTAS: '0' }).deltas, true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a boolean variable that is not a yes or a no is a clear error; other commands ignore the variables', () => {
  assert.deepEqual(argsFromEnv({ NARWHAL_LOG_REQUESTS: 'yes', NARWHAL_DELTAS: '' }), ['--log-requests', '--no-deltas']);
  assert.throws(
    () => argsFromEnv({ NARWHAL_DELTAS: 'maybe' }),
    (err: unknown) => isNarwhalError(err, 'bad-request') && /NARWHAL_DELTAS takes 1 or 0/.test(err.message),
  );
  assert.deepEqual(applyConfigFile('gc', ['--grace', '0'], { NARWHAL_DATA_DIR: '/env' }), ['--grace', '0']);
});
