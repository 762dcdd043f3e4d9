import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LocalChunkStore } from '../../src/storage/local-chunk-store.ts';
import type { ChunkStore } from '../../src/storage/chunk-store.ts';
import { chunkStoreConformance } from './chunk-store-conformance.ts';

const rootOf = (store: ChunkStore): string => (store as LocalChunkStore).root;
const pathOf = (store: ChunkStore, id: Uint8Array): string => (store as LocalChunkStore).path(id);
/** A name next to the chunk's file, as the store's temporary and moved-aside files have. */
const besidePath = (store: ChunkStore, id: Uint8Array, suffix: string): string =>
  `${pathOf(store, id)}.${randomBytes(6).toString('hex')}${suffix}`;

chunkStoreConformance({
  name: 'LocalChunkStore',
  listCount: 1100,
  // The directory itself is created by the first put, as in a fresh data dir.
  open: async () => new LocalChunkStore(join(await mkdtemp(join(tmpdir(), 'narwhal-chunks-')), 'castr')),
  openSibling: async (store) => new LocalChunkStore(`${rootOf(store)}-x`),
  castr: {
    rawNames: async (store) => {
      const entries = await readdir(rootOf(store), { recursive: true, withFileTypes: true }).catch(
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return [];
          throw err;
        },
      );
      return entries
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name).slice(rootOf(store).length + 1))
        .sort();
    },
    putRaw: async (store, name, bytes) => {
      const path = join(rootOf(store), name);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, bytes);
    },
  },
  capabilities: ['FreeSpace', 'WritePreparation', 'ConditionalDelete', 'LeftoverCleanup'],
  hooks: {
    backdate: (store, id, at) => utimes(pathOf(store, id), new Date(at), new Date(at)),
    leaveWriteLeftover: async (store, at) => {
      const path = besidePath(store, randomBytes(32), '.tmp');
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, randomBytes(1234));
      await utimes(path, new Date(at), new Date(at));
      return 1234;
    },
    moveAside: (store, id) => rename(pathOf(store, id), besidePath(store, id, '.gc')),
  },
  // The temporary directory goes with its store; a sibling shares it and leaves it.
  discard: async (store) => {
    const root = rootOf(store);
    await rm(root.endsWith('-x') ? root : dirname(root), { recursive: true, force: true });
  },
});
