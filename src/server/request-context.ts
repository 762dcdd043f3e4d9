import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Narwhal } from '../cache/narwhal.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';

export interface RequestContext {
  nw: Narwhal;
  cache: CacheRecord;
  req: IncomingMessage;
  res: ServerResponse;
  /** The capture groups of the route's pattern. */
  params: string[];
  /** True for HEAD: answer with the headers GET would send, and no body. */
  head: boolean;
  log: (message: string) => void;
}

export type Handler = (ctx: RequestContext) => Promise<void>;
