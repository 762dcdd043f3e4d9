import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Progress, type ProgressStream } from '../../../src/runtime/progress.ts';

function fakeStream(isTTY: boolean, columns = 80): ProgressStream & { written: string } {
  return {
    isTTY,
    columns,
    written: '',
    write(text: string) {
      this.written += text;
      return true;
    },
  };
}

test('on a terminal: a bar redrawn in place with a carriage return, ended by a newline', () => {
  const tty = fakeStream(true);
  const progress = new Progress('verify chunks', { stream: tty });
  assert.equal(progress.enabled, true);
  progress.update({ done: 0, total: 200 });
  for (let done = 1; done <= 200; done++) progress.update({ done, total: 200, detail: 'all well' });
  progress.finish();
  assert.match(tty.written, /^\rverify chunks \[\.{24}\] {3}0% 0\/200/);
  assert.ok(tty.written.endsWith('\n'));
  assert.ok(!tty.written.slice(0, -1).includes('\n'), 'one line, redrawn');
  const last = tty.written.slice(tty.written.lastIndexOf('\r') + 1).trimEnd();
  assert.equal(last, `verify chunks [${'#'.repeat(24)}] 100% 200/200 all well`);
});

test('without a total: the count; a line never wider than the terminal; a shorter one blanks the rest', () => {
  const tty = fakeStream(true, 30);
  const progress = new Progress('gc', { stream: tty });
  progress.update({ done: 5, detail: 'chunks deleted, and a long explanation after' });
  progress.finish();
  const drawn = tty.written.split('\r').filter((s) => s !== '');
  for (const line of drawn) assert.ok(line.replace('\n', '').length <= 29, line);
  assert.match(drawn[0], /^gc 5 chunks deleted/);

  const wide = fakeStream(true);
  const shrinking = new Progress('x', { stream: wide });
  shrinking.update({ done: 1, detail: 'a long detail' });
  shrinking.update({ done: 2 });
  shrinking.finish();
  assert.ok(wide.written.endsWith(`\rx 2${' '.repeat('x 1 a long detail'.length - 'x 2'.length)}\n`), wide.written);
});

test('a terminal that reports 0 columns gets a line of usual width', () => {
  const tty = fakeStream(true, 0);
  const progress = new Progress('verify NARs', { stream: tty });
  progress.update({ done: 1, total: 1 });
  progress.finish();
  assert.match(tty.written, /100% 1\/1\n$/);
});

test('nothing at all when the stream is not a terminal, or the command prints JSON', () => {
  const pipe = fakeStream(false);
  const piped = new Progress('import', { stream: pipe });
  assert.equal(piped.enabled, false);
  piped.update({ done: 1, total: 2 });
  piped.finish();
  assert.equal(pipe.written, '');

  const tty = fakeStream(true);
  const json = new Progress('import', { stream: tty, quiet: true });
  json.update({ done: 1, total: 2 });
  json.finish();
  assert.equal(tty.written, '');
});
