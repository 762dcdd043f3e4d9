/**
 * The storage alternatives behind Narwhal's choice, computed in-process with Narwhal's own chunker
 * and chunk codec on the same NARs: other chunk sizes, cut points forced at file boundaries inside
 * the NAR, and other zstd levels. Same accounting as the stores: distinct chunks once, each one
 * zstd frame, plus a 40-byte index entry per chunk reference; series in order, each charged with
 * the chunks it added.
 */
import { readFile } from 'node:fs/promises';
import { chunkStream } from '../src/chunking/chunk-stream.ts';
import { chunkId, encodeChunk } from '../src/storage/chunk-codec.ts';
import type { Dataset } from './dataset.ts';
import type { ChunkingVariant } from './modes.ts';
import { regularFileSpans } from './nar-spans.ts';
import type { ChunkingFigures, ChunkingResult } from './results.ts';

const INDEX_ENTRY_BYTES = 40;
const MAX_IN_FLIGHT = 8;

/** Runs every variant at the shipped zstd level; the first (shipped) variant also at `levels`. */
export async function measureChunking(
  ds: Dataset,
  variants: ChunkingVariant[],
  shippedLevel: number,
  levels: number[],
  log: (line: string) => void,
): Promise<ChunkingResult[]> {
  const out: ChunkingResult[] = [];
  for (const [i, variant] of variants.entries()) {
    const variantLevels = i === 0 ? [...new Set([shippedLevel, ...levels])].sort((a, b) => a - b) : [shippedLevel];
    log(`chunking: ${variant.label} (zstd ${variantLevels.join(', ')})`);
    for (const result of await measureVariant(ds, variant, variantLevels))
      out.push({ ...result, shipped: i === 0 && result.zstdLevel === shippedLevel });
  }
  return out;
}

async function measureVariant(
  ds: Dataset,
  variant: ChunkingVariant,
  levels: number[],
): Promise<Omit<ChunkingResult, 'shipped'>[]> {
  const started = performance.now();
  const seen = new Set<string>();
  const zero = (): ChunkingFigures => ({ chunks: 0, chunkBytes: 0, storedBytes: 0, indexBytes: 0 });
  const perLevel = levels.map(() => ({ series: {} as Record<string, ChunkingFigures>, total: zero() }));
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;

  for (const s of ds.series) {
    const figures = levels.map(() => zero());
    for (const nar of s.nars) {
      const bytes = await readFile(nar.file);
      for (const segment of segments(bytes, variant)) {
        for await (const chunk of chunkStream(pieces(segment), variant.params)) {
          for (const f of figures) f.indexBytes += INDEX_ENTRY_BYTES;
          const key = Buffer.from(chunkId(chunk)).toString('base64');
          if (seen.has(key)) continue;
          seen.add(key);
          for (const [li, level] of levels.entries()) {
            const f = figures[li];
            f.chunks++;
            f.chunkBytes += chunk.length;
            const job: Promise<void> = encodeChunk(chunk, level)
              .then(
                (encoded) => {
                  f.storedBytes += encoded.length;
                },
                (err: unknown) => {
                  failure ??= err;
                },
              )
              .then(() => {
                inFlight.delete(job);
              });
            inFlight.add(job);
          }
          while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
          if (failure !== undefined) throw failure;
        }
      }
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    for (const [li, f] of figures.entries()) {
      perLevel[li].series[s.id] = f;
      const t = perLevel[li].total;
      t.chunks += f.chunks;
      t.chunkBytes += f.chunkBytes;
      t.storedBytes += f.storedBytes;
      t.indexBytes += f.indexBytes;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  return levels.map((level, li) => ({
    id: variant.id,
    label: variant.label,
    zstdLevel: level,
    figures: perLevel[li],
    seconds,
  }));
}

/** The NAR split at forced cut points; each piece is then chunked on its own. */
function segments(nar: Uint8Array, variant: ChunkingVariant): Uint8Array[] {
  if (variant.fileCuts === 'none') return [nar];
  const threshold = variant.fileCuts === 'large-files' ? variant.params.avg : 1;
  const cuts = new Set<number>([0, nar.length]);
  for (const span of regularFileSpans(nar)) {
    if (span.end - span.start < threshold) continue;
    cuts.add(span.start);
    cuts.add(span.end);
  }
  const sorted = [...cuts].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < sorted.length; i++)
    if (sorted[i + 1] > sorted[i]) out.push(nar.subarray(sorted[i], sorted[i + 1]));
  return out;
}

async function* pieces(data: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += 1 << 20) yield data.subarray(off, Math.min(data.length, off + (1 << 20)));
}
