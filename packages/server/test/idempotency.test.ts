/**
 * Idempotency keys on `send`/`publish` (docs/protocol.md §3, extension of protocol v1): a repeat of
 * the same key from the same sender within the window is not delivered again and is answered with
 * the original position, so a client may resend after a lost reply without duplicating.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { api, nodeFixture, sleep } from './helpers.js';

describe('idempotency keys', () => {
  const fx = nodeFixture({ idempotencyWindowMs: 1500 });

  it('a repeated send with the same key is answered with the original offset and delivered once', async () => {
    const alice = await fx.connect('alice1');
    const bob = await fx.connect('bob1');
    const first = await alice.request({ type: 'send', to: 'bob1', topic: 'chat', data: 'once', key: 'k-1' });
    const again = await alice.request({ type: 'send', to: 'bob1', topic: 'chat', data: 'once', key: 'k-1' });
    assert.deepEqual({ ok: first.ok, duplicate: first.duplicate }, { ok: true, duplicate: undefined });
    assert.deepEqual(
      { epoch: again.epoch, offset: again.offset, duplicate: again.duplicate },
      { epoch: first.epoch, offset: first.offset, duplicate: true },
    );
    const marker = await alice.request({ type: 'send', to: 'bob1', topic: 'chat', data: 'marker' });
    await bob.next((f) => f.type === 'message' && f.data === 'marker');
    assert.deepEqual(
      bob.messages().map((m) => [m.data, m.offset]),
      [
        ['once', first.offset],
        ['marker', marker.offset],
      ],
    );
  });

  it('keys are per sender: the same key from two users publishes twice', async () => {
    const a = await fx.connect('a2', { groups: ['g2'] });
    const b = await fx.connect('b2', { groups: ['g2'] });
    const ra = await a.request({ type: 'publish', channel: 'group:g2', topic: 't', data: 'from a', key: 'same' });
    const rb = await b.request({ type: 'publish', channel: 'group:g2', topic: 't', data: 'from b', key: 'same' });
    assert.equal(rb.duplicate, undefined);
    assert.equal(rb.offset, ra.offset + 1);
    await a.waitMessages(2, 'group:g2');
  });

  it('a key is forgotten after the window', async () => {
    const alice = await fx.connect('alice3');
    const first = await alice.request({ type: 'send', to: 'alice3', topic: 't', data: 1, key: 'late' });
    await sleep(1700);
    const later = await alice.request({ type: 'send', to: 'alice3', topic: 't', data: 1, key: 'late' });
    assert.equal(later.duplicate, undefined);
    assert.equal(later.offset, first.offset + 1);
  });

  it('POST /v1/publish accepts a key with the same guarantee', async () => {
    const carol = await fx.connect('carol4');
    const body = { channel: 'user:carol4', topic: 't', data: 'api', key: 'backend-42' };
    const first = await api(fx.node, 'POST', '/v1/publish', body);
    const again = await api(fx.node, 'POST', '/v1/publish', body);
    assert.equal(first.status, 200);
    assert.deepEqual(again.body, { channel: 'user:carol4', epoch: first.body.epoch, offset: first.body.offset, duplicate: true });
    await carol.request({ type: 'send', to: 'carol4', topic: 't', data: 'marker' });
    await carol.next((f) => f.type === 'message' && f.data === 'marker');
    assert.equal(carol.messages().filter((m) => m.data === 'api').length, 1);
    assert.equal((await api(fx.node, 'POST', '/v1/publish', { ...body, key: '' })).status, 400);
  });

  it('a key that is not a 1-128 character string is bad_frame', async () => {
    const alice = await fx.connect('alice5');
    for (const key of ['', 'x'.repeat(129), 7, null]) {
      const reply = await alice.request({ type: 'send', to: 'alice5', topic: 't', key });
      assert.equal(reply.error?.code, 'bad_frame', JSON.stringify(key));
    }
  });
});
