/**
 * The Socket.IO peer: one node, or one of several on `@socket.io/redis-adapter` (the common answer
 * to "my users are on different servers"). WebSocket transport only; everything else is Socket.IO's
 * defaults.
 *
 * Usage: node --import tsx bench/peers/socketio.ts --port 0 [--host 127.0.0.1] [--redis redis://… --key <prefix>]
 * Prints `listening <port>` once it accepts connections.
 *
 * Handshake query `user` and `room`; events from clients:
 *   pub {room: "<id>"|"*", data}   to the room (or every socket of every node), sender included
 *   to  {to: "<user>", data}       to every socket of that user, on whichever node
 * Sockets receive event `m` with `data`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { peerArgs } from './args.js';

const args = peerArgs(process.argv.slice(2));
const http = createServer();
const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
const redisUrl = args.get('redis');
const clients: Redis[] = [];
if (redisUrl) {
  const pub = new Redis(redisUrl, { lazyConnect: false });
  const sub = pub.duplicate();
  clients.push(pub, sub);
  io.adapter(createAdapter(pub, sub, { key: args.get('key') ?? 'socket.io' }));
}

interface Outgoing {
  room?: string;
  to?: string;
  data?: unknown;
}

io.on('connection', (socket) => {
  const query = socket.handshake.query as Record<string, string | undefined>;
  void socket.join(`u:${query.user ?? ''}`);
  if (query.room) void socket.join(`r:${query.room}`);
  socket.on('pub', (m: Outgoing) => {
    if (m?.room === '*') io.emit('m', m.data);
    else if (typeof m?.room === 'string') io.to(`r:${m.room}`).emit('m', m.data);
  });
  socket.on('to', (m: Outgoing) => {
    if (typeof m?.to === 'string') io.to(`u:${m.to}`).emit('m', m.data);
  });
});

http.listen(Number(args.get('port') ?? 0), args.get('host') ?? '127.0.0.1', () => {
  process.stdout.write(`listening ${(http.address() as AddressInfo).port}\n`);
});

const stop = () => {
  void io.close();
  for (const c of clients) c.disconnect();
  setTimeout(() => process.exit(0), 500).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
