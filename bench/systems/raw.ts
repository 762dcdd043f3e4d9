/** The baseline of no cache software at all: the uncompressed NAR bytes. */
import type { NarFile } from '../dataset.ts';

export function rawBytes(nars: readonly NarFile[]): number {
  return nars.reduce((sum, n) => sum + n.narSize, 0);
}
