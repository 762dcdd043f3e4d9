import { open, readFile, readdir, rename, rm, stat, mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NarwhalError } from '../errors.ts';
import { castrKey, type ChunkStore, type StoredChunkInfo } from './chunk-store.ts';

const TEMP_SUFFIX = '.tmp';
const HEX_ID = /^[0-9a-f]{64}$/;

/**
 * Chunks as files in casync's castr layout (`<root>/<4hex>/<id>.cacnk`), so casync and desync
 * can read the directory directly. Writes go to a temporary name, are fsynced and renamed; the
 * directories touched are fsynced by `flush()`, before the caller commits metadata that names them.
 */
export class LocalChunkStore implements ChunkStore {
  readonly root: string;
  readonly #dirtyDirs = new Set<string>();
  readonly #knownDirs = new Set<string>();

  constructor(root: string) {
    this.root = root;
  }

  path(id: Uint8Array): string {
    return join(this.root, castrKey(id));
  }

  async get(id: Uint8Array): Promise<Uint8Array> {
    try {
      return await readFile(this.path(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NarwhalError('chunk-missing', `chunk ${hex(id)} is missing from the chunk store`);
      }
      throw err;
    }
  }

  async storedSize(id: Uint8Array): Promise<number | undefined> {
    try {
      return (await stat(this.path(id))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async put(id: Uint8Array, stored: Uint8Array): Promise<void> {
    const final = this.path(id);
    const dir = join(this.root, castrKey(id).slice(0, 4));
    if (!this.#knownDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.#knownDirs.add(dir);
    }
    const temp = `${final}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
    const file = await open(temp, 'wx');
    try {
      await file.writeFile(stored);
      await file.datasync();
    } catch (err) {
      await file.close();
      await unlink(temp).catch(() => undefined);
      throw mapWriteError(err);
    }
    await file.close();
    await rename(temp, final);
    this.#dirtyDirs.add(dir);
  }

  async flush(): Promise<void> {
    const dirs = [...this.#dirtyDirs];
    this.#dirtyDirs.clear();
    await Promise.all(dirs.map(syncDirectory));
  }

  async delete(id: Uint8Array): Promise<void> {
    await rm(this.path(id), { force: true });
  }

  async *list(): AsyncIterable<StoredChunkInfo> {
    let prefixes: string[];
    try {
      prefixes = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const prefix of prefixes.sort()) {
      if (!/^[0-9a-f]{4}$/.test(prefix)) continue;
      for (const name of (await readdir(join(this.root, prefix))).sort()) {
        const idHex = name.slice(0, -'.cacnk'.length);
        if (!name.endsWith('.cacnk') || !HEX_ID.test(idHex)) continue;
        const info = await stat(join(this.root, prefix, name)).catch(() => undefined);
        if (info) yield { id: Buffer.from(idHex, 'hex'), storedSize: info.size, modifiedAt: info.mtimeMs };
      }
    }
  }

  async close(): Promise<void> {
    await this.flush();
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function mapWriteError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new NarwhalError('storage-full', 'the chunk store is full', { cause: err });
  return err;
}

function hex(id: Uint8Array): string {
  return Buffer.from(id).toString('hex');
}
