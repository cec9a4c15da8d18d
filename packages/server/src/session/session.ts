import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { CloseCode, type ErrorCode, type FrameId, type ServerFrame, type StreamPosition, type SubscriptionState } from '@switchboard/protocol';
import type { Identity } from '../auth/token-verifier.js';
import type { HubMember } from '../hub.js';
import { messageFrame, type Publication } from '../publication.js';
import type { Duplex } from 'node:stream';
import { corkUntilNextTick, flushAfterThisLoop } from './cork.js';
import type { NodeContext } from '../node-context.js';
import { handleFrame } from './dispatcher.js';
import { parseClientFrame } from './frame-parser.js';
import { FrameRateLimiter } from './rate-limiter.js';

/** A publication waiting while its channel recovers. */
interface Pending {
  offset: number;
  epoch: string;
  frame: Buffer;
}

/** This session's view of one channel: the last position delivered, and a buffer while recovering. */
interface ChannelState {
  epoch: string;
  offset: number;
  /** Live publications that arrived while history was being read; `null` once live. */
  pending: Pending[] | null;
}

/** Options of `ws.send` for a frame given as bytes: still a text frame. */
const TEXT = { binary: false } as const;
const NEWLINE = Buffer.from('\n');

/** How long a session closed for a slow consumer may keep its buffers before the socket is cut. */
const SLOW_CONSUMER_GRACE_MS = 5000;

/**
 * One authenticated WebSocket connection. It owns the socket's outbound path (limits, batching),
 * the per-channel positions that make delivery gap- and duplicate-free, and the inbound queue that
 * processes the client's frames one at a time, in order.
 */
export class Session implements HubMember {
  readonly id = `s-${randomBytes(9).toString('base64url')}`;
  readonly user: string;
  readonly since = Date.now();
  /** Set by the heartbeat sweep, cleared when the peer shows life. */
  alive = true;
  private readonly channels = new Map<string, ChannelState>();
  private readonly limiter: FrameRateLimiter;
  private inbox: Promise<void>;
  private markStarted!: () => void;
  private closed = false;
  private batch: Buffer[] | null = null;
  /** Frames written before `welcome` (e.g. presence events), sent right after it; `null` once welcomed. */
  private held: (string | Buffer)[] | null = [];
  private batchBytes = 0;
  private cleanup: Promise<void> | undefined;

