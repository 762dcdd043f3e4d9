#!/usr/bin/env -S MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=4 --initial-old-space-size=64
// Node 24 runs the TypeScript sources directly (type stripping); there is no build step.
// --max-semi-space-size=4 (MiB; V8's default is 16): a smaller young generation lowers the
// server's peak RSS during uploads, for a little more CPU.
// --initial-old-space-size=64 (MiB): the main thread's heap stays small while an upload
// streams through it, and V8 would size its old generation's limit to match and run a full
// collection every few tens of MB of NAR.
// MALLOC_*: glibc's malloc, which holds the buffers of every thread, otherwise gives each thread
// an arena of its own and raises its mmap threshold to the largest buffer freed (up to 32 MB),
// after which big buffers come from the arenas and their freed memory stays in the process.
// What each setting changes, measured: docs/benchmarks.md, "Memory settings".
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(
    `narwhal needs Node.js 24 or later (this is ${process.version}); run it with npx, which uses the Node 24 from devDependencies.\n`,
  );
  process.exit(1);
}
// Each thread loads Node's TypeScript stripper to compile the sources, about 20 MB of RSS per worker
// thread, unless Node's compile cache holds them already compiled: kept in a directory of this
// user's (not the shared default under /tmp, whose entries another user could write). Worker threads
// take the setting from the environment. Measured: docs/benchmarks.md, "Delta memory and serving speed".
if (process.env.NODE_COMPILE_CACHE === undefined) {
  const { enableCompileCache } = await import('node:module');
  const { homedir } = await import('node:os');
  const { join } = await import('node:path');
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const { directory } = enableCompileCache(join(base, 'narwhal', 'node-compile-cache'));
  if (directory !== undefined) process.env.NODE_COMPILE_CACHE = directory;
}
const { main } = await import('../src/cli/main.ts');
// Written now rather than at exit, which a killed server never reaches (workers: worker-pool.ts).
(await import('node:module')).flushCompileCache();
process.exitCode = await main(process.argv.slice(2));
