/**
 * A large NAR made of real bytes: a directory whose entries are the dataset's files over and over,
 * each repeat of a file varied (a few bytes in every 4 KiB block) so that no chunk repeats and the
 * data keeps the compressibility of real software. Written as a canonical NAR to a file.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { once } from 'node:events';
import { nix32 } from './nix32.ts';

export interface SyntheticNar {
  file: string;
  narHash: string;
  narSize: number;
  entries: number;
}

interface SourceFile {
  path: string;
  executable: boolean;
}

/** Regular files of the given store paths (or any directories), in a stable order. */
export async function realFiles(roots: string[]): Promise<SourceFile[]> {
  const out: SourceFile[] = [];
  const add = async (path: string): Promise<void> => {
    const st = await lstat(path);
    if (st.isFile() && st.size > 0) out.push({ path, executable: (st.mode & 0o111) !== 0 });
  };
  for (const root of roots) {
    if (!(await lstat(root)).isDirectory()) {
      await add(root);
      continue;
    }
    for (const e of await readdir(root, { recursive: true, withFileTypes: true }))
      if (e.isFile()) await add(join(e.parentPath, e.name));
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

export async function writeSyntheticNar(
  file: string,
  targetBytes: number,
  sources: SourceFile[],
): Promise<SyntheticNar> {
  if (sources.length === 0) throw new Error('no source files for the synthetic NAR');
  const out = createWriteStream(file);
  const hash = createHash('sha256');
  let size = 0;
  const write = async (bytes: Uint8Array): Promise<void> => {
    hash.update(bytes);
    size += bytes.length;
    if (!out.write(bytes)) await once(out, 'drain');
  };
  const str = async (s: string | Uint8Array): Promise<void> => {
    const bytes = typeof s === 'string' ? Buffer.from(s) : s;
    await write(u64(bytes.length));
    await write(bytes);
    await pad(bytes.length);
  };
  const pad = async (length: number): Promise<void> => {
    const n = (8 - (length % 8)) % 8;
    if (n > 0) await write(new Uint8Array(n));
  };

  for (const t of ['nix-archive-1', '(', 'type', 'directory']) await str(t);
  let entries = 0;
  for (let round = 0; size < targetBytes; round++) {
    for (const source of sources) {
      if (size >= targetBytes) break;
      const contents = await readFile(source.path);
      vary(contents, round);
      const name = `${String(entries).padStart(8, '0')}-${basename(source.path).slice(0, 120)}`;
      for (const t of ['entry', '(', 'name', name, 'node', '(', 'type', 'regular']) await str(t);
      if (source.executable) for (const t of ['executable', '']) await str(t);
      await str('contents');
      await write(u64(contents.length));
      for (let off = 0; off < contents.length; off += 1 << 20)
        await write(contents.subarray(off, Math.min(contents.length, off + (1 << 20))));
      await pad(contents.length);
      await str(')');
      await str(')');
      entries++;
    }
  }
  await str(')');
  out.end();
  await once(out, 'finish');
  return { file, narHash: nix32(hash.digest()), narSize: size, entries };
}

/** Round 0 leaves the file as it is; later rounds change 4 bytes of every 4 KiB block. */
function vary(contents: Buffer, round: number): void {
  if (round === 0) return;
  for (let off = 0; off + 4 <= contents.length; off += 4096) {
    contents.writeUInt32LE((Math.imul(round, 0x9e3779b1) ^ off) >>> 0, off);
  }
}

function u64(n: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
