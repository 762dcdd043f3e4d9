/**
 * Throughput of the cut-point scan (the TypeScript reference and the WebAssembly one ingest uses)
 * and of chunk-ID hashing (sha256 vs sha512-256) on 64 KiB chunks.
 * Run: cd /work/main && npx node bench/chunker.ts [FILE]
 */
import { createHash, randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Chunker } from '../src/chunking/chunker.ts';
import { chunkStream } from '../src/chunking/chunk-stream.ts';
import { WASM_BLOCK_BYTES, WasmChunker } from '../src/chunking/wasm-chunker.ts';

const MiB = 1024 * 1024;

function loadInput(): { name: string; data: Uint8Array } {
  const file = process.argv[2];
  if (file !== undefined) return { name: file, data: readFileSync(file) };
  const data = new Uint8Array(128 * MiB);
  for (let o = 0; o < data.length; o += 65536) randomFillSync(data, o, 65536);
  return { name: 'random 128 MiB', data };
}

function scan(data: Uint8Array, step: number): number {
  const chunker = new Chunker();
  let cuts = 0;
  for (let off = 0; off < data.length; off += step) {
    const end = Math.min(data.length, off + step);
    let pos = off;
    while (pos < end) {
      const cut = chunker.next(data, pos, end);
      if (cut < 0) break;
      cuts++;
      pos = cut;
    }
  }
  return cuts;
}

/** The same scan by the WebAssembly chunker, in blocks of at most WASM_BLOCK_BYTES. */
function scanWasm(data: Uint8Array, step: number): number {
  const chunker = new WasmChunker();
  let cuts = 0;
  for (let off = 0; off < data.length; off += Math.min(step, WASM_BLOCK_BYTES)) {
    cuts += chunker.cuts(data.subarray(off, Math.min(data.length, off + Math.min(step, WASM_BLOCK_BYTES)))).length;
  }
  return cuts;
}

function rate(bytes: number, ms: number): string {
  return `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
}

function best(runs: number, fn: () => void): number {
  let bestMs = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    fn();
    bestMs = Math.min(bestMs, performance.now() - t0);
  }
  return bestMs;
}

const { name, data } = loadInput();
console.log(`input: ${name}, ${(data.length / MiB).toFixed(1)} MiB, node ${process.version}`);
for (const step of [data.length, 1 * MiB, 64 * 1024]) {
  let cuts = 0;
  const ms = best(5, () => {
    cuts = scan(data, step);
  });
  console.log(
    `cut points, TypeScript, ${step === data.length ? 'one buffer' : `${step / 1024} KiB buffers`}: ${rate(data.length, ms)} (${cuts} cuts)`,
  );
}
for (const step of [1 * MiB, 64 * 1024]) {
  let cuts = 0;
  const ms = best(5, () => {
    cuts = scanWasm(data, step);
  });
  console.log(`cut points, WebAssembly, ${step / 1024} KiB blocks: ${rate(data.length, ms)} (${cuts} cuts)`);
}
for (const algo of ['sha256', 'sha512-256']) {
  const chunk = 64 * 1024;
  const ms = best(5, () => {
    for (let off = 0; off + chunk <= data.length; off += chunk) {
      createHash(algo)
        .update(data.subarray(off, off + chunk))
        .digest();
    }
  });
  console.log(`${algo} on 64 KiB chunks: ${rate(Math.floor(data.length / chunk) * chunk, ms)}`);
}

async function* pieces(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += size) yield data.subarray(off, Math.min(data.length, off + size));
}

for (const algo of [undefined, 'sha256', 'sha512-256']) {
  let bestMs = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    for await (const chunk of chunkStream(pieces(data, 1024 * 1024))) {
      if (algo !== undefined) createHash(algo).update(chunk).digest();
    }
    bestMs = Math.min(bestMs, performance.now() - t0);
  }
  console.log(`chunkStream (1 MiB reads)${algo ? ` + ${algo} ids` : ''}: ${rate(data.length, bestMs)}`);
}
