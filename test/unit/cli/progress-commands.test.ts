/**
 * The commands draw their progress line on a terminal only: `narwhal verify` and `gc` run under
 * a pseudo-terminal (util-linux `script`) redraw a line with carriage returns; piped, or with
 * --json, they write none.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { closeNarwhal } from '../../../src/context/narwhal.ts';
import { ingestNar } from '../../../src/ingest/ingest-nar.ts';
import { bodyOf, realisticNar, tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';

const REPO = resolve(import.meta.dirname, '../../..');
const NARWHAL = join(REPO, 'bin/narwhal.js');
const run = promisify(execFile);
const shellQuote = (arg: string): string => `'${arg.replace(/'/g, "'\\''")}'`;

/** The command under a pseudo-terminal: what it wrote, stdout and stderr together. */
async function onTerminal(args: string[]): Promise<string> {
  const command = [process.execPath, NARWHAL, ...args].map(shellQuote).join(' ');
  const { stdout } = await run('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, COLUMNS: '120' } });
  return stdout;
}

let t: TempNarwhal;

before(async () => {
  t = await tempNarwhal();
  await ingestNar(t.nw, bodyOf(await realisticNar('progress')), { compression: 'none' });
  // The commands open the stores themselves.
  await closeNarwhal(t.nw);
});

after(() => rm(t.dir, { recursive: true, force: true }));

test('verify and gc draw a progress line on a terminal', async () => {
  const verify = await onTerminal(['verify', '--data-dir', t.dir]);
  assert.match(verify, /\rverify chunks \[#+\] 100% (\d+)\/\1/);
  assert.match(verify, /\rverify NARs \[#+\] 100% 1\/1/);
  const gc = await onTerminal(['gc', '--data-dir', t.dir, '--grace', '1h']);
  assert.match(gc, /\rgc \d+ deleted: 0 paths/);
});

test('piped, or with --json, no progress line', async () => {
  const piped = await run(process.execPath, [NARWHAL, 'verify', '--data-dir', t.dir]);
  assert.doesNotMatch(piped.stderr + piped.stdout, /\r/);
  assert.match(piped.stdout, /nars {4}1 ok/);
  const json = await onTerminal(['verify', '--data-dir', t.dir, '--json']);
  assert.doesNotMatch(json.replace(/\r\n/g, '\n'), /\r/);
  assert.equal(JSON.parse(json).nars.ok, 1);
});
