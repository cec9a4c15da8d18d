import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { CloseCode } from '@switchboard/protocol';
import { ERRORS } from '../src/errors.js';
import { NodeMetrics } from '../src/metrics.js';

const root = new URL('../../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

describe('docs', () => {
  it('docs/errors.md lists exactly the error catalog, with codes and statuses', () => {
    const doc = read('docs/errors.md');
    const rows = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], m[2], Number(m[3])]);
    const catalog = Object.entries(ERRORS).map(([name, spec]) => [name, spec.code, spec.status]);
    assert.deepEqual(rows, catalog);
  });

  it('docs/errors.md documents every close code of the protocol', () => {
    const doc = read('docs/errors.md');
    for (const code of Object.values(CloseCode)) assert.match(doc, new RegExp(`^\\| ${code} \\|`, 'm'), `close code ${code}`);
  });

  it('docs/operations.md lists exactly the metrics a node exposes', async () => {
    const doc = read('docs/operations.md');
    const documented = [...doc.matchAll(/^\| `(switchboard_[a-z_]+)(?:\{[a-z_,]+\})?` \|/gm)].map((m) => m[1]).sort();
    const metrics = new NodeMetrics('n', false);
    const exposed = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).sort();
    assert.deepEqual(documented, exposed);
    assert.match(doc, /^\| `switchboard_process_\*` \|/m, 'and the process metrics');
  });

  it('docs/config.md is the one generated from the option table', () => {
    execFileSync(process.execPath, [new URL('scripts/gen-config-doc.mjs', root).pathname, '--check'], { stdio: 'pipe' });
  });
});
