import { test } from 'node:test';
import fc from 'fast-check';
import { fuzzParameters } from '../../fuzz/fuzz-settings.ts';
import {
  arbitraryTextParsesSafely,
  damagedNarinfoParsesSafely,
  narinfoRoundTrips,
} from '../../fuzz/narinfo-properties.ts';

test('narinfo parser: every narinfo Narwhal writes reads back unchanged', () => {
  fc.assert(narinfoRoundTrips, fuzzParameters(500));
});

test('narinfo parser: damaged narinfos are refused with bad-narinfo or read consistently', () => {
  fc.assert(damagedNarinfoParsesSafely, fuzzParameters(2000));
});

test('narinfo parser: arbitrary text is refused with bad-narinfo or read consistently', () => {
  fc.assert(arbitraryTextParsesSafely, fuzzParameters(1000));
});
