import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A file's text, or undefined when it does not exist. */
export async function readTextIfExists(file: string): Promise<string | undefined> {
  return readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/**
 * Replaces `file` with `text` atomically: written to a temporary file beside it, flushed, then
 * renamed over it, so a reader (Nix) sees the old or the new file whole, never half of one.
 * The file gets `mode` when new; an existing file keeps its mode unless `forceMode` (a file
 * holding a secret must stay private). A missing directory is made with `dirMode`.
 */
export async function writeFileAtomic(
  file: string,
  text: string,
  options: { mode: number; forceMode?: boolean; dirMode?: number },
): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: options.dirMode ?? 0o755 });
  const existing = await stat(file).catch(() => undefined);
  const mode = existing && !options.forceMode ? existing.mode & 0o7777 : options.mode;
  const temporary = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const handle = await open(temporary, 'w', mode);
  try {
    await handle.writeFile(text);
    // The mode given to open is reduced by the umask; this one is not.
    await handle.chmod(mode);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temporary, { force: true });
    throw err;
  }
  await handle.close();
  await rename(temporary, file);
}
