import { NarwhalError } from '../errors.ts';
import { type CaibxChunk, decodeCaibx } from '../storage/caibx.ts';

export interface Upstream {
  /** The cache's URL on the server, `<server>/<cache>`. */
  cacheUrl: string;
  headers: Record<string, string>;
  /** Counts the response bytes read from the server. */
  received?: (bytes: number) => void;
}

/** The server's chunk list of the NAR with this hash (nix32). */
export async function fetchChunkList(upstream: Upstream, narHash: string): Promise<CaibxChunk[]> {
  const res = await fetch(`${upstream.cacheUrl}/nar/${narHash}.caibx`, { headers: upstream.headers });
  if (!res.ok) throw new NarwhalError('unavailable', `the server has no chunk list of ${narHash}: ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  upstream.received?.(bytes.length);
  return decodeCaibx(bytes).chunks;
}
