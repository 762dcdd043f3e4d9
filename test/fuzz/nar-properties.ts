/**
 * Properties of the streaming NAR validator, judged against the recursive reference reader in
 * nar-reference.ts: both must agree on every input (accept or reject, and what an accepted NAR
 * holds), whatever pieces the stream arrives in, and the validator may fail only with 'bad-nar'.
 */
import fc from 'fast-check';
import { NarValidator } from '../../src/nix/nar-validator.ts';
import { NarTokenWriter, writeNar, type NarTree } from '../../src/nix/nar-writer.ts';
import { isNarwhalError } from '../../src/errors.ts';
import { referenceParse, type NarCounts } from './nar-reference.ts';

/** A node as a sloppy writer might produce it: any names in any order, odd markers, odd types. */
type SloppyNode =
  | { kind: 'regular'; executable: 'no' | 'yes' | 'with-value'; contents: Uint8Array }
  | { kind: 'symlink'; target: Uint8Array }
  | { kind: 'directory'; entries: [Uint8Array, SloppyNode][] }
  | { kind: 'other'; type: string };

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

const nameArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  // Few distinct names, so that directories often repeat one.
  { weight: 8, arbitrary: fc.constantFrom('a', 'b', 'ab', 'é').map(bytes) },
  { weight: 2, arbitrary: fc.constantFrom('lib', 'Z', '~', 'a b', 'b0').map(bytes) },
  { weight: 2, arbitrary: fc.constantFrom('', '.', '..', '/', 'a/b', 'a\0', '...', '.a').map(bytes) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 5 }) },
);

const contentsArb = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.nat({ max: 5000 }).map((n) => new Uint8Array(n).fill(n & 0xff)) },
);

const sloppyArb = fc.letrec<{ node: SloppyNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('regular' as const),
        executable: fc.constantFrom('no' as const, 'no' as const, 'yes' as const, 'with-value' as const),
        contents: contentsArb,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('symlink' as const),
        target: fc.oneof(
          { weight: 5, arbitrary: fc.constantFrom('a', '../lib', '/nix/store/x').map(bytes) },
          { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }) },
        ),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('directory' as const),
        entries: fc
          .tuple(fc.array(fc.tuple(nameArb, tie('node')), { maxLength: 4 }), fc.integer({ min: 0, max: 3 }))
          .map(([entries, tidy]) =>
            // Most directories are put in canonical order, so that deeper rules get exercised too.
            tidy === 0 ? entries : canonicalOrder(entries, tidy > 1),
          ),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('other' as const),
        type: fc.constantFrom('fifo', 'Regular', 'directory ', ''),
      }),
    },
  ),
})).node;

/** Sorted by raw bytes, as Nix orders entries; duplicates kept unless `unique`. */
function canonicalOrder(entries: [Uint8Array, SloppyNode][], unique: boolean): [Uint8Array, SloppyNode][] {
  const sorted = [...entries].sort((a, b) => Buffer.compare(a[0], b[0]));
  return unique ? sorted.filter((entry, i) => i === 0 || Buffer.compare(sorted[i - 1][0], entry[0]) !== 0) : sorted;
}

/** Writes the node's tokens; the token numbered `badPad` (if any) gets non-zero padding. */
function writeSloppy(w: NarTokenWriter, node: SloppyNode, badPad = -1): void {
  let count = 0;
  const str = (token: string | Uint8Array): void => {
    w.str(token, count++ === badPad ? 0x20 : 0);
  };
  const write = (n: SloppyNode): void => {
    str('(');
    str('type');
    switch (n.kind) {
      case 'regular':
        str('regular');
        if (n.executable === 'yes') [str('executable'), str('')];
        if (n.executable === 'with-value') [str('executable'), str('x')];
        str('contents');
        str(n.contents);
        break;
      case 'symlink':
        [str('symlink'), str('target'), str(n.target)];
        break;
      case 'directory':
        str('directory');
        for (const [name, child] of n.entries) {
          [str('entry'), str('('), str('name'), str(name), str('node')];
          write(child);
          str(')');
        }
        break;
      case 'other':
        str(n.type);
        break;
    }
    str(')');
  };
  write(node);
}

/** Byte-level damage: flips, cuts, insertions, deletions, overwritten length words. */
type Mutation =
  | { op: 'flip'; at: number; mask: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; data: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  | { op: 'append'; data: Uint8Array }
  | { op: 'word'; at: number; value: bigint };

/** Positions spread evenly over the input (fast-check's own numbers favour the ends). */
const fraction = fc.noBias(fc.integer({ min: 0, max: 9999 })).map((n) => n / 10_000);
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('flip' as const), at: fraction, mask: fc.integer({ min: 1, max: 255 }) }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: fraction }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('insert' as const),
      at: fraction,
      data: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('delete' as const), at: fraction, count: fc.integer({ min: 1, max: 16 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('append' as const), data: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('word' as const),
      at: fraction,
      value: fc.oneof(
        { weight: 4, arbitrary: fc.bigInt({ min: 0n, max: 64n }) },
        { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
        { weight: 1, arbitrary: fc.constantFrom(2n ** 53n, 2n ** 63n, 2n ** 64n - 1n) },
      ),
    }),
  },
);

