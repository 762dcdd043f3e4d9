import { open, statfs } from 'node:fs/promises';
import { NarwhalError } from '../errors.ts';

/** For `.catch`: a missing file is undefined; any other error is thrown again. */
export function ignoreMissing(err: unknown): undefined {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  throw err;
}

/** A write that failed for lack of space becomes 'storage-full' (HTTP 507). */
export function mapWriteError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new NarwhalError('storage-full', 'the chunk store is full', { cause: err });
  return err;
}

/** fsync of a file or directory by its path. */
export async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The bytes an unprivileged writer can still write on the file system of `path`. */
export async function freeBytesAt(path: string): Promise<number> {
  const fs = await statfs(path);
  return fs.bavail * fs.bsize;
}
