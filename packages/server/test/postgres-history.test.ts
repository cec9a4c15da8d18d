/**
 * PostgresHistory beyond the contract: the appends of one turn go in one batch, sorted by channel
 * so that two nodes' batches never deadlock, and every channel's offsets stay dense; retention is
 * enforced in the database by the sweep.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { PostgresHistory } from '../src/history/postgres-history.js';
import { eventually } from './support/eventually.js';
import { PG_HOST, PG_PORT, PostgresDatabase, postgresSkip } from './support/postgres.js';

/** A TCP relay to PostgreSQL that can refuse and cut every connection (the database going away). */
async function relay(): Promise<{ port: number; down(): void; up(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) return void client.destroy();
    const upstream = connect(PG_PORT, PG_HOST);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    down() {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    up() {
      refusing = false;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const LIMITS = { historySize: 1000, historyTtlMs: 300_000, historyMetaTtlMs: 86_400_000 };

describe('PostgresHistory', { skip: postgresSkip }, () => {
  const db = new PostgresDatabase();
  const opened: PostgresHistory[] = [];
  before(() => db.create());
  after(async () => {
    await Promise.all(opened.map((h) => h.close()));
    await db.drop();
  });
  const open = (extra: Partial<ConstructorParameters<typeof PostgresHistory>[0]> = {}) => {
    const h = new PostgresHistory({ pool: db.pool(), ...LIMITS, ...extra });
    opened.push(h);
    return h;
  };

  it('keeps offsets dense per channel when two nodes append to many channels in batches at once, keys included', async () => {
    const [a, b] = [open(), open()];
    const channels = ['group:c1', 'group:c2', 'group:c3', 'group:c4', 'group:c5'];
    // Each side's appends in a different channel order, in one turn each: the lock orders would cross.
    const calls = Array.from({ length: 400 }, (_, i) => {
      const h = i % 2 ? a : b;
      const channel = channels[(i % 2 ? i : 399 - i) % channels.length]!;
      const input = { from: 'u', topic: 't', data: i, ts: Date.now() };
      return i % 7 === 0 ? h.appendOnce(channel, input, `k${i % 3}`) : h.append(channel, input);
    });
    const results = await Promise.all(calls);
    const byChannel = new Map<string, number[]>();
    for (const r of results) {
      if ('duplicate' in r && r.duplicate) continue;
      const pub = 'pub' in r ? r.pub : r;
      byChannel.set(pub.channel, [...(byChannel.get(pub.channel) ?? []), pub.offset]);
    }
    for (const [channel, offsets] of byChannel) {
      offsets.sort((x, y) => x - y);
      assert.deepEqual(
        offsets,
        Array.from({ length: offsets.length }, (_, i) => i + 1),
        `${channel}: dense`,
      );
      assert.equal((await a.position(channel)).offset, offsets.length);
    }
  });

  it('deletes what is past its age in the database, ordinary channels and inboxes each by their own limit', async () => {
    const h = open({ historyTtlMs: 10_000, inbox: { size: 100, ttlMs: 60_000 } });
    const now = Date.now();
    await h.append('group:old', { from: null, topic: 't', data: 1, ts: now - 30_000 });
    await h.append('user:kept', { from: null, topic: 't', data: 1, ts: now - 30_000 });
    await h.sweep();
    const { rows } = await db
      .pool()
      .query<{ channel: string }>("SELECT channel FROM switchboard_messages WHERE channel IN ('group:old', 'user:kept') ORDER BY channel");
    assert.deepEqual(
      rows.map((r) => r.channel),
      ['user:kept'],
      'the group message is past 10 s, the inbox message within 60 s',
    );
  });

  it('is not ready while the database is away, and ready again once it is back, with no traffic meanwhile', async () => {
    const link = await relay();
    const pool = new pg.Pool({ connectionString: db.url.replace(`:${PG_PORT}/`, `:${link.port}/`), connectionTimeoutMillis: 1000 });
    pool.on('error', () => undefined);
    const h = new PostgresHistory({ pool, ...LIMITS });
    try {
      await h.append('group:away', { from: null, topic: 't', data: 1, ts: Date.now() });
      assert.equal(h.ready, true);
      link.down();
      await assert.rejects(h.append('group:away', { from: null, topic: 't', data: 2, ts: Date.now() }));
      assert.equal(h.ready, false, 'not ready (so /readyz says 503)');
      link.up();
      await eventually(() => h.ready, { timeoutMs: 5000, message: 'ready again by itself' });
      assert.equal((await h.position('group:away')).offset, 1, 'nothing of the failed append was kept');
    } finally {
      await h.close();
      await pool.end();
      await link.close();
    }
  });
});
