import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { encodeNixBase32 } from '../../src/nix/base32.ts';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';
import { serializeNarinfo } from '../../src/nix/narinfo.ts';
import { writeNar, type NarTree } from '../../src/nix/nar-writer.ts';
import { seededRandom as seededRandomFromNumber } from '../helpers/seeded-random.ts';

/** A store path as a pushing client holds it: the NAR, and the narinfo it uploads. */
export interface SyntheticPath {
  storePath: string;
  hashPart: string;
  /** References as store path base names. */
  references: string[];
  nar: Uint8Array;
  /** `sha256:<nix32>` */
  narHash: string;
  /** The plain upload name: `nar/<nix32 NarHash>.nar`. */
  uploadName: string;
  /** The narinfo uploaded for it (Compression none, URL = uploadName). */
  narinfo: string;
}

export interface PathSpec {
  /** Makes the hash part (with `name`) and the content variation unique to one run. */
  seed: string;
  name: string;
  references?: string[];
  selfReference?: boolean;
  /**
   * When set, the NAR depends only on this number: paths with the same value have byte-identical
   * NARs, so concurrent clients upload the same NAR under different store paths.
   */
  sharedContent?: number;
  /** Bytes of binary content, default 100 KiB to 1 MiB chosen by the seed. */
  binarySize?: number;
}

const SOURCE_BYTES = 24 * 1024 * 1024;

/**
 * Real machine code to build NARs from: the start of the Node binary running the tests (always
 * present, ELF like what a cache holds), read once.
 */
export function loadBinarySource(bytes = SOURCE_BYTES): Uint8Array {
  const out = new Uint8Array(bytes);
  const fd = openSync(process.execPath, 'r');
  try {
    let filled = 0;
    while (filled < bytes) {
      const n = readSync(fd, out, filled, bytes - filled, filled);
      if (n === 0) break;
      filled += n;
    }
    return out.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}

/** Deterministic pseudo-random numbers in [0, 1) from a string seed. */
export function seededRandom(seed: string): () => number {
  return seededRandomFromNumber(createHash('sha256').update(seed).digest().readUInt32LE(0));
}

export function hashPartFor(seed: string, name: string): string {
  return encodeNixBase32(createHash('sha256').update(`${seed}\0${name}`).digest().subarray(0, 20));
}

/**
 * A store path whose NAR holds a slice of real machine code taken at one of a few offsets (so
 * paths share most chunks) with a few bytes changed per path (so each also has chunks of its own),
 * a text file and a symlink.
 */
export function syntheticPath(source: Uint8Array, spec: PathSpec): SyntheticPath {
  const hashPart = hashPartFor(spec.seed, spec.name);
  const baseName = `${hashPart}-${spec.name}`;
  const storePath = `/nix/store/${baseName}`;
  const contentSeed = spec.sharedContent === undefined ? `${spec.seed}/${spec.name}` : `shared/${spec.sharedContent}`;
  const random = seededRandom(contentSeed);
  const size = Math.min(spec.binarySize ?? Math.floor(100 * 1024 + random() * 900 * 1024), source.length);
  const slots = Math.max(1, Math.floor((source.length - size) / (1024 * 1024)));
  const offset = Math.floor(random() * Math.min(slots, 8)) * 1024 * 1024;
  const binary = source.slice(offset, offset + size);
  const edits = Math.floor(random() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(random() * Math.max(1, binary.length - 16));
    for (let k = 0; k < 16 && at + k < binary.length; k++) binary[at + k] = Math.floor(random() * 256);
  }
  const doc =
    spec.sharedContent === undefined
      ? `${storePath}\nmade for the crash test, ${spec.name}\n`
      : `shared content ${spec.sharedContent}\n`;
  const tree: NarTree = {
    type: 'directory',
    entries: {
      bin: { type: 'directory', entries: { tool: { type: 'regular', executable: true, contents: binary } } },
      share: {
        type: 'directory',
        entries: { 'doc.txt': { type: 'regular', contents: new TextEncoder().encode(doc) } },
      },
      lib: { type: 'symlink', target: 'bin' },
    },
  };
  const nar = writeNar(tree);
  const narHash = formatSha256Nix32(createHash('sha256').update(nar).digest());
  const references = [...(spec.references ?? []), ...(spec.selfReference ? [baseName] : [])];
  const uploadName = `nar/${narHash.slice('sha256:'.length)}.nar`;
  const narinfo = serializeNarinfo({
    storePath,
    url: uploadName,
    compression: 'none',
    fileHash: narHash,
    fileSize: nar.length,
    narHash,
    narSize: nar.length,
    references,
    system: 'x86_64-linux',
    sigs: [],
  });
  return { storePath, hashPart, references, nar, narHash, uploadName, narinfo };
}

export function baseNameOf(path: SyntheticPath): string {
  return path.storePath.slice('/nix/store/'.length);
}
