/**
 * One load-generator client per simulated user, over the library a user of that system would use:
 * `ws` for Switchboard (protocol v1, JSON text frames) and for the raw ws peer, `socket.io-client`
 * for Socket.IO. All three carry the same payload, `{"s":<seq>,"t":<µs>}`, so one receive path
 * measures them all.
 */
import WebSocket from 'ws';
import { io, type Socket } from 'socket.io-client';
import type { ClientKind, ClientSpec } from './protocol.js';

/** Called for every bench message a client receives: its sequence number and send time (µs). */
export type DeliveryHandler = (client: BenchClient, s: number, t: number) => void;

/** What the scenarios need of a client, whatever system it talks to. */
export interface BenchClient {
  readonly spec: ClientSpec;
  /** Resolves when the client is usable (Switchboard: `welcome`; ws: open; Socket.IO: `connect`). */
  readonly ready: Promise<void>;
  /** True from ready until closed. */
  readonly isOpen: boolean;
  /** Publishes to everyone (`room` `*`) or to a group. */
  publish(room: string, s: number, t: number): void;
  /** Sends to every connection of one user. */
  sendTo(user: string, s: number, t: number): void;
  close(): void;
}

/** Callbacks a client reports to. */
export interface ClientHooks {
  onDelivery: DeliveryHandler;
  /** The server sent an `error` frame. */
  onServerError: (client: BenchClient) => void;
  /** Closed after becoming ready (not by `close()`). */
  onDrop: (client: BenchClient, reason: string) => void;
}

/** Opens a client of `kind`; `token` is required for Switchboard. */
export function openClient(
  kind: ClientKind,
  spec: ClientSpec,
  hooks: ClientHooks,
  opts: { token?: string; batch: boolean; timeoutMs: number },
): BenchClient {
  return kind === 'socketio' ? new SocketIoClient(spec, hooks, opts.timeoutMs) : new WsClient(kind, spec, hooks, opts);
}

const PAYLOAD_KEY = Buffer.from('{"s":');
const ERROR_MARK = Buffer.from('"type":"error"');
const WELCOME_MARK = Buffer.from('"type":"welcome"');

/**
 * Reads every `{"s":N,"t":M}` in a text frame without parsing it: a Switchboard frame may batch
 * several messages (`?batch=1`), and a full JSON.parse per message would make the load generator,
 * which shares the machine's two cores with the servers, the bottleneck.
 */
export function scanPayloads(buf: Buffer, found: (s: number, t: number) => void): number {
  let n = 0;
  let i = buf.indexOf(PAYLOAD_KEY);
  while (i >= 0) {
    let j = i + PAYLOAD_KEY.length;
    let s = 0;
    for (let c = buf[j]; c !== undefined && c >= 48 && c <= 57; c = buf[++j]) s = s * 10 + (c - 48);
    // `,"t":` follows the sequence number.
    j += 5;
    let t = 0;
    for (let c = buf[j]; c !== undefined && ((c >= 48 && c <= 57) || c === 46); c = buf[++j]) {
      if (c === 46) {
        // A fractional part: skip it (µs resolution is plenty).
        for (c = buf[++j]; c !== undefined && c >= 48 && c <= 57; c = buf[++j]);
        break;
      }
      t = t * 10 + (c - 48);
    }
    found(s, t);
    n++;
    i = buf.indexOf(PAYLOAD_KEY, j);
  }
  return n;
}

/** Serialises the bench payload; integers only, so every system re-serialises it byte for byte. */
function payload(s: number, t: number): string {
  return `{"s":${s},"t":${Math.round(t)}}`;
}

class WsClient implements BenchClient {
  readonly ready: Promise<void>;
  isOpen = false;
  private readonly ws: WebSocket;
  private closing = false;

