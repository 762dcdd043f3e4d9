import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ScratchNix {
  dir: string;
  store: string;
  /** Runs a Nix command against this scratch set-up and returns its trimmed output. */
  run(cmd: string, ...args: string[]): string;
  /** Adds a file with the given text to the store and returns its path. */
  addText(name: string, text: string): string;
  remove(): void;
}

/** A Nix store in a temporary directory, driven by the real `nix` without a daemon. */
export function scratchNix(prefix: string): ScratchNix {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const store = join(dir, 'store');
  const env = {
    ...process.env,
    NIX_CONFIG: 'experimental-features = nix-command\nbuild-users-group =\nsubstituters =\nsandbox = false',
    XDG_CACHE_HOME: join(dir, 'xdg'),
  };
  const run = (cmd: string, ...args: string[]): string =>
    execFileSync(cmd, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  return {
    dir,
    store,
    run,
    addText(name, text) {
      writeFileSync(join(dir, name), text);
      return run('nix-store', '--store', store, '--add', join(dir, name));
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Evaluates a Nix expression in the scratch store and returns the store path it makes. */
export function evalPath(nix: ScratchNix, expr: string): string {
  return nix.run('nix', 'eval', '--store', nix.store, '--impure', '--raw', '--expr', expr);
}
