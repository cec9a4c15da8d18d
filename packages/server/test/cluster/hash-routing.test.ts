/**
 * `hash` routing: a user's messages go straight to the node that owns the user on the ring (one
 * pub/sub channel per node, no per-user subscription); when a node joins, exactly the sessions
 * whose owner changed are closed with 4000 and, resuming on their new owner, miss nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeResume } from '@switchboard/protocol';
import { HashRing } from '../../src/registry/hash-ring.js';
import WebSocket from 'ws';
import { Switchboard } from '../../../client/src/index.js';
import { TestClient, api, sleep, token } from '../helpers.js';
import { connectRedis, redisSkip } from '../redis-helpers.js';
import { Cluster, type NodeProcess } from './harness.js';

const USERS = Array.from({ length: 120 }, (_, i) => `u${i}`);

describe('hash routing', { skip: redisSkip }, () => {
  const cluster = new Cluster({ SWITCHBOARD_ROUTING: 'hash', SWITCHBOARD_MOVE_WINDOW_MS: '1000', SWITCHBOARD_PRESENCE_TTL_MS: '3000' });
  const byId = new Map<string, NodeProcess>();
  const clients = new Map<string, TestClient>();
  before(async () => {
    for (const n of await Promise.all(['h1', 'h2', 'h3'].map((id) => cluster.start(id)))) byId.set(n.id, n);
  });
  after(async () => {
    await Promise.all([...clients.values()].map((c) => c.close()));
    await cluster.stop();
  });

  it('serves each user on its owner with no per-user broker subscription', async () => {
    const ring = HashRing.from(['h1', 'h2', 'h3']);
    await sleep(300); // the nodes learn the ring from the registry
    for (const user of USERS) clients.set(user, await TestClient.connect(byId.get(ring.nodeFor(user)!)!, user));
    const redis = await connectRedis();
    try {
      const perUser = (await redis.pubsub('CHANNELS', `${cluster.prefix}{ch:user:*`)) as string[];
      assert.deepEqual(perUser, [], 'owners receive their users on their node channel');
      const perNode = ((await redis.pubsub('CHANNELS', `${cluster.prefix}{node:*`)) as string[]).sort();
      assert.deepEqual(
        perNode,
        ['h1', 'h2', 'h3'].map((id) => `${cluster.prefix}{node:${id}}`),
      );
    } finally {
      redis.disconnect();
    }
    for (const user of USERS.slice(0, 30))
      await api(byId.get('h1')!, 'POST', '/v1/publish', { channel: `user:${user}`, topic: 't', data: 'hello' });
    for (const user of USERS.slice(0, 30)) assert.equal((await clients.get(user)!.waitMessages(1))[0]!.data, 'hello');
  });

  it('GET /v1/route answers a client its own owner with its own token, and the SDK connects there (directConnect)', async () => {
    const ring = HashRing.from(['h1', 'h2', 'h3']);
    const user = USERS.find((u) => ring.nodeFor(u) !== 'h1')!;
    const jwt = await token(user);
    const h1 = byId.get('h1')!;
    const own = await fetch(`${h1.url}/v1/route`, { headers: { authorization: `Bearer ${jwt}` } });
    assert.deepEqual(await own.json(), { user, node: ring.nodeFor(user), url: byId.get(ring.nodeFor(user)!)!.url });
    assert.equal((await fetch(`${h1.url}/v1/route?user=someone-else`, { headers: { authorization: `Bearer ${jwt}` } })).status, 403);
    assert.equal((await fetch(`${h1.url}/v1/route?user=${user}`)).status, 401);
    const client = new Switchboard(h1.wsUrl, { token: jwt, WebSocket: WebSocket as never, directConnect: true });
    try {
      const welcome = await new Promise<{ node: string }>((resolve) => client.events.on('connected', resolve));
      assert.equal(welcome.node, ring.nodeFor(user), 'connected to the owner, not to the URL it was given');
    } finally {
      client.disconnect();
    }
  });

  it('a fourth node moves exactly the users it now owns, and nothing published meanwhile is lost', async () => {
    const before = HashRing.from(['h1', 'h2', 'h3']);
    const afterRing = HashRing.from(['h1', 'h2', 'h3', 'h4']);
    const expectedMoved = USERS.filter((u) => afterRing.nodeFor(u) === 'h4');
    assert.ok(
      USERS.every((u) => afterRing.nodeFor(u) === 'h4' || afterRing.nodeFor(u) === before.nodeFor(u)),
      'only keys going to h4 change owner',
    );

    // Publish to every user throughout the move.
    let publishing = true;
    let sent = 0;
    const publisher = (async () => {
      while (publishing) {
        for (const user of USERS) {
          const res = await api(byId.get('h1')!, 'POST', '/v1/publish', { channel: `user:${user}`, topic: 't', data: sent });
          assert.equal(res.status, 200);
        }
        sent++;
        await sleep(20);
      }
    })();

    const h4 = await cluster.start('h4');
    byId.set('h4', h4);
    // Each moved session is closed with 4000 within the window; it reconnects to its new owner and resumes.
    const closedWith4000 = new Set<string>();
    const resumed: Promise<void>[] = [];
    for (const [user, client] of clients) {
      resumed.push(
        client.closed.then(async ({ code }) => {
          if (code !== 4000) return;
          closedWith4000.add(user);
          const positions = {
            [`user:${user}`]: { epoch: client.messages().at(-1)!.epoch as string, offset: client.messages().at(-1)!.offset as number },
          };
          const next = await TestClient.connect(h4, user, {}, `&resume=${encodeResume(positions)}`);
          assert.equal(next.frames[0]!.subscriptions[`user:${user}`].recovered, true);
          next.frames.unshift(...client.messages());
          clients.set(user, next);
        }),
      );
    }
    await sleep(3000); // the registry notices h4, the ring changes, the 1 s move window passes
    publishing = false;
    await publisher;

    assert.deepEqual([...closedWith4000].sort(), [...expectedMoved].sort(), 'exactly the sessions whose owner changed');
    const fraction = expectedMoved.length / USERS.length;
    assert.ok(Math.abs(fraction - 1 / 4) < 0.12, `moved fraction ${fraction.toFixed(3)} close to 1/4`);
    await Promise.race([Promise.all(resumed), sleep(5000)]);

    // Every user got every offset once, in order, whether it moved or not.
    for (const user of USERS) {
      const client = clients.get(user)!;
      // One message per publishing round, plus the first test's 'hello' for the first 30 users.
      const want = sent + (USERS.indexOf(user) < 30 ? 1 : 0);
      const got = await client.waitMessages(want, `user:${user}`, 8000).catch((err: Error) => {
        const seen = client.messages(`user:${user}`).map((m) => m.offset);
        throw new Error(
          `${user} (moved: ${closedWith4000.has(user)}, owner ${before.nodeFor(user)} -> ${afterRing.nodeFor(user)}): ${err.message}; offsets ${seen.join(',')}`,
        );
      });
      const offsets = got.map((m) => m.offset as number);
      assert.deepEqual(
        offsets,
        Array.from({ length: want }, (_, i) => i + 1),
        `${user}: every offset once, in order`,
      );
    }
  });
});
