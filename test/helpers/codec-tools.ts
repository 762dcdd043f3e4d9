import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { seededRandom as random } from './seeded-random.ts';

/** A real binary of a few tens of MB, for compressible, realistic input. */
export const nixBinary = readFileSync('/usr/bin/nix');

/** Runs a tool with `input` on stdin and returns its stdout; fails the test if it exits non-zero. */
export async function runTool(argv: [string, ...string[]], input: Buffer): Promise<Buffer> {
  const [command, ...args] = argv;
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  // A decoder that rejects its input may exit before reading all of it; its status tells.
  let stdinError: Error | null = null;
  child.stdin.on('error', (e: Error) => {
    stdinError = e;
  });
  child.stdin.end(input);
  const [code] = (await once(child, 'close')) as [number | null];
  assert.equal(code, 0, `${command} failed: ${Buffer.concat(err).toString()} ${stdinError ?? ''}`);
  return Buffer.concat(out);
}

/** Runs of the given lengths, each of a byte different from its neighbours'. */
export function runs(lengths: number[]): Buffer {
  return Buffer.concat(lengths.map((length, i) => Buffer.alloc(length, 0x41 + (i % 20))));
}

export function randomRuns(total: number, seed: number): Buffer {
  const rng = random(seed);
  const out = Buffer.alloc(total);
  let at = 0;
  let prev = -1;
  while (at < total) {
    let b = Math.floor(rng() * 6);
    if (b === prev) b = (b + 1) % 6;
    prev = b;
    const r = rng();
    const length =
      r < 0.5 ? 1 + Math.floor(rng() * 8) : r < 0.8 ? 250 + Math.floor(rng() * 12) : 1 + Math.floor(rng() * 1100);
    out.fill(b, at, Math.min(total, at + length));
    at += length;
  }
  return out;
}
