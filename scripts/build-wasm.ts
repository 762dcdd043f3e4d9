/**
 * Builds src/chunking/buzhash-chunker.wasm from its WebAssembly text with wabt (a devDependency),
 * or with --check, fails when the committed binary is not what the text builds to.
 *
 *   npm run build:wasm            write the .wasm
 *   node scripts/build-wasm.ts --check
 */
import { readFile, writeFile } from 'node:fs/promises';
import wabt from 'wabt';

const SOURCE = new URL('../src/chunking/buzhash-chunker.wat', import.meta.url);
const BINARY = new URL('../src/chunking/buzhash-chunker.wasm', import.meta.url);

export async function buildChunkerWasm(): Promise<Uint8Array> {
  const { parseWat } = await wabt();
  const module = parseWat('buzhash-chunker.wat', await readFile(SOURCE, 'utf8'));
  try {
    module.validate();
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const built = await buildChunkerWasm();
  if (process.argv.includes('--check')) {
    const committed = await readFile(BINARY);
    if (!committed.equals(built)) {
      process.stderr.write(
        'src/chunking/buzhash-chunker.wasm is not what buzhash-chunker.wat builds to: run npm run build:wasm\n',
      );
      process.exit(1);
    }
  } else {
    await writeFile(BINARY, built);
    process.stderr.write(`wrote ${BINARY.pathname} (${built.length} bytes)\n`);
  }
}
