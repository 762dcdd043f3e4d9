#!/usr/bin/env -S MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=4 --initial-old-space-size=64
// Node 24 runs the TypeScript sources directly (type stripping); there is no build step.
// --max-semi-space-size=4 (MiB; V8's default is 16): a smaller young generation keeps the
// server's peak RSS over a 1.1 GB upload at 172 instead of 216 MB, for about 8% more CPU.
// --initial-old-space-size=64 (MiB): the main thread's heap stays near 10 MB while an upload
// streams through it, and V8 sized its old generation's limit to match, which ran a full
// collection about every 20 MB of NAR: 87 of them, 2.4 s of CPU, for the benchmark's 1.5 GB.
// With this, 5 (the PUTs took 6.4 instead of 7.2 s; peak RSS 238 instead of 205 MB).
// MALLOC_*: glibc's malloc, which holds the buffers of every thread, otherwise gives each thread
// an arena of its own and raises its mmap threshold to the largest buffer freed (up to 32 MB),
// after which big buffers come from the arenas and their freed memory stays in the process.
// Ingesting the benchmark's 1.5 GB: peak RSS 241-256 instead of 280-291 MB, in the same time
// (median of 4 PUT-alls 8.97 against 10.18 s); the 2.2 GB synthetic NAR 223-233 against 256-258.
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(`narwhal needs Node.js 24 or later (this is ${process.version}); run it with npx, which uses the Node 24 from devDependencies.\n`);
  process.exit(1);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
