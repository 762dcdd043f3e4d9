import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { chunkFrames } from '../../serving/chunk-frames.ts';
import { MAX_CHUNKS_WANTED, MAX_HINTS, parseWantedChunks } from '../../serving/chunk-frames-body.ts';
import { readBody } from '../body.ts';
import type { RequestContext } from '../request-context.ts';

/** The largest request: every chunk with every hint. */
const MAX_REQUEST_BYTES = 5 + MAX_CHUNKS_WANTED * 33 * (1 + MAX_HINTS);

/** POST `chunk-frames`: chunks by id, as frames or deltas against chunks the client holds (serving/chunk-frames.ts). */
export async function postChunkFrames({ nw, cache, req, res }: RequestContext): Promise<void> {
  const wanted = parseWantedChunks(await readBody(req, MAX_REQUEST_BYTES));
  res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
  await pipeline(Readable.from(chunkFrames(nw, cache, wanted), { objectMode: false }), res);
}
