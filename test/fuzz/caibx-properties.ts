/**
 * Properties of the casync index codec: every valid index survives encode/decode unchanged, and
 * decodeCaibx accepts only canonical encodings: on any bytes it either fails with 'bad-index' or
 * returns an index that encodes back to exactly those bytes (nothing ignored, nothing invented).
 */
import fc from 'fast-check';
import { CHUNK_SIZE_LIMIT_MAX } from '../../src/chunking/chunker.ts';
import {
  CASYNC_BLOB_FLAGS_SHA256,
  CASYNC_BLOB_FLAGS_SHA512_256,
  decodeCaibx,
  encodeCaibx,
  type CaibxIndex,
} from '../../src/storage/caibx.ts';
import { isNarwhalError } from '../../src/errors.ts';

const sizesArb = fc.oneof(
  fc.constant([16 * 1024, 64 * 1024, 256 * 1024]),
  fc
    .array(fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: CHUNK_SIZE_LIMIT_MAX })), {
      minLength: 3,
      maxLength: 3,
    })
    .map((sizes) => sizes.sort((a, b) => a - b)),
);

export const caibxArb: fc.Arbitrary<CaibxIndex> = sizesArb.chain(([min, avg, max]) =>
  fc.record({
    featureFlags: fc.oneof(
      fc.constantFrom(CASYNC_BLOB_FLAGS_SHA256, CASYNC_BLOB_FLAGS_SHA512_256, 0n),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    ),
    chunkSizeMin: fc.constant(min),
    chunkSizeAvg: fc.constant(avg),
    chunkSizeMax: fc.constant(max),
    chunks: fc
      .array(fc.tuple(fc.integer({ min: 1, max }), fc.uint8Array({ minLength: 32, maxLength: 32 })), { maxLength: 12 })
      .map((items) => {
        let end = 0;
        return items.map(([size, id]) => ({ end: (end += size), id }));
      }),
  }),
);

/** encode then decode gives the index back, and its bytes back. */
export const caibxRoundTrips = fc.property(caibxArb, (index) => {
  const bytes = encodeCaibx(index);
  const decoded = decodeCaibx(bytes);
  return (
    decoded.featureFlags === index.featureFlags &&
    decoded.chunkSizeMin === index.chunkSizeMin &&
    decoded.chunkSizeAvg === index.chunkSizeAvg &&
    decoded.chunkSizeMax === index.chunkSizeMax &&
    decoded.chunks.length === index.chunks.length &&
    decoded.chunks.every((c, i) => c.end === index.chunks[i].end && Buffer.from(c.id).equals(index.chunks[i].id)) &&
    Buffer.from(encodeCaibx(decoded)).equals(bytes)
  );
});

/** decodeCaibx's contract on any bytes. */
export function decodesCanonicallyOrRefuses(bytes: Uint8Array): boolean {
  let index: CaibxIndex;
  try {
    index = decodeCaibx(bytes);
  } catch (err) {
    if (isNarwhalError(err, 'bad-index')) return true;
    throw err;
  }
  return Buffer.from(encodeCaibx(index)).equals(bytes);
}

type Damage =
  | { op: 'flip'; at: number; mask: number }
  | { op: 'word'; at: number; value: bigint }
  | { op: 'resize'; items: number }
  | { op: 'cut'; at: number };

const fraction = fc.noBias(fc.integer({ min: 0, max: 9999 })).map((n) => n / 10_000);
const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fraction, mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({
    op: fc.constant('word' as const),
    at: fraction,
    value: fc.oneof(
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.bigInt({ min: 0n, max: 300n }),
      fc.constantFrom(0n, 48n, 2n ** 53n, 2n ** 64n - 1n),
    ),
  }),
  fc.record({ op: fc.constant('resize' as const), items: fc.integer({ min: -2, max: 2 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fraction }),
);

function damage(input: Uint8Array, damages: Damage[]): Uint8Array {
  let b = Buffer.from(input);
  for (const d of damages) {
    switch (d.op) {
      case 'flip':
        if (b.length > 0) b[Math.floor(d.at * b.length)] ^= d.mask;
        break;
      case 'word': {
        // Aligned, as every field is: lands on headers, offsets, IDs and the tail alike.
        const at = Math.floor((d.at * b.length) / 8) * 8;
        if (at + 8 <= b.length) b.writeBigUInt64LE(d.value, at);
        break;
      }
      case 'resize':
        b =
          d.items >= 0
            ? Buffer.concat([b, Buffer.alloc(40 * d.items)])
            : b.subarray(0, Math.max(0, b.length + 40 * d.items));
        break;
      case 'cut':
        b = b.subarray(0, Math.floor(d.at * b.length));
        break;
    }
  }
  return b;
}

/** Damaged indexes: refused, or (when the damage kept them valid) read exactly. */
export const damagedCaibxDecodesSafely = fc.property(
  caibxArb,
  fc.array(damageArb, { minLength: 1, maxLength: 3 }),
  (index, damages) => decodesCanonicallyOrRefuses(damage(encodeCaibx(index), damages)),
);

/** Arbitrary bytes of any length, and of index-like lengths. */
export const arbitraryBytesDecodeSafely = fc.property(
  fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.integer({ min: 0, max: 5 }).chain((n) => fc.uint8Array({ minLength: 104 + 40 * n, maxLength: 104 + 40 * n })),
  ),
  decodesCanonicallyOrRefuses,
);
