import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { type PushOptions, type PushProgress, pushPaths } from './push.ts';

export interface WatchOptions extends PushOptions {
  /** The Nix state directory whose database lists the valid paths (NIX_STATE_DIR, /nix/var/nix). */
  stateDir?: string;
  intervalMs?: number;
  signal: AbortSignal;
  /** After each round that pushed something, or failed (it is tried again next round). */
  onRound?: (round: { paths: string[]; result?: PushProgress; error?: unknown }) => void;
}

/**
 * `narwhal push --watch-store`: pushes every store path that becomes valid from now on, as
 * `attic watch-store` and `cachix watch-store` do. New paths are read from the Nix database
 * (rows of ValidPaths after the last one seen, read-only), which lists a path once it is
 * complete; derivations (`.drv`) are left out. A round that fails is tried again.
 */
export async function watchStore(options: WatchOptions): Promise<void> {
  const stateDir = options.stateDir ?? process.env.NIX_STATE_DIR ?? '/nix/var/nix';
  const db = new DatabaseSync(join(stateDir, 'db', 'db.sqlite'), { readOnly: true });
  db.exec('PRAGMA busy_timeout = 10000');
  try {
    const newest = db.prepare('SELECT coalesce(max(id), 0) AS id FROM ValidPaths');
    const since = db.prepare('SELECT id, path FROM ValidPaths WHERE id > ? ORDER BY id');
    let seen = Number((newest.get() as { id: number }).id);
    let pending: string[] = [];
    while (!options.signal.aborted) {
      await delay(options.intervalMs ?? 1000, undefined, { signal: options.signal }).catch(() => undefined);
      if (options.signal.aborted) break;
      for (const row of since.all(seen) as { id: number; path: string }[]) {
        seen = Number(row.id);
        if (!row.path.endsWith('.drv')) pending.push(row.path);
      }
      if (pending.length === 0) continue;
      const paths = pending;
      try {
        const result = await pushPaths(paths, options);
        pending = [];
        options.onRound?.({ paths, result });
      } catch (error) {
        options.onRound?.({ paths, error });
      }
    }
  } finally {
    db.close();
  }
}
