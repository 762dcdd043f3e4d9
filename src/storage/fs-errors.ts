import { NarwhalError } from '../errors.ts';

/** For `.catch`: a missing file is undefined; any other error is thrown again. */
export function ignoreMissing(err: unknown): undefined {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  throw err;
}

/** A write that failed for lack of space becomes 'storage-full' (HTTP 507). */
export function mapWriteError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new NarwhalError('storage-full', 'the chunk store is full', { cause: err });
  return err;
}
