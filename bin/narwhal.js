#!/usr/bin/env node
// Node 24 runs the TypeScript sources directly (type stripping); there is no build step.
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(`narwhal needs Node.js 24 or later (this is ${process.version}); run it with npx, which uses the Node 24 from devDependencies.\n`);
  process.exit(1);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
