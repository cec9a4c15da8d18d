#!/usr/bin/env node
// Builds the browser bundles of the SDK with esbuild and prints their minified + gzip sizes:
//   dist/switchboard.min.js         ESM:    import { Switchboard } from '/switchboard.min.js'
//   dist/switchboard.global.min.js  script: window.Switchboard (the class, with the other exports on it)
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const dir = new URL('..', import.meta.url).pathname;
const common = {
  entryPoints: [`${dir}src/index.ts`],
  bundle: true,
  minify: true,
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
};
await build({ ...common, format: 'esm', outfile: `${dir}dist/switchboard.min.js` });
await build({
  ...common,
  format: 'iife',
  globalName: 'Switchboard',
  footer: { js: 'Switchboard=Object.assign(Switchboard.Switchboard,Switchboard);' },
  outfile: `${dir}dist/switchboard.global.min.js`,
});
for (const name of ['switchboard.min.js', 'switchboard.global.min.js']) {
  const bytes = readFileSync(`${dir}dist/${name}`);
  console.log(
    `${name}: ${(bytes.length / 1024).toFixed(1)} KiB minified, ${(gzipSync(bytes, { level: 9 }).length / 1024).toFixed(2)} KiB gzip`,
  );
}
