import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient, api, startNode, type TestNode } from './helpers.js';

describe('hot path', () => {
  let node: TestNode;
  before(async () => (node = await startNode()));
  after(() => node.stop());

  it('serialises a publication once, however many sessions receive it', async () => {
    const clients = await Promise.all(Array.from({ length: 40 }, (_, i) => TestClient.connect(node, `u${i}`, { groups: ['fan'] })));
    const marker = `marker-${Math.random()}`;
    const original = JSON.stringify;
    let serialisations = 0;
    JSON.stringify = ((value: unknown, ...rest: unknown[]) => {
      const text = (original as (v: unknown, ...r: unknown[]) => string)(value, ...rest);
      if (typeof text === 'string' && text.includes(marker)) serialisations++;
      return text;
    }) as typeof JSON.stringify;
    try {
      const res = await api(node, 'POST', '/v1/publish', { channel: 'group:fan', topic: 't', data: { marker } });
      assert.equal(res.status, 200);
      await Promise.all(clients.map((c) => c.next((f) => f.type === 'message' && f.data?.marker === marker)));
    } finally {
      JSON.stringify = original;
    }
    // The API client's own request body is one; the node's message frame is the other.
    assert.equal(serialisations, 2, 'one serialisation for the HTTP body in this test, one for all 40 recipients');
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    const delivered = Number(/^switchboard_messages_delivered_total\{node="n-test"\} (\d+)/m.exec(metrics)?.[1]);
    assert.equal(delivered, 40, 'the delivered counter counts every frame written');
    await Promise.all(clients.map((c) => c.close()));
  });
});
