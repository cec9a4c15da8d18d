/**
 * The Registry contract: what every registry backend must do, run against each of them from
 * registry.contract.test.ts. A backend is given as a harness that opens registry instances as the
 * nodes of one cluster would have them (the memory backend hands out its one shared instance).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeInfo, Registry } from '../../src/registry/registry.js';
import { eventually as retry } from '../support/eventually.js';

/** One cluster's registry backend for a test. */
export interface RegistryHarness {
  /** A registry instance as one node of the cluster has it. */
  open(): Promise<Registry>;
  /** Closes every instance and deletes what the backend stored. */
  cleanup(): Promise<void>;
}

/**
 * Polls `read` until `pred` holds and resolves with that value; fails naming `what` and the last
 * value read after `timeoutMs`. The read-and-test form of support/eventually.ts, kept here under
 * this name because the broker contract and its tests import it from this module; new tests use
 * `eventually` from support/eventually.ts directly.
 */
export async function eventually<T>(read: () => T | Promise<T>, pred: (value: T) => boolean, what: string, timeoutMs = 5000): Promise<T> {
  // Boxed, because the value may be `false` (a `ready` flag awaited to drop), which support's
  // eventually reads as "not yet"; a read that throws fails at once, not after the timeout.
  const outcome = await retry(
    async (): Promise<{ value: T } | { error: unknown }> => {
      let value: T;
      try {
        value = await read();
      } catch (error) {
        return { error };
      }
      assert.ok(pred(value), `last value ${JSON.stringify(value)}`);
      return { value };
    },
    { timeoutMs, message: what },
  );
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}

function info(node: string, connections = 0): NodeInfo {
  return { node, url: `http://127.0.0.1:${node.length + 9000}`, connections, startedAt: 1_732_370_000_000 };
}

const ids = (nodes: NodeInfo[]): string[] => nodes.map((n) => n.node);

/** Registers the registry contract tests (call inside a `describe`). */
export function registryContract(makeHarness: () => Promise<RegistryHarness>): void {
  async function withHarness(fn: (h: RegistryHarness) => Promise<void>): Promise<void> {
    const h = await makeHarness();
    try {
      await fn(h);
    } finally {
      await h.cleanup();
    }
  }

  it('lists a registered node with its info on every instance', () =>
    withHarness(async (h) => {
      const a = await h.open();
      const b = await h.open();
      await a.register(info('n1', 3));
      assert.deepEqual(await a.nodes(), [info('n1', 3)]);
      assert.deepEqual(await b.nodes(), [info('n1', 3)]);
    }));

  it('lists the nodes of several instances sorted by id', () =>
    withHarness(async (h) => {
      const a = await h.open();
      const b = await h.open();
      await a.register(info('node-b'));
      await b.register(info('node-a'));
      await a.register(info('node-c'));
      assert.deepEqual(ids(await a.nodes()), ['node-a', 'node-b', 'node-c']);
      assert.deepEqual(ids(await b.nodes()), ['node-a', 'node-b', 'node-c']);
    }));

  it('shows the connections of an update on every instance', () =>
    withHarness(async (h) => {
      const a = await h.open();
      const b = await h.open();
      await a.register(info('n1', 0));
      await a.update(info('n1', 42));
      assert.deepEqual(await b.nodes(), [info('n1', 42)]);
    }));

  it('does not list a node that was updated but never registered', () =>
    withHarness(async (h) => {
      const a = await h.open();
      await a.update(info('ghost', 5));
      assert.deepEqual(await a.nodes(), []);
    }));

  it('removes a closed node and gives listeners the list without it', () =>
    withHarness(async (h) => {
      const a = await h.open();
      const observer = await h.open();
      const seen: string[][] = [];
      observer.onChange((nodes) => seen.push(ids(nodes)));
      await a.register(info('n1'));
      await eventually(
        () => seen,
        (s) => s.some((l) => l.includes('n1')),
        'a list with n1',
      );
      await a.close();
      await eventually(
        () => seen,
        (s) => s.length > 0 && s[s.length - 1]!.length === 0,
        'an empty list after close',
      );
      assert.deepEqual(await observer.nodes(), []);
    }));

  it('stops calling a listener after its unsubscribe function runs', () =>
    withHarness(async (h) => {
      const a = await h.open();
      const removed: unknown[] = [];
      const kept: string[][] = [];
      const off = a.onChange((nodes) => removed.push(nodes));
      off();
      a.onChange((nodes) => kept.push(ids(nodes)));
      await a.register(info('n1'));
      await eventually(
        () => kept,
        (s) => s.some((l) => l.includes('n1')),
        'the kept listener to see n1',
      );
      assert.deepEqual(removed, []);
    }));

  it('is ready while open, not after close, and close is idempotent', () =>
    withHarness(async (h) => {
      const a = await h.open();
      await a.register(info('n1'));
      assert.equal(a.ready, true);
      await a.close();
      await a.close();
      assert.equal(a.ready, false);
    }));
}
