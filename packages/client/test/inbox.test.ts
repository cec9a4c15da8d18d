/**
 * The SDK on a node with the inbox on: acks sent by themselves once the app's listener returned
 * (so the next device starts after them), `send(…, { receipt: true })` and the `receipt` event,
 * `inbox()`, and `acks: 'manual'` with `ack()`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Message, Receipt } from '../src/index.js';
import { api, startNode, token, type TestNode } from '../../server/test/helpers.js';
import { closeClients, connectClient, createClient, nextEvent, sleep, until } from './helpers.js';

describe('SDK with the inbox on', () => {
  let node: TestNode;
  before(async () => (node = await startNode({ inbox: 'on' })));
  after(async () => {
    closeClients();
    await node.stop();
  });

  const wsUrl = () => node.wsUrl;

  it('acks what the app handled, so a new device gets only the rest; receipts come back as events', async () => {
    const { client: alice } = await connectClient(wsUrl(), () => token('alice-1'));
    const sent = await alice.send('bob-1', 'chat', { n: 1 }, { receipt: true });
    await alice.send('bob-1', 'chat', { n: 2 });

    const receipt = nextEvent(alice, 'receipt');
    // Listeners first, as an app does: the catch-up follows the welcome at once.
    const { client: bob } = createClient(wsUrl(), () => token('bob-1'));
    const seen: Message[] = [];
    bob.on('chat', (m) => void seen.push(m));
    await until(() => seen.length === 2, 'bob to see both messages');
    const got: Receipt = await receipt;
    assert.deepEqual(
      { channel: got.channel, epoch: got.epoch, offset: got.offset, user: got.user },
      { channel: 'user:bob-1', epoch: sent.epoch, offset: sent.offset, user: 'bob-1' },
      'the auto-ack sent alice her receipt',
    );
    await until(async () => (await api(node, 'GET', '/v1/inbox/bob-1')).body.acked === 2, 'the ack to be stored');
    assert.deepEqual(await bob.inbox(), { channel: 'user:bob-1', epoch: sent.epoch, offset: 2, acked: 2, unacked: 0 });

    await alice.send('bob-1', 'chat', { n: 3 });
    await until(() => seen.length === 3, 'the live message');
    bob.disconnect();

    const { client: laptop } = createClient(wsUrl(), () => token('bob-1'));
    const later: Message[] = [];
    laptop.on('chat', (m) => void later.push(m));
    await nextEvent(laptop, 'connected');
    await sleep(300);
    assert.deepEqual(
      later.map((m) => (m.data as { n: number }).n),
      [],
      'everything was acked after the app saw it',
    );
    // Alice's own inbox holds the receipt, acked by her SDK: her next device does not get it again.
    const { client: alice2 } = createClient(wsUrl(), () => token('alice-1'));
    const again: Receipt[] = [];
    alice2.events.on('receipt', (r) => void again.push(r));
    await nextEvent(alice2, 'connected');
    await sleep(300);
    assert.deepEqual(again, []);
  });

  it("leaves acks to the app with acks: 'manual'", async () => {
    const { client: alice } = await connectClient(wsUrl(), () => token('alice-2'));
    for (let n = 1; n <= 3; n++) await alice.send('bob-2', 'chat', { n });
    const { client: bob } = createClient(wsUrl(), () => token('bob-2'), { acks: 'manual' });
    const seen: Message[] = [];
    bob.on('chat', (m) => void seen.push(m));
    await until(() => seen.length === 3, 'the three messages');
    await sleep(150);
    assert.equal((await bob.inbox()).acked, 0, 'nothing acked by itself');
    await bob.ack(seen[1]!);
    assert.deepEqual(await bob.inbox(), { channel: 'user:bob-2', epoch: seen[0]!.epoch, offset: 3, acked: 2, unacked: 1 });
    await bob.ack();
    assert.equal((await bob.inbox()).unacked, 0, 'ack() with no message acks everything seen');
  });
});
