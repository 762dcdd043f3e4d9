import type { SyntheticPath } from './synthetic-paths.ts';

/**
 * What one push attempt came to:
 * - acked: the narinfo PUT answered 2xx;
 * - present: the narinfo was already there (an earlier attempt committed it, its answer was lost);
 * - missing-dep: the server refused the narinfo because a reference is not in the cache;
 * - network: the connection failed (refused, reset, closed) before an answer;
 * - unexpected: any other status, or no answer within the time limit.
 */
export type PushOutcome =
  | { kind: 'acked'; narUploaded: boolean }
  | { kind: 'present' }
  | { kind: 'missing-dep'; detail: string }
  | { kind: 'network'; detail: string }
  | { kind: 'unexpected'; detail: string };

export interface PushOptions {
  /** Cache URL, e.g. http://127.0.0.1:5000/main */
  cacheUrl: string;
  token: string;
  /** A request not answered within this is a failure (a server that hangs). */
  timeoutMs?: number;
}

/**
 * Pushes one path the way `nix copy --to` does: HEAD the narinfo (done if present), HEAD the
 * upload name (skip the NAR if present), PUT the NAR, PUT the narinfo.
 */
export async function pushPath(path: SyntheticPath, options: PushOptions): Promise<PushOutcome> {
  const headers = { Authorization: `Bearer ${options.token}` };
  const timeoutMs = options.timeoutMs ?? 60_000;
  const call = async (
    method: string,
    name: string,
    body?: Uint8Array,
    contentType?: string,
  ): Promise<{ status: number; text: string }> => {
    const response = await fetch(`${options.cacheUrl}/${name}`, {
      method,
      headers: contentType ? { ...headers, 'Content-Type': contentType } : headers,
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: response.status, text: await response.text() };
  };
  let step = 'HEAD narinfo';
  try {
    const info = await call('HEAD', `${path.hashPart}.narinfo`);
    if (info.status === 200) return { kind: 'present' };
    if (info.status !== 404) return unexpected(step, info);

    step = 'HEAD nar';
    const head = await call('HEAD', path.uploadName);
    let narUploaded = false;
    if (head.status === 404) {
      step = 'PUT nar';
      const put = await call('PUT', path.uploadName, path.nar, 'application/x-nix-nar');
      if (!isSuccess(put.status)) return unexpected(step, put);
      narUploaded = true;
    } else if (head.status !== 200) {
      return unexpected(step, head);
    }

    step = 'PUT narinfo';
    const put = await call(
      'PUT',
      `${path.hashPart}.narinfo`,
      new TextEncoder().encode(path.narinfo),
      'text/x-nix-narinfo',
    );
    if (isSuccess(put.status)) return { kind: 'acked', narUploaded };
    if (put.status === 400 && /^references not in this cache/.test(put.text))
      return { kind: 'missing-dep', detail: put.text.trim() };
    return unexpected(step, put);
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === 'TimeoutError') return { kind: 'unexpected', detail: `${step}: no answer within ${timeoutMs} ms` };
    if (e instanceof TypeError && e.message === 'fetch failed') {
      return { kind: 'network', detail: `${step}: ${e.cause?.code ?? e.cause?.message ?? 'failed'}` };
    }
    throw err;
  }
}

/** Nix counts these as success for a PUT. */
function isSuccess(status: number): boolean {
  return status === 200 || status === 201 || status === 204 || status === 206 || status === 304;
}

function unexpected(step: string, answer: { status: number; text: string }): PushOutcome {
  return { kind: 'unexpected', detail: `${step}: ${answer.status} ${answer.text.trim().slice(0, 200)}` };
}
