#!/usr/bin/env node
// Fails when source files of a package import each other in a cycle, type-only imports included
// (ESLint's import-x/no-cycle skips those; they still tie modules together for readers and for
// the declaration output). Run by `npm run lint`.   node scripts/check-cycles.mjs
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = new URL('..', import.meta.url).pathname;
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.ts')) files.push(path);
  }
};
for (const pkg of readdirSync(join(root, 'packages'))) walk(join(root, 'packages', pkg, 'src'));

/** Relative imports of a file (static, dynamic and type-only), resolved to the .ts sources. */
const graph = new Map(
  files.map((file) => {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = importedFiles
      .map((f) => f.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
    return [file, targets.filter((t) => files.includes(t))];
  }),
);

const cycles = [];
const state = new Map(); // file → 'open' while on the path, 'done' once explored
const visit = (file, path) => {
  if (state.get(file) === 'done') return;
  if (state.get(file) === 'open') {
    cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(root, f)).join(' → '));
    return;
  }
  state.set(file, 'open');
  for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
  state.set(file, 'done');
};
for (const file of files) visit(file, []);

if (cycles.length > 0) {
  console.error(`import cycles (type-only imports count):\n  ${cycles.join('\n  ')}`);
  process.exit(1);
}
console.log(`no import cycles among ${files.length} source files`);
