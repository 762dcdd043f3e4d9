/**
 * A second, deliberately simple reading of the canonical NAR rules, to judge the streaming
 * validator against: recursive descent over the whole byte array, no state machine, no limits
 * other than the ones NarValidator documents (names up to 1024 bytes, symlink targets 1..4095
 * bytes without NUL, at most 2048 nested directories). Returns the node counts of an acceptable NAR,
 * undefined for anything else.
 */
import { NAR_MAX_DEPTH, NAR_MAX_NAME_LENGTH, NAR_MAX_TARGET_LENGTH } from '../../src/nix/nar-validator.ts';

export interface NarCounts {
  files: number;
  directories: number;
  symlinks: number;
  contentBytes: number;
}

class Reject extends Error {}

export function referenceParse(bytes: Uint8Array): NarCounts | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const counts: NarCounts = { files: 0, directories: 0, symlinks: 0, contentBytes: 0 };
  let pos = 0;

  const need = (n: number): void => {
    if (n > bytes.length - pos) throw new Reject();
  };
  const readLength = (): number => {
    need(8);
    const n = view.getBigUint64(pos, true);
    pos += 8;
    if (n > BigInt(bytes.length)) throw new Reject();
    return Number(n);
  };
  /** A string token: its bytes, then zero padding to a multiple of 8. */
  const readBytes = (): Uint8Array => {
    const n = readLength();
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    const pad = (8 - (n % 8)) % 8;
    need(pad);
    for (let i = 0; i < pad; i++) if (bytes[pos + i] !== 0) throw new Reject();
    pos += pad;
    return out;
  };
  const readString = (): string => Buffer.from(readBytes()).toString('latin1');
  const expect = (token: string): void => {
    if (readString() !== token) throw new Reject();
  };

  const node = (depth: number): void => {
    expect('(');
    expect('type');
    const type = readString();
    if (type === 'regular') {
      counts.files++;
      let tag = readString();
      if (tag === 'executable') {
        if (readBytes().length !== 0) throw new Reject();
        tag = readString();
      }
      if (tag !== 'contents') throw new Reject();
      counts.contentBytes += readBytes().length;
      expect(')');
    } else if (type === 'symlink') {
      counts.symlinks++;
      expect('target');
      const target = readBytes();
      if (target.length === 0 || target.length > NAR_MAX_TARGET_LENGTH || target.includes(0)) throw new Reject();
      expect(')');
    } else if (type === 'directory') {
      if (depth >= NAR_MAX_DEPTH) throw new Reject();
      counts.directories++;
      let previous: Uint8Array | undefined;
      for (;;) {
        const tag = readString();
        if (tag === ')') break;
        if (tag !== 'entry') throw new Reject();
        expect('(');
        expect('name');
        const name = readBytes();
        const text = Buffer.from(name).toString('latin1');
        if (
          name.length === 0 ||
          name.length > NAR_MAX_NAME_LENGTH ||
          text === '.' ||
          text === '..' ||
          name.includes(0x2f) ||
          name.includes(0)
        ) {
          throw new Reject();
        }
        if (previous !== undefined && Buffer.compare(previous, name) >= 0) throw new Reject();
        previous = name;
        expect('node');
        node(depth + 1);
        expect(')');
      }
    } else {
      throw new Reject();
    }
  };

  try {
    expect('nix-archive-1');
    node(0);
    if (pos !== bytes.length) throw new Reject();
    return counts;
  } catch (err) {
    if (err instanceof Reject) return undefined;
    throw err;
  }
}
