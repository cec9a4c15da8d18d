#!/usr/bin/env node
// Committed launcher: npm links this file at install time, before the TypeScript build exists.
// It loads the compiled CLI and says how to build it when the build is missing.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write(
    'switchboard: the build is missing (packages/server/dist). Run `npm ci` or `npm run build` at the repository root.\n',
  );
  process.exit(1);
}
const { main } = await import(cli.href);
await main(process.argv);