/** Where damage lands: mostly past the 24-byte magic, which would otherwise take most of it. */
const MAGIC_SIZE = 24;
function mutate(input: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = Buffer.from(input);
  for (const m of mutations) {
    const at =
      m.op === 'append'
        ? b.length
        : b.length > MAGIC_SIZE && m.at < 0.9
          ? MAGIC_SIZE + Math.floor((m.at / 0.9) * (b.length - MAGIC_SIZE + 1))
          : Math.floor(m.at * (b.length + 1));
    switch (m.op) {
      case 'flip':
        if (b.length > 0) b[Math.min(at, b.length - 1)] ^= m.mask;
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'insert':
      case 'append':
        b = Buffer.concat([b.subarray(0, at), m.data, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
        break;
      case 'word': {
        const aligned = at - (at % 8);
        if (aligned + 8 <= b.length) b.writeBigUInt64LE(m.value, aligned);
        break;
      }
    }
  }
  return b;
}

/** The validator's verdict with the input cut into pieces of the given sizes (cycled). */
export function validatorVerdict(nar: Uint8Array, pieceSizes: number[]): NarCounts | undefined {
  const v = new NarValidator();
  try {
    let off = 0;
    let i = 0;
    while (off < nar.length) {
      const n = pieceSizes.length === 0 ? nar.length : Math.max(1, pieceSizes[i++ % pieceSizes.length]);
      v.push(nar.subarray(off, Math.min(nar.length, off + n)));
      off += n;
    }
    v.end();
    return { files: v.files, directories: v.directories, symlinks: v.symlinks, contentBytes: v.contentBytes };
  } catch (err) {
    if (isNarwhalError(err, 'bad-nar')) return undefined;
    throw err;
  }
}

function sameVerdict(a: NarCounts | undefined, b: NarCounts | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.files === b.files &&
    a.directories === b.directories &&
    a.symlinks === b.symlinks &&
    a.contentBytes === b.contentBytes
  );
}

const piecesArb = fc.oneof(
  fc.constant([] as number[]),
  fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
);

/** NARs written sloppily, then damaged at the byte level. */
const mutationsArb = fc.oneof(fc.constant([] as Mutation[]), fc.array(mutationArb, { minLength: 1, maxLength: 3 }));

const badPadArb = fc.oneof({ weight: 4, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat({ max: 60 }) });

export const damagedNarArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(sloppyArb, badPadArb, mutationsArb)
  .map(([root, badPad, mutations]) => {
    const w = new NarTokenWriter().str('nix-archive-1');
    writeSloppy(w, root, badPad);
    return mutate(w.finish(), mutations);
  });

/** The validator agrees with the reference on sloppy and damaged NARs, in any pieces. */
export const validatorMatchesReference = fc.property(damagedNarArb, piecesArb, (nar, pieceSizes) => {
  const expected = referenceParse(nar);
  return sameVerdict(validatorVerdict(nar, []), expected) && sameVerdict(validatorVerdict(nar, pieceSizes), expected);
});

/** Arbitrary bytes, with or without a valid magic in front. */
export const validatorSurvivesArbitraryBytes = fc.property(
  fc.boolean(),
  fc.uint8Array({ maxLength: 300 }),
  piecesArb,
  (withMagic, tail, pieceSizes) => {
    const nar = withMagic ? Buffer.concat([new NarTokenWriter().str('nix-archive-1').finish(), tail]) : tail;
    const expected = referenceParse(nar);
    return sameVerdict(validatorVerdict(nar, []), expected) && sameVerdict(validatorVerdict(nar, pieceSizes), expected);
  },
);

const validName = fc.oneof(
  fc.constantFrom('bin', 'lib', 'a', 'B', 'é', '.hidden', '...', 'x y'),
  fc
    .string({ minLength: 1, maxLength: 8 })
    .filter((s) => s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\0')),
);

const treeArb = fc.letrec<{ tree: NarTree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ type: fc.constant('regular' as const), contents: contentsArb, executable: fc.boolean() }),
    fc.record({
      type: fc.constant('symlink' as const),
      target: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes('\0')),
    }),
    fc.record({
      type: fc.constant('directory' as const),
      entries: fc.dictionary(validName, tie('tree'), { maxKeys: 5 }),
    }),
  ),
})).tree;

/** Every canonical NAR (what `nix-store --dump` writes) is accepted, in any pieces, with the right counts. */
export const canonicalNarsAccepted = fc.property(treeArb, piecesArb, (tree, pieceSizes) => {
  const nar = writeNar(tree);
  const expected = referenceParse(nar);
  return (
    expected !== undefined &&
    sameVerdict(validatorVerdict(nar, []), expected) &&
    sameVerdict(validatorVerdict(nar, pieceSizes), expected)
  );
});
