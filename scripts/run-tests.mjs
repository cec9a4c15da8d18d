#!/usr/bin/env node
// Runs every *.test.ts under packages/*/test with node's test runner (TypeScript through tsx).
// Usage: node scripts/run-tests.mjs [filter]  — a filter keeps the files whose path contains it.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filter = process.argv[2];
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.test.ts') && (!filter || path.includes(filter))) files.push(path);
  }
}
for (const pkg of readdirSync(join(root, 'packages'))) {
  const dir = join(root, 'packages', pkg, 'test');
  if (existsSync(dir)) walk(dir);
}
if (files.length === 0) {
  console.error(`no test files${filter ? ` matching "${filter}"` : ''}`);
  process.exit(1);
}
const args = ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=120000', '--test-reporter=spec', ...files.sort()];
const result = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root });
process.exit(result.status ?? 1);
