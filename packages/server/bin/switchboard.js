#!/usr/bin/env node
// Committed launcher: npm links this file at install time, before the TypeScript build exists.
// It loads the compiled CLI and says how to build it when the build is missing.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';

// V8's allocation-site pretenuring allocates the objects of a site straight in the old generation
// once enough of them outlived a young collection. Under load the per-message objects (the Redis
// client's commands above all, in flight for a round trip) get there, and from then on every one
// of them is old garbage: major collections every few seconds. Off, point-to-point on one node
// costs up to a fifth less CPU per message (docs/benchmarks.md).
// `node --allocation-site-pretenuring` keeps it on.
if (!process.execArgv.some((flag) => /^--(no-)?allocation[-_]site[-_]pretenuring$/.test(flag))) {
  setFlagsFromString('--no-allocation-site-pretenuring');
}

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write(
    'switchboard: the build is missing (packages/server/dist). Run `npm ci` or `npm run build` at the repository root.\n',
  );
  process.exit(1);
}
const { main } = await import(cli.href);
await main(process.argv);