  constructor(
    private readonly ws: WebSocket,
    readonly identity: Identity,
    private readonly ctx: NodeContext,
    private readonly batching: boolean,
  ) {
    this.user = identity.user;
    const o = ctx.options;
    this.limiter = new FrameRateLimiter(o.rateLimitPerSecond, o.rateLimitBurst, o.rateLimitMaxRejected);
    // Frames that arrive before `welcome` wait here until the session has started.
    this.inbox = new Promise((resolve) => (this.markStarted = resolve));
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => void this.dispose());
    ws.on('error', (err) => ctx.log.debug({ err, session: this.id }, 'socket error'));
  }

  /** Channels this session is subscribed to. */
  get channelNames(): string[] {
    return [...this.channels.keys()];
  }

  /** The last position delivered on `channel`, when subscribed. */
  position(channel: string): StreamPosition | undefined {
    const st = this.channels.get(channel);
    return st ? { epoch: st.epoch, offset: st.offset } : undefined;
  }

  /** True when the session is in `channel`. */
  has(channel: string): boolean {
    return this.channels.has(channel);
  }

  /** Subscribes the automatic channels (and resumable ones), sends `welcome`, then replays. */
  async start(auto: string[], resume: Record<string, StreamPosition>): Promise<void> {
    const subscriptions: Record<string, SubscriptionState> = {};
    const flushes: (() => void)[] = [];
    try {
      // All at once: with Redis, the reads of every channel share one round trip (pipelined).
      const attached = await Promise.all(auto.map((channel) => this.attach(channel, resume[channel])));
      auto.forEach((channel, i) => {
        const { state, flush } = attached[i]!;
        subscriptions[channel] = resume[channel] ? state : { epoch: state.epoch, offset: state.offset };
        flushes.push(flush);
      });
    } catch (err) {
      this.ctx.log.warn({ err, session: this.id }, 'session start failed');
      this.close(CloseCode.INTERNAL, 'engine unavailable');
      return;
    }
    // Presence is recorded before `welcome`, so that once a client has its welcome, everyone sees it.
    // Frames for this session meanwhile (its own `join`, say) are held until after the welcome.
    await Promise.all(auto.map((channel) => this.ctx.presenceJoin(this, channel)));
    if (this.closed) return;
    const held = this.held ?? [];
    this.held = null;
    this.sendFrame({
      type: 'welcome',
      session: this.id,
      user: this.user,
      node: this.ctx.nodeId,
      heartbeat: Math.round(this.ctx.options.heartbeatIntervalMs / 100) / 10,
      subscriptions,
    });
    for (const flush of flushes) flush();
    for (const frame of held) this.sendRaw(frame);
    this.markStarted();
  }

  /**
   * Joins `channel` and works out where delivery starts. Live publications are buffered from the
   * moment the hub has the session, so none falls between the history read and going live; `flush`
   * then writes the replay and the buffer, skipping what was already written.
   */
  async attach(channel: string, since?: StreamPosition): Promise<{ state: SubscriptionState; flush: () => void }> {
    const st: ChannelState = { epoch: '', offset: 0, pending: [] };
    this.channels.set(channel, st);
    try {
      await this.ctx.hub.add(channel, this);
      const { state, replay } = await this.ctx.recover(channel, since);
      st.epoch = state.epoch;
      st.offset = state.recovered ? since!.offset : state.offset;
      return {
        state,
        flush: () => {
          const pending = st.pending ?? [];
          st.pending = null;
          for (const pub of replay) this.write(st, pub.offset, pub.epoch, Buffer.from(messageFrame(pub)));
          for (const p of pending) this.write(st, p.offset, p.epoch, p.frame);
        },
      };
    } catch (err) {
      this.detach(channel);
      throw err;
    }
  }

  /** Leaves `channel`. */
  detach(channel: string): boolean {
    if (!this.channels.delete(channel)) return false;
    this.ctx.hub.remove(channel, this);
    return true;
  }

  deliver(channel: string, offset: number, epoch: string, frame: Buffer): void {
    const st = this.channels.get(channel);
    if (!st) return;
    if (st.pending) {
      st.pending.push({ offset, epoch, frame });
      if (st.pending.length > this.ctx.options.maxRecoveryMessages * 2) this.slowConsumer();
      return;
    }
    if (epoch === st.epoch && offset > st.offset + 1 && st.offset > 0) {
      // A publication never reached this node (the broker delivers at most once): fill the gap from
      // history before going on, so the client still sees every offset once, in order.
      this.repair(channel, st, { offset, epoch, frame });
      return;
    }
    this.write(st, offset, epoch, frame);
  }

  /** Buffers live delivery on `channel` while the missing offsets are read from history. */
  private repair(channel: string, st: ChannelState, first: Pending): void {
    st.pending = [first];
    this.ctx.metrics.gaps.inc();
    const since = { epoch: st.epoch, offset: st.offset };
    const finish = (replay: Publication[]) => {
      if (this.closed || this.channels.get(channel) !== st) return;
      const pending = st.pending ?? [];
      st.pending = null;
      for (const pub of replay) this.write(st, pub.offset, pub.epoch, Buffer.from(messageFrame(pub)));
      for (const p of pending) this.write(st, p.offset, p.epoch, p.frame);
    };
    this.ctx.recover(channel, since).then(
      ({ replay }) => finish(replay),
      () => finish([]),
    );
  }

  private write(st: ChannelState, offset: number, epoch: string, frame: Buffer): void {
    if (epoch === st.epoch && offset <= st.offset) return; // already delivered (replay and live overlap)
    st.epoch = epoch;
    st.offset = offset;
    this.sendRaw(frame);
    this.ctx.metrics.delivered++;
  }

  /** Writes a server frame. */
  sendFrame(frame: ServerFrame): void {
    this.sendRaw(JSON.stringify(frame));
  }

  /** Writes an already serialised frame, enforcing the outbound buffer limit. */
  sendRaw(frame: string | Buffer): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    if (this.held) {
      this.held.push(frame);
      if (this.held.length > this.ctx.options.maxRecoveryMessages) this.slowConsumer();
      return;
    }
    if (this.ws.bufferedAmount + this.batchBytes + frame.length > this.ctx.options.maxOutboundBytes) {
      this.slowConsumer();
      return;
    }
    if (!this.batching) {
      corkUntilNextTick(this.socket);
      this.ws.send(frame, TEXT);
      return;
    }
    if (this.batch === null) {
      this.batch = [];
      flushAfterThisLoop(this);
    }
    const bytes = typeof frame === 'string' ? Buffer.from(frame) : frame;
    this.batch.push(bytes);
    this.batchBytes += bytes.length + 1;
  }

  /** @internal Writes the frames batched this loop as one `\n`-joined frame (`?batch=1`). */
  flushBatch(): void {
    const batch = this.batch;
    this.batch = null;
    this.batchBytes = 0;
    if (!batch || batch.length === 0 || this.closed || this.ws.readyState !== this.ws.OPEN) return;
    const parts: Buffer[] = [];
    for (const b of batch) parts.push(b, NEWLINE);
    parts.pop();
    this.ws.send(parts.length === 1 ? parts[0]! : Buffer.concat(parts), TEXT);
  }

  /** The TCP socket under the WebSocket (ws keeps it as `_socket`), for corking. */
  private get socket(): Duplex | undefined {
    return (this.ws as unknown as { _socket?: Duplex })._socket;
  }

  /** Answers a frame: a `reply` when it had an id, else an `error` frame for failures only. */
  reply(id: FrameId | undefined, result: { ok: true; [k: string]: unknown } | { ok: false; code: ErrorCode; message: string }): void {
    if (!result.ok) this.ctx.metrics.errors.inc({ code: result.code });
    if (id === undefined) {
      if (!result.ok) this.sendFrame({ type: 'error', error: { code: result.code, message: result.message } });
      return;
    }
    if (result.ok) this.sendFrame({ type: 'reply', id, ...result, ok: true });
    else this.sendFrame({ type: 'reply', id, ok: false, error: { code: result.code, message: result.message } });
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.alive = true;
    if (this.closed) return;
    const verdict = this.limiter.check();
    if (verdict === 'close') {
      this.close(CloseCode.RATE_LIMITED, 'rate limit exceeded');
      return;
    }
    this.ctx.metrics.framesIn.inc({ type: isBinary ? 'binary' : 'text' });
    const text = isBinary ? undefined : data.toString('utf8');
    if (text === 'ping') {
      if (verdict === 'ok') this.sendRaw('pong');
      return;
    }
    if (verdict === 'rejected') {
      const parsed = text === undefined ? undefined : parseClientFrame(text);
      const id = parsed ? (parsed.ok ? parsed.frame.id : parsed.id) : undefined;
      this.reply(id, { ok: false, code: 'rate_limited', message: `over ${this.ctx.options.rateLimitPerSecond} frames/s; frame dropped` });
      return;
    }
    if (text === undefined) {
      this.reply(undefined, { ok: false, code: 'bad_frame', message: 'binary frames are not supported; send JSON text' });
      return;
    }
    const parsed = parseClientFrame(text);
    if (!parsed.ok) {
      this.reply(parsed.id, { ok: false, code: 'bad_frame', message: parsed.message });
      return;
    }
    // One frame at a time, in arrival order: replies and publications keep the client's order.
    this.inbox = this.inbox.then(async () => {
      if (this.closed) return;
      await handleFrame(this, parsed.frame, this.ctx);
    });
  }

  private slowConsumer(): void {
    if (this.closed) return;
    this.close(CloseCode.SLOW_CONSUMER, 'slow consumer');
    const timer = setTimeout(() => this.ws.terminate(), SLOW_CONSUMER_GRACE_MS);
    timer.unref();
  }

  /** Closes the socket with `code`; the session's state is released when the socket closes. */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.batch = null;
    this.ctx.metrics.closes.inc({ code: String(code) });
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason);
    void this.dispose();
  }

  /** Sends a WebSocket ping control frame (server heartbeat). */
  ping(): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }

  /** Drops the socket without a close frame (dead peer). */
  terminate(): void {
    this.closed = true;
    this.ctx.metrics.closes.inc({ code: 'terminated' });
    this.ws.terminate();
    void this.dispose();
  }

  /** Leaves every channel and presence. Runs once, whatever closed the session. */
  dispose(): Promise<void> {
    this.cleanup ??= (async () => {
      this.closed = true;
      const channels = [...this.channels.keys()];
      for (const channel of channels) this.detach(channel);
      await this.ctx.sessionGone(this, channels);
    })();
    return this.cleanup;
  }
}
