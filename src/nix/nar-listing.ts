import { NarwhalError } from '../errors.ts';
import { NAR_MAX_DEPTH, NAR_MAX_NAME_LENGTH, NAR_MAX_TARGET_LENGTH } from './nar-validator.ts';

/** A NAR read at any offset: each `read` returns exactly the bytes asked for. */
export interface NarSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** One node of a NAR: its path below the root ('' for the root, '/'-separated). */
export type NarEntry =
  | { path: string; type: 'directory' }
  | {
      path: string;
      type: 'regular';
      size: number;
      executable: boolean /** Where its contents start in the NAR. */;
      offset: number;
    }
  | { path: string; type: 'symlink'; target: string };

const decoder = new TextDecoder();

/**
 * Walks a NAR's nodes in order, reading only their headers: file contents are stepped over by
 * their length, so a source that reads by range (serving/nar-cursor.ts) never reads them.
 * `visit` returns false to stop the walk. Names are shown as UTF-8 (invalid bytes replaced).
 */
export async function walkNar(source: NarSource, visit: (entry: NarEntry) => boolean): Promise<void> {
  let pos = 0;
  const bad = (message: string): NarwhalError => new NarwhalError('bad-nar', `invalid NAR at byte ${pos}: ${message}`);
  const u64 = async (): Promise<number> => {
    if (pos + 8 > source.size) throw bad('truncated');
    const bytes = await source.read(pos, 8);
    pos += 8;
    const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
    const high = view.getUint32(4, true);
    if (high > 0x1f_ffff) throw bad('length field too large');
    return high * 0x1_0000_0000 + view.getUint32(0, true);
  };
  const bytes = async (max: number): Promise<Uint8Array> => {
    const length = await u64();
    if (length > max || pos + length > source.size) throw bad('string too long');
    const value = length === 0 ? new Uint8Array(0) : await source.read(pos, length);
    pos += padded(length);
    return value;
  };
  const text = async (max = 16): Promise<string> => decoder.decode(await bytes(max));
  const expect = async (token: string): Promise<void> => {
    if ((await text()) !== token) throw bad(`expected '${token}'`);
  };
  let stopped = false;
  const node = async (path: string, depth: number): Promise<void> => {
    await expect('(');
    await expect('type');
    const type = await text();
    if (type === 'regular') {
      let tag = await text();
      const executable = tag === 'executable';
      if (executable) {
        await expect('');
        tag = await text();
      }
      if (tag !== 'contents') throw bad("expected 'contents'");
      const size = await u64();
      if (pos + size > source.size) throw bad('truncated');
      stopped = !visit({ path, type, size, executable, offset: pos });
      pos += padded(size);
    } else if (type === 'symlink') {
      await expect('target');
      stopped = !visit({ path, type, target: decoder.decode(await bytes(NAR_MAX_TARGET_LENGTH)) });
    } else if (type === 'directory') {
      if (depth >= NAR_MAX_DEPTH) throw bad('directories nested too deep');
      stopped = !visit({ path, type });
      while (!stopped) {
        const tag = await text();
        if (tag === ')') return;
        if (tag !== 'entry') throw bad("expected 'entry' or ')'");
        await expect('(');
        await expect('name');
        const name = decoder.decode(await bytes(NAR_MAX_NAME_LENGTH));
        await expect('node');
        await node(path === '' ? name : `${path}/${name}`, depth + 1);
        if (stopped) return;
        await expect(')');
      }
      return;
    } else {
      throw bad('unknown node type');
    }
    if (!stopped) await expect(')');
  };
  await expect('nix-archive-1');
  await node('', 0);
}

/** The NAR's first `limit` entries, and whether there were more. */
export async function listNar(source: NarSource, limit: number): Promise<{ entries: NarEntry[]; truncated: boolean }> {
  const entries: NarEntry[] = [];
  let truncated = false;
  await walkNar(source, (entry) => {
    if (entries.length === limit) {
      truncated = true;
      return false;
    }
    entries.push(entry);
    return true;
  });
  return { entries, truncated };
}

/** The entry at `path` ('' for the root), or undefined when the NAR has none. */
export async function findNarEntry(source: NarSource, path: string): Promise<NarEntry | undefined> {
  let found: NarEntry | undefined;
  await walkNar(source, (entry) => {
    if (entry.path === path) found = entry;
    return found === undefined;
  });
  return found;
}

function padded(length: number): number {
  return length + ((8 - (length % 8)) % 8);
}
