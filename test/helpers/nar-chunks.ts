import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { chunkStream } from '../../src/chunking/chunk-stream.ts';

/** A chunk of a NAR as a pusher cuts it: its id (SHA-256) and its bytes. */
export interface Chunk {
  id: Uint8Array;
  data: Uint8Array;
}

export const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');

/** The NAR cut into chunks as the server and `narwhal push` cut it. */
export async function chunksOf(nar: Uint8Array): Promise<Chunk[]> {
  const chunks: Chunk[] = [];
  for await (const data of chunkStream(Readable.from([nar]))) {
    chunks.push({ id: new Uint8Array(createHash('sha256').update(data).digest()), data });
  }
  return chunks;
}
