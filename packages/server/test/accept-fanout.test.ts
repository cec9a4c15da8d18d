/**
 * Accepting more than one connection per event-loop turn (`acceptPerTurn`, net/accept-fanout.ts):
 * real sockets against a server whose turns are made long by a busy loop, as a loaded node's are;
 * a real node that serves WebSocket clients through the extra handles and lets go of its port.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import pino from 'pino';
import { createServer, closeServer, listen } from '../src/http/server-kit.js';
import { TestClient, sleep, startNode, token } from './helpers.js';
import { eventually } from './support/eventually.js';

const log = pino({ level: 'silent' });
const PENDING = 60;

/** Connections accepted while each event-loop turn is held busy for 100 ms, with `acceptPerTurn`. */
async function acceptedPerTurn(acceptPerTurn: number): Promise<{ accepted: number; turns: number }> {
  const server = createServer({ handshakeTimeoutMs: 5000 }, async (_req, res) => void res.end('ok'), log);
  const { port } = await listen(server, 0, '127.0.0.1', false, { acceptPerTurn, log });
  // The extra handles join in the background, once the helper has sent the descriptors back.
  await eventually(() => descriptors(port) === acceptPerTurn, { timeoutMs: 15_000, intervalMs: 50, message: 'the accept handles' });
  let accepted = 0;
  server.on('connection', () => accepted++);
  const sockets: Socket[] = [];
  let turns = 0;
  await new Promise<void>((resolve) => {
    const busy = setInterval(() => {
      // The connections are made in the first busy turn: the kernel completes them while this
      // process is busy, and each later turn's poll accepts what its handles allow.
      if (turns === 0) for (let i = 0; i < PENDING; i++) sockets.push(connect(port, '127.0.0.1').on('error', () => undefined));
      const until = Date.now() + 100;
      while (Date.now() < until);
      if (++turns === 6) {
        clearInterval(busy);
        resolve();
      }
    }, 0);
  });
  // The first turn only made the connections.
  turns -= 1;
  const result = { accepted, turns };
  for (const s of sockets) s.destroy();
  await closeServer(server);
  return result;
}

/** Descriptors of this process on the listening socket of `port`. */
function descriptors(port: number): number {
  const line = execFileSync('ss', ['-Hltnp', `( sport = :${port} )`], { encoding: 'utf8' });
  return (line.match(new RegExp(`pid=${process.pid},`, 'g')) ?? []).length;
}

/** Resolves with true when a TCP connection to `port` is accepted, false when it is refused. */
function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

describe('accepting per event-loop turn', () => {
  it('takes one connection per turn with one handle (Node 20), several with acceptPerTurn 8', async () => {
    const one = await acceptedPerTurn(1);
    const eight = await acceptedPerTurn(8);
    assert.ok(one.accepted <= one.turns + 1, `one handle: ${one.accepted} accepted in ${one.turns} turns`);
    assert.ok(eight.accepted >= 4 * eight.turns, `eight handles: ${eight.accepted} accepted in ${eight.turns} turns`);
  });

  it('a node with the default serves WebSocket clients through every handle, and frees its port when it stops', async () => {
    const node = await startNode();
    assert.equal(node.node.options.acceptPerTurn, 8);
    await sleep(500);
    const clients = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const c = new TestClient(`${node.wsUrl}?token=${await token(`fan${i}`)}`);
        await c.next((f) => f.type === 'welcome');
        return c;
      }),
    );
    await clients[0]!.request({ type: 'send', to: 'fan39', topic: 't', data: 1 });
    assert.equal((await clients[39]!.next((f) => f.type === 'message')).data, 1);
    const port = Number(new URL(node.url).port);
    await node.stop();
    // Every handle is closed: nothing accepts on the port any more.
    assert.equal(await connects(port), false);
    await Promise.all(clients.map((c) => c.closed));
  });
});
