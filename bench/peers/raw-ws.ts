/**
 * The raw `ws` peer: the least a server can do on the socket library Switchboard uses. Rooms are
 * sets of sockets; a publication is serialised once and `send` is called with that one string for
 * each socket. No auth, no history, no limits, no presence: the practical ceiling of `ws` itself.
 *
 * Usage: node --import tsx bench/peers/raw-ws.ts --port 0 [--host 127.0.0.1]
 * Prints `listening <port>` once it accepts connections.
 *
 * Client URL `ws://host:port/?user=<id>&room=<id>`; client frames:
 *   {"op":"pub","room":"<id>"|"*","data":…}   to the room's sockets (or every socket), sender included
 *   {"op":"to","to":"<user>","data":…}         to every socket of that user
 * Every socket receives {"type":"message","room":…,"from":…,"data":…}.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';
import { peerArgs } from './args.js';

const args = peerArgs(process.argv.slice(2));
const all = new Set<WebSocket>();
const rooms = new Map<string, Set<WebSocket>>();
const users = new Map<string, Set<WebSocket>>();

function join(map: Map<string, Set<WebSocket>>, key: string, ws: WebSocket): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(ws);
}

function leave(map: Map<string, Set<WebSocket>>, key: string, ws: WebSocket): void {
  const set = map.get(key);
  if (set && set.delete(ws) && set.size === 0) map.delete(key);
}

function broadcast(set: Set<WebSocket> | undefined, frame: string): void {
  if (!set) return;
  for (const ws of set) if (ws.readyState === WebSocket.OPEN) ws.send(frame);
}

const wss = new WebSocketServer({
  host: args.get('host') ?? '127.0.0.1',
  port: Number(args.get('port') ?? 0),
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: 65_536,
});

wss.on('connection', (ws, req) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const user = url.searchParams.get('user') ?? '';
  const room = url.searchParams.get('room');
  all.add(ws);
  join(users, user, ws);
  if (room) join(rooms, room, ws);
  ws.on('message', (data: Buffer) => {
    let msg: { op?: string; room?: string; to?: string; data?: unknown };
    try {
      msg = JSON.parse(data.toString('utf8')) as typeof msg;
    } catch {
      return;
    }
    if (msg.op === 'pub' && typeof msg.room === 'string') {
      const frame = JSON.stringify({ type: 'message', room: msg.room, from: user, data: msg.data });
      broadcast(msg.room === '*' ? all : rooms.get(msg.room), frame);
    } else if (msg.op === 'to' && typeof msg.to === 'string') {
      broadcast(users.get(msg.to), JSON.stringify({ type: 'message', room: null, from: user, data: msg.data }));
    }
  });
  ws.on('error', () => undefined);
  ws.on('close', () => {
    all.delete(ws);
    leave(users, user, ws);
    if (room) leave(rooms, room, ws);
  });
});

wss.on('listening', () => {
  process.stdout.write(`listening ${(wss.address() as AddressInfo).port}\n`);
});

const stop = () => {
  for (const ws of all) ws.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
