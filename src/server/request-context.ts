import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Narwhal } from '../context/narwhal.ts';
import type { CacheRecord, TokenRecord } from '../metadata/metadata-store.ts';

export interface RequestContext {
  nw: Narwhal;
  cache: CacheRecord;
  req: IncomingMessage;
  res: ServerResponse;
  /** The capture groups of the route's pattern. */
  params: string[];
  /** The token the request authenticated with, if any. */
  token: TokenRecord | undefined;
  /** True for HEAD: answer with the headers GET would send, and no body. */
  head: boolean;
  log: (message: string) => void;
}

export type Handler = (ctx: RequestContext) => Promise<void>;
