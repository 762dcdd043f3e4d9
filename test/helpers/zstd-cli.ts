import { execFileSync } from 'node:child_process';

/** Decompresses with the zstd command (libzstd, as Nix uses it), which reads every frame of a stream. */
export function unzstd(data: Uint8Array): Buffer {
  return execFileSync('zstd', ['-d', '-c'], { input: data, maxBuffer: 1 << 30 });
}
