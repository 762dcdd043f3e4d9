/**
 * Release series made locally, for runs without the network: version 1 is a real tree from this
 * machine, and each next version is the previous one with deterministic edits of the kind a
 * release makes (lines inserted in some files, one file removed, one added).
 */
import { cp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

/** Writes versions 1..count under `<parent>/<name>-v<k>` and returns their directories. */
export async function makeEditedReleases(
  baseDir: string,
  parent: string,
  name: string,
  count: number,
): Promise<string[]> {
  const dirs: string[] = [];
  for (let k = 1; k <= count; k++) {
    const dir = join(parent, `${name}-v${k}`);
    await rm(dir, { recursive: true, force: true });
    await cp(k === 1 ? baseDir : dirs[k - 2], dir, { recursive: true });
    if (k > 1) await editRelease(dir, k);
    dirs.push(dir);
  }
  return dirs;
}

async function editRelease(dir: string, version: number): Promise<void> {
  const files = (await listFiles(dir)).sort();
  const stamp = `/* changed in release ${version} */\n`;
  for (let i = 0; i < files.length; i++) {
    if ((i + version) % 5 !== 0) continue;
    const text = await readFile(files[i], 'utf8');
    await writeFile(files[i], insertAtLineBreaks(text, stamp, [0.25, 0.5, 0.75]));
  }
  if (files.length > 10) {
    const removed = files[(version * 7) % files.length];
    const donor = files[(version * 13) % files.length];
    if (removed !== donor) {
      const donorText = await readFile(donor, 'utf8');
      await unlink(removed);
      await writeFile(
        join(dir, `added-in-release-${version}.txt`),
        `${relative(dir, donor)}\n${donorText.slice(0, 8192)}`,
      );
    }
  }
}

function insertAtLineBreaks(text: string, line: string, fractions: number[]): string {
  const cuts = fractions.map((f) => {
    const at = text.indexOf('\n', Math.floor(text.length * f));
    return at < 0 ? text.length : at + 1;
  });
  let out = '';
  let prev = 0;
  for (const cut of cuts) {
    out += text.slice(prev, cut) + line;
    prev = cut;
  }
  return out + text.slice(prev);
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}
