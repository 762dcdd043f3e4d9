/** Bytes a directory tree takes: the sum of file sizes, and the blocks the file system allocated. */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface DiskUsage {
  /** Sum of file sizes (what the data weighs, independent of the file system). */
  apparent: number;
  /** Allocated blocks of files and directories (what `du` reports). */
  allocated: number;
  files: number;
}

export const ZERO_USAGE: DiskUsage = { apparent: 0, allocated: 0, files: 0 };

export async function diskUsage(dir: string): Promise<DiskUsage> {
  const usage = { apparent: 0, allocated: 0, files: 0 };
  const root = await lstat(dir);
  usage.allocated += root.blocks * 512;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const st = await lstat(join(entry.parentPath, entry.name));
    usage.allocated += st.blocks * 512;
    if (st.isFile()) {
      usage.apparent += st.size;
      usage.files++;
    }
  }
  return usage;
}

export async function diskUsageOf(dirs: string[]): Promise<DiskUsage> {
  const usages: DiskUsage[] = [];
  for (const dir of dirs) usages.push(await diskUsage(dir));
  return sumUsages(usages);
}

export function sumUsages(usages: DiskUsage[]): DiskUsage {
  const total = { ...ZERO_USAGE };
  for (const u of usages) {
    total.apparent += u.apparent;
    total.allocated += u.allocated;
    total.files += u.files;
  }
  return total;
}

export function minus(a: DiskUsage, b: DiskUsage): DiskUsage {
  return { apparent: a.apparent - b.apparent, allocated: a.allocated - b.allocated, files: a.files - b.files };
}
