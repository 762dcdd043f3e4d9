import assert from 'node:assert/strict';
import type { PullDecoder } from '../../src/compression/pull-decoder-stream.ts';
import { isNarwhalError } from '../../src/errors.ts';
import { seededRandom } from './seeded-random.ts';

/**
 * Feeds the decoder random pieces (up to `maxPiece` bytes, 30% of them at most 16), reading
 * whenever it asks for more, as a stream would; every output piece must be non-empty and at most
 * `maxOutput` bytes.
 */
export function decodeInRandomPieces(
  decoder: PullDecoder,
  input: Uint8Array,
  options: { seed: number; maxPiece: number; maxOutput: number },
): Buffer {
  const random = seededRandom(options.seed);
  const output: Uint8Array[] = [];
  const drain = (): void => {
    for (let piece = decoder.read(); piece !== null; piece = decoder.read()) {
      assert.ok(piece.length > 0 && piece.length <= options.maxOutput);
      output.push(piece);
    }
  };
  for (let i = 0; i < input.length; ) {
    const n = 1 + Math.floor(random() * (random() < 0.3 ? Math.min(16, options.maxPiece) : options.maxPiece));
    decoder.write(input.subarray(i, i + n));
    drain();
    i += n;
  }
  decoder.end();
  drain();
  return Buffer.concat(output);
}

/** `decode` must fail with 'bad-compression', "corrupt FORMAT stream: ...", and `detail` in the message. */
export function assertCorruptStream(
  decode: () => unknown,
  format: string,
  detail: string | RegExp,
  name = String(detail),
): void {
  assert.throws(
    decode,
    (error: unknown) => {
      assert.ok(isNarwhalError(error, 'bad-compression'), `${name}: ${String(error)}`);
      assert.ok(error.message.startsWith(`corrupt ${format} stream: `), error.message);
      if (typeof detail === 'string') assert.ok(error.message.includes(detail), `${name}: ${error.message}`);
      else assert.match(error.message, detail, name);
      return true;
    },
    name,
  );
}
