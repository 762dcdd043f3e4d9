import { test } from 'node:test';
import fc from 'fast-check';
import { fuzzParameters } from '../../fuzz/fuzz-settings.ts';
import {
  canonicalNarsAccepted,
  validatorMatchesReference,
  validatorSurvivesArbitraryBytes,
} from '../../fuzz/nar-properties.ts';

test('NAR validator: canonical NARs are accepted in any pieces', () => {
  fc.assert(canonicalNarsAccepted, fuzzParameters(200));
});

test('NAR validator: sloppy and damaged NARs get the reference reader verdict, in any pieces', () => {
  fc.assert(validatorMatchesReference, fuzzParameters(4000));
});

test('NAR validator: arbitrary bytes get the reference reader verdict', () => {
  fc.assert(validatorSurvivesArbitraryBytes, fuzzParameters(500));
});
