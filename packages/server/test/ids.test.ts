/**
 * uniqueIds: ids that never repeat, within a source and between sources (two processes, or a
 * process and its restart), in the characters the wire format allows in an epoch.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueIds } from '../src/ids.js';

describe('uniqueIds', () => {
  it('never gives the same id twice, and two sources never share one', () => {
    const a = uniqueIds('s-');
    const b = uniqueIds('s-');
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      seen.add(a());
      seen.add(b());
    }
    assert.equal(seen.size, 20_000);
  });

  it('gives base64url ids with the prefix, short enough for an epoch (64 characters)', () => {
    const next = uniqueIds('s-');
    for (let i = 0; i < 1000; i++) next();
    const id = next();
    assert.match(id, /^s-[A-Za-z0-9_-]+$/);
    assert.ok(id.length <= 64, id);
    assert.doesNotMatch(uniqueIds()(), /\|/);
  });
});