  constructor(
    private readonly kind: 'switchboard' | 'raw',
    readonly spec: ClientSpec,
    hooks: ClientHooks,
    opts: { token?: string; batch: boolean; timeoutMs: number },
  ) {
    let url: string;
    if (kind === 'switchboard') {
      url = `${spec.url}/ws?token=${opts.token ?? ''}${opts.batch ? '&batch=1' : ''}`;
    } else {
      url = `${spec.url}/?user=${encodeURIComponent(spec.user)}${spec.group ? `&room=${encodeURIComponent(spec.group)}` : ''}`;
    }
    this.ws = new WebSocket(url, { localAddress: spec.localAddress, perMessageDeflate: false, handshakeTimeout: opts.timeoutMs });
    let resolveReady!: () => void;
    let rejectReady!: (err: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    // A client that never becomes usable is an error, not a hang.
    const timer = setTimeout(() => {
      if (this.isOpen) return;
      rejectReady(new Error(`not ready within ${opts.timeoutMs} ms`));
      this.ws.terminate();
    }, opts.timeoutMs);
    const becomeReady = () => {
      clearTimeout(timer);
      this.isOpen = true;
      resolveReady();
    };
    if (kind === 'raw') this.ws.on('open', becomeReady);
    this.ws.on('message', (data: Buffer) => {
      if (!this.isOpen) {
        if (data.indexOf(WELCOME_MARK) >= 0) becomeReady();
        else return;
      }
      const n = scanPayloads(data, (s, t) => hooks.onDelivery(this, s, t));
      if (n === 0 && data.indexOf(ERROR_MARK) >= 0) hooks.onServerError(this);
    });
    this.ws.on('error', (err) => {
      clearTimeout(timer);
      rejectReady(err);
    });
    this.ws.on('close', (code, reason) => {
      clearTimeout(timer);
      const why = `closed ${code}${reason.length ? ` ${reason.toString()}` : ''}`;
      if (this.isOpen && !this.closing) hooks.onDrop(this, why);
      this.isOpen = false;
      rejectReady(new Error(why));
    });
  }

  publish(room: string, s: number, t: number): void {
    if (this.kind === 'switchboard') {
      const channel = room === '*' ? 'broadcast' : `group:${room}`;
      this.ws.send(`{"type":"publish","channel":"${channel}","topic":"bench","data":${payload(s, t)}}`);
    } else {
      this.ws.send(`{"op":"pub","room":"${room}","data":${payload(s, t)}}`);
    }
  }

  sendTo(user: string, s: number, t: number): void {
    if (this.kind === 'switchboard') this.ws.send(`{"type":"send","to":"${user}","topic":"bench","data":${payload(s, t)}}`);
    else this.ws.send(`{"op":"to","to":"${user}","data":${payload(s, t)}}`);
  }

  close(): void {
    this.closing = true;
    this.isOpen = false;
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.terminate();
  }
}

class SocketIoClient implements BenchClient {
  readonly ready: Promise<void>;
  isOpen = false;
  private readonly socket: Socket;
  private closing = false;

  constructor(
    readonly spec: ClientSpec,
    hooks: ClientHooks,
    timeoutMs: number,
  ) {
    const query: Record<string, string> = { user: spec.user };
    if (spec.group) query.room = spec.group;
    // WebSocket transport only (no long-polling upgrade dance): the fair comparison with a WebSocket
    // server, and how Socket.IO is run when performance matters.
    this.socket = io(spec.url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      timeout: timeoutMs,
      query,
      localAddress: spec.localAddress,
    } as Parameters<typeof io>[1]);
    this.ready = new Promise((resolve, reject) => {
      // socket.io's own `timeout` covers the transport; this covers the namespace handshake too.
      const timer = setTimeout(() => {
        reject(new Error(`not ready within ${timeoutMs} ms`));
        this.socket.close();
      }, timeoutMs);
      this.socket.once('connect', () => {
        clearTimeout(timer);
        this.isOpen = true;
        resolve();
      });
      this.socket.once('connect_error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
        this.socket.close();
      });
    });
    this.socket.on('m', (data: { s: number; t: number }) => hooks.onDelivery(this, data.s, data.t));
    this.socket.on('disconnect', (reason: string) => {
      if (this.isOpen && !this.closing) hooks.onDrop(this, `disconnect ${reason}`);
      this.isOpen = false;
    });
  }

  publish(room: string, s: number, t: number): void {
    this.socket.emit('pub', { room, data: { s, t: Math.round(t) } });
  }

  sendTo(user: string, s: number, t: number): void {
    this.socket.emit('to', { to: user, data: { s, t: Math.round(t) } });
  }

  close(): void {
    this.closing = true;
    this.isOpen = false;
    this.socket.close();
  }
}
