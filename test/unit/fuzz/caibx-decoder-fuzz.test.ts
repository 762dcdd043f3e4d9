import { test } from 'node:test';
import fc from 'fast-check';
import { fuzzParameters } from '../../fuzz/fuzz-settings.ts';
import { arbitraryBytesDecodeSafely, caibxRoundTrips, damagedCaibxDecodesSafely } from '../../fuzz/caibx-properties.ts';

test('caibx codec: every valid index round-trips', () => {
  fc.assert(caibxRoundTrips, fuzzParameters(500));
});

test('caibx decoder: damaged indexes are refused with bad-index or read exactly', () => {
  fc.assert(damagedCaibxDecodesSafely, fuzzParameters(2000));
});

test('caibx decoder: arbitrary bytes are refused with bad-index or read exactly', () => {
  fc.assert(arbitraryBytesDecodeSafely, fuzzParameters(1000));
});
