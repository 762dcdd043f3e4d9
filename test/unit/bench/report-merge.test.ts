import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BEGIN_MARK, END_MARK, mergeReport } from '../../../bench/report.ts';

const generated = '# Narwhal benchmarks\n\n## Targets\n\nnew figures\n';

test('a new report file holds the generated part between the markers', () => {
  assert.equal(mergeReport(undefined, generated), `${BEGIN_MARK}\n${generated}${END_MARK}\n`);
  assert.equal(mergeReport(undefined, 'no newline'), `${BEGIN_MARK}\nno newline\n${END_MARK}\n`);
});

test('only the part between the markers is replaced; hand-written sections stay as they were', () => {
  const before = 'Hand-written preface.\n\n';
  const after = '\n## Measured outside npm run bench\n\nA figure measured by hand: 42 MB/s.\n';
  const existing = `${before}${BEGIN_MARK}\n# Narwhal benchmarks\n\nold figures\n${END_MARK}\n${after}`;
  const merged = mergeReport(existing, generated);
  assert.equal(merged, `${before}${BEGIN_MARK}\n${generated}${END_MARK}\n${after}`);
  assert.ok(!merged.includes('old figures'));
  // Merging again with the same run changes nothing.
  assert.equal(mergeReport(merged, generated), merged);
});

test('a report from before the markers is replaced whole, as it was generated whole', () => {
  assert.equal(mergeReport('# Narwhal benchmarks\n\nold\n', generated), `${BEGIN_MARK}\n${generated}${END_MARK}\n`);
});

test('markers missing one half, doubled or out of order are refused', () => {
  for (const existing of [
    `${BEGIN_MARK}\nold\n`,
    `old\n${END_MARK}\n`,
    `${END_MARK}\nold\n${BEGIN_MARK}\n`,
    `${BEGIN_MARK}\na\n${END_MARK}\n${BEGIN_MARK}\nb\n${END_MARK}\n`,
  ]) {
    assert.throws(() => mergeReport(existing, generated), /expected one <!-- bench:begin -->/);
  }
});
