import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { putNarinfo } from '../../src/ingest/put-narinfo.ts';
import { serializeNarinfo } from '../../src/nix/narinfo.ts';
import { closeNarwhal, type Narwhal } from '../../src/context/narwhal.ts';
import { openNarwhal } from '../../src/tenancy/open-narwhal.ts';
import { writeNar } from '../../src/nix/nar-writer.ts';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';

export interface TempNarwhal {
  nw: Narwhal;
  dir: string;
  close(): Promise<void>;
}

/** A Narwhal on a new temporary data dir; `storage` picks another chunk store than the default. */
export async function tempNarwhal(
  options: Parameters<typeof openNarwhal>[0]['options'] = {},
  storage?: (dir: string) => string,
): Promise<TempNarwhal> {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-unit-'));
  const nw = await openNarwhal({ dataDir: dir, options, storage: storage?.(dir) });
  return {
    nw,
    dir,
    async close() {
      await closeNarwhal(nw);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let realBinary: Buffer | undefined;

/** A NAR around a real multi-megabyte binary plus `extra`, so it spans many chunks. */
export async function realisticNar(extra: string): Promise<Uint8Array> {
  realBinary ??= await readFile(process.execPath);
  return writeNar({
    type: 'directory',
    entries: {
      bin: {
        type: 'directory',
        entries: { tool: { type: 'regular', contents: realBinary.subarray(0, 3_000_000), executable: true } },
      },
      note: { type: 'regular', contents: Buffer.from(extra) },
      link: { type: 'symlink', target: 'bin/tool' },
    },
  });
}

export function narHashOf(nar: Uint8Array): string {
  return formatSha256Nix32(createHash('sha256').update(nar).digest());
}

export function bodyOf(bytes: Uint8Array, pieceSize = 65_521): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < bytes.length; i += pieceSize) yield Buffer.from(bytes.subarray(i, i + pieceSize));
    })(),
  );
}

/**
 * Records a path in `cacheName` that uses the ingested NAR, as a narinfo upload would, referring
 * to the fixture paths whose hash parts `refs` names.
 */
export async function addPath(
  nw: Narwhal,
  cacheName: string,
  nar: { narHash: string; narSize: number },
  hashPart = randomHashPart(),
  refs: string[] = [],
): Promise<string> {
  const cache = (await nw.meta.getCache(cacheName))!;
  const text = serializeNarinfo({
    storePath: `/nix/store/${hashPart}-fixture`,
    url: 'nar/x.nar',
    narHash: nar.narHash,
    narSize: nar.narSize,
    references: refs.map((h) => `${h}-fixture`),
    sigs: [],
  });
  await putNarinfo(nw, cache, hashPart, text, 'operator');
  return hashPart;
}

export function randomHashPart(): string {
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  return Array.from(randomBytes(32), (b) => alphabet[b & 31]).join('');
}

/** A body that sends `first` bytes, then waits for `resume` before sending the rest; `reached` is called when it starts waiting. */
export function pausedBody(nar: Uint8Array, first: number, resume: Promise<void>, reached?: () => void): Readable {
  return Readable.from(
    (async function* () {
      for (let i = 0; i < first; i += 65_536) yield Buffer.from(nar.subarray(i, Math.min(i + 65_536, first)));
      reached?.();
      await resume;
      for (let i = first; i < nar.length; i += 65_536) yield Buffer.from(nar.subarray(i, i + 65_536));
    })(),
  );
}
