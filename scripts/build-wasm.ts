/**
 * Builds src/chunking/buzhash-chunker.wasm and src/delta/gear-anchors.wasm from their WebAssembly
 * text with wabt (a devDependency), or with --check, fails when a committed binary is not what its
 * text builds to.
 *
 *   npm run build:wasm            write the .wasm
 *   node scripts/build-wasm.ts --check
 */
import { readFile, writeFile } from 'node:fs/promises';
import wabt from 'wabt';

const MODULES = ['chunking/buzhash-chunker', 'delta/gear-anchors'];

export const buildChunkerWasm = (): Promise<Uint8Array> => buildWasm('chunking/buzhash-chunker');
export const buildGearAnchorsWasm = (): Promise<Uint8Array> => buildWasm('delta/gear-anchors');

async function buildWasm(name: string): Promise<Uint8Array> {
  const { parseWat } = await wabt();
  const module = parseWat(`${name}.wat`, await readFile(new URL(`../src/${name}.wat`, import.meta.url), 'utf8'));
  try {
    module.validate();
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const name of MODULES) {
    const built = await buildWasm(name);
    const binary = new URL(`../src/${name}.wasm`, import.meta.url);
    if (process.argv.includes('--check')) {
      const committed = await readFile(binary);
      if (!committed.equals(built)) {
        process.stderr.write(`src/${name}.wasm is not what ${name}.wat builds to: run npm run build:wasm\n`);
        process.exit(1);
      }
    } else {
      await writeFile(binary, built);
      process.stderr.write(`wrote ${binary.pathname} (${built.length} bytes)\n`);
    }
  }
}
