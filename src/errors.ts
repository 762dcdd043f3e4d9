/**
 * The error vocabulary of Narwhal. Every failure a caller may need to tell apart has its own code;
 * the server maps codes to HTTP statuses in one place (src/server/http-errors.ts), and messages are
 * written to be shown to clients: short, specific, free of internal paths.
 */
export type ErrorCode =
  | 'bad-request' // malformed request (path, header, parameter)
  | 'bad-nar' // NAR grammar violated or not canonical
  | 'bad-narinfo' // narinfo unparsable or inconsistent
  | 'bad-compression' // compressed stream is corrupt or of an unsupported kind
  | 'bad-index' // caibx unparsable
  | 'hash-mismatch' // declared hash/size differs from the content
  | 'too-large' // a configured size limit was exceeded
  | 'not-found'
  | 'conflict' // the name is taken
  | 'missing-reference' // narinfo names a NAR or reference that is not stored
  | 'unauthorized'
  | 'forbidden'
  | 'chunk-missing' // a stored NAR refers to a chunk the chunk store does not have
  | 'chunk-corrupt' // a chunk file exists but fails decompression or its hash
  | 'storage-full'
  | 'unavailable'
  | 'internal';

export class NarwhalError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'NarwhalError';
  }
}

export function isNarwhalError(err: unknown, code?: ErrorCode): err is NarwhalError {
  return err instanceof NarwhalError && (code === undefined || err.code === code);
}
