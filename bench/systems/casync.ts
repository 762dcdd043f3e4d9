/**
 * casync, as nix-casync used it: `casync make` of each NAR into one shared chunk store, one index
 * per NAR. Default settings (16/64/256 KiB, SHA-512/256 ids, zstd chunks) unless told otherwise.
 */
import { join } from 'node:path';
import { run } from '../exec.ts';

/** Chunks one NAR into the store; resolves to the wall time in seconds. */
export async function casyncMake(
  store: string,
  indexDir: string,
  narFile: string,
  name: string,
  extraArgs: string[] = [],
): Promise<number> {
  return (await run('casync', ['make', ...extraArgs, `--store=${store}`, join(indexDir, `${name}.caibx`), narFile]))
    .seconds;
}
