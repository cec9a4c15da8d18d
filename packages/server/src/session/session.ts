import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import {
  CloseCode,
  userChannel,
  type FrameId,
  type PublishFrame,
  type SendFrame,
  type ServerFrame,
  type StreamPosition,
  type SubscriptionState,
} from '@switchboard/protocol';
import type { Identity } from '../auth/token-verifier.js';
import type { BrokerMessage } from '../broker/broker.js';
import { ERRORS } from '../errors.js';
import type { HubMember } from '../hub.js';
import { uniqueIds } from '../ids.js';
import type { NodeContext } from '../node-context.js';
import type { Publication } from '../publication.js';
import { ChannelStream, type StreamSink } from './channel-stream.js';
import { corkUntilNextTick, flushAfterThisLoop } from './cork.js';
import { answerPublication, handleFrame, type FrameTarget, type ReplyResult } from './dispatcher.js';
import { parseClientFrame } from './frame-parser.js';
import { FrameRateLimiter } from './rate-limiter.js';

/** Options of `ws.send` for a frame given as bytes: still a text frame. */
const TEXT = { binary: false } as const;
const NEWLINE = Buffer.from('\n');

/** How long a session closed for a slow consumer may keep its buffers before the socket is cut. */
const SLOW_CONSUMER_GRACE_MS = 5000;

/** Session ids: unique cluster-wide, no random bytes drawn per connection. */
const nextSessionId = uniqueIds('s-');
/** How often a paged replay looks whether the socket has room for the next page. */
const PAGE_WAIT_MS = 10;

/**
 * Publications one session may have in flight: taken by the store, not yet answered. The next
 * frame is read meanwhile, so one socket is not held to one publication per store round trip.
 */
export const PUBLICATIONS_IN_FLIGHT = 64;

/** Settled from the start: what a session waits on before anything is in flight. */
const SETTLED: Promise<void> = Promise.resolve();
const NOOP = (): void => undefined;

/**
 * The session of each socket, for the socket listeners: one function per event for every socket
 * instead of four closures per session (an idle connection is mostly such per-socket state).
 */
const sessionOf = new WeakMap<WebSocket, Session>();

/** A client frame that arrived before the session existed (while its token was verified). */
export type HeldFrame = readonly [data: Buffer, isBinary: boolean];

/**
 * One authenticated WebSocket connection. It owns the socket's inbound path (rate limit, parse,
 * frames taken in arrival order, publications pipelined) and outbound path (frames held until `welcome`, batching,
 * corking, the outbound buffer limit); each channel's exactly-once delivery is a {@link ChannelStream}.
 */
export class Session implements HubMember, FrameTarget, StreamSink {
  readonly id = nextSessionId();
  readonly user: string;
  readonly since = Date.now();
  /** The user's own channel (its inbox when the inbox is on). */
  readonly ownChannel: string;
  /** Set by the heartbeat sweep, cleared when the peer shows life. */
  alive = true;
  private readonly streams = new Map<string, ChannelStream>();
  /** Made at the first frame: an idle connection never needs one (a new limiter is a full one). */
  private limiter: FrameRateLimiter | undefined;
  private inbox: Promise<void>;
  /** Settles once the reply of the last publication taken is written (replies go out in frame order). */
  private answered: Promise<void> = SETTLED;
  /** Publications taken and not yet answered (at most {@link PUBLICATIONS_IN_FLIGHT}). */
  private unanswered = 0;
  /** Wakes the frame queue when the window was full and an answer made room. */
  private room: (() => void) | undefined;
  private markStarted!: () => void;
  private closed = false;
  private batch: Buffer[] | null = null;
  /** Frames written before `welcome` (e.g. presence events), sent right after it; `null` once welcomed. */
  private held: (string | Buffer)[] | null = [];
  private batchBytes = 0;
  private cleanup: Promise<void> | undefined;

  /** `early` are the client's frames that arrived before the session existed, in order. */
  constructor(
    private readonly ws: WebSocket,
    readonly identity: Identity,
    private readonly ctx: NodeContext,
    private readonly batching: boolean,
    early: readonly HeldFrame[] = [],
  ) {
    this.user = identity.user;
    this.ownChannel = userChannel(identity.user);
    // Frames that arrive before `welcome` wait here until the session has started.
    const starting = new Promise<void>((resolve) => {
      this.markStarted = () => {
        resolve();
        // No frame waits on it: an idle session keeps the shared settled promise, not its own.
        if (this.inbox === starting) this.inbox = SETTLED;
      };
    });
    this.inbox = starting;
    sessionOf.set(ws, this);
    ws.on('message', Session.onSocketMessage);
    ws.on('pong', Session.onSocketPong);
    ws.on('close', Session.onSocketClose);
    ws.on('error', Session.onSocketError);
    for (const [data, isBinary] of early) this.onMessage(data, isBinary);
  }

  private static onSocketMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
    sessionOf.get(this)?.onMessage(data as Buffer, isBinary);
  }

  private static onSocketPong(this: WebSocket): void {
    const session = sessionOf.get(this);
    if (session) session.alive = true;
  }

  private static onSocketClose(this: WebSocket): void {
    void sessionOf.get(this)?.dispose();
  }

  private static onSocketError(this: WebSocket, err: Error): void {
    const session = sessionOf.get(this);
    session?.ctx.log.debug({ err, session: session.id }, 'socket error');
  }

  /** Channels this session is subscribed to. */
  get channelNames(): string[] {
    return [...this.streams.keys()];
  }

  get channelCount(): number {
    return this.streams.size;
  }

  /** The last position delivered on `channel`, when subscribed. */
  position(channel: string): StreamPosition | undefined {
    return this.streams.get(channel)?.position;
  }

  /** True when the session is in `channel`. */
  has(channel: string): boolean {
    return this.streams.has(channel);
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
        subscriptions[channel] = state;
        flushes.push(flush);
      });
    } catch (err) {
      this.ctx.log.warn({ err, session: this.id }, 'session start failed');
      this.close(CloseCode.INTERNAL, 'engine unavailable');
      return;
    }
    // Presence is recorded before `welcome`, so that once a client has its welcome, everyone sees it.
    // Frames for this session meanwhile (its own `join`, say) are held until after the welcome.
    await Promise.all(auto.map((channel) => this.ctx.presence.join(this, channel)));
    if (this.closed) return;
    const held = this.held ?? [];
    this.held = null;
    this.sendFrame({
      type: 'welcome',
      session: this.id,
      user: this.user,
      node: this.ctx.nodeId,
      heartbeat: Math.round(this.ctx.sessionOptions.heartbeatIntervalMs / 100) / 10,
      subscriptions,
    });
    for (const flush of flushes) flush();
    for (const frame of held) this.sendRaw(frame);
    this.markStarted();
    // The resolver is spent: let it go with what it holds.
    this.markStarted = NOOP;
  }

  /**
   * Joins `channel` and works out where delivery starts. Live publications are buffered from the
   * moment the hub has the session, so none falls between the history read and going live; `flush`
   * then writes the replay and the buffer, skipping what was already written.
   */
  async attach(channel: string, since?: StreamPosition): Promise<{ state: SubscriptionState; flush: () => void }> {
    const stream = new ChannelStream(channel, this, this.ctx.sessionOptions.maxRecoveryMessages * 2);
    this.streams.set(channel, stream);
    try {
      await this.ctx.hub.add(channel, this);
      const inbox = this.ctx.inbox;
      if (inbox && channel === this.ownChannel) {
        if (!since) {
          // A new device (or a cleared browser): everything the user has not acked, then live.
          const start = await inbox.start(channel);
          stream.begin({ epoch: start.position.epoch, offset: start.acked });
          return { state: { ...start.position, acked: start.acked }, flush: () => stream.drain(start.replay, start.more) };
        }
        // Both reads at once: one round trip with Redis (pipelined), two in parallel with PostgreSQL.
        const [{ state, replay, more }, held] = await Promise.all([this.ctx.channels.recover(channel, since), inbox.acked(channel)]);
        stream.begin(state.recovered ? since : state);
        const acked = held && held.epoch === state.epoch ? Math.min(held.offset, state.offset) : 0;
        return { state: { ...state, acked }, flush: () => stream.drain(replay, more) };
      }
      const { state, replay, more } = await this.ctx.channels.recover(channel, since);
      stream.begin(state.recovered ? since! : state);
      return { state, flush: () => stream.drain(replay, more) };
    } catch (err) {
      this.detach(channel);
      throw err;
    }
  }

  /** Leaves `channel`. */
  detach(channel: string): boolean {
    const stream = this.streams.get(channel);
    if (!stream) return false;
    stream.stop();
    this.streams.delete(channel);
    this.ctx.hub.remove(channel, this);
    return true;
  }

  /** @internal StreamSink: a message frame of one of the session's channels. */
  writeMessage(frame: Buffer): void {
    this.sendRaw(frame);
    this.ctx.metrics.delivered++;
  }

  /** @internal StreamSink: what the session missed on `channel` (gap repair). */
  async repair(channel: string, since: StreamPosition): Promise<Publication[]> {
    try {
      return (await this.ctx.channels.recover(channel, since)).replay;
    } catch (err) {
      this.ctx.log.warn({ err, session: this.id, channel }, 'gap repair failed: history unreachable, going on');
      throw err;
    }
  }

  /** @internal StreamSink: a quarter of the outbound limit is unsent (a replay waits). */
  congested(): boolean {
    return this.ws.bufferedAmount + this.batchBytes > this.ctx.sessionOptions.maxOutboundBytes / 4;
  }

  /** @internal StreamSink */
  async roomy(): Promise<void> {
    while (!this.closed && this.congested()) await new Promise((r) => setTimeout(r, PAGE_WAIT_MS));
  }

  /** @internal StreamSink: the next page of a replay (a recovery or the inbox catch-up). */
  async nextPage(channel: string, since: StreamPosition): Promise<{ publications: Publication[]; more: boolean }> {
    try {
      return await this.ctx.channels.page(channel, since);
    } catch (err) {
      this.ctx.log.warn({ err, session: this.id, channel }, 'replay failed: history unreachable, going live');
      throw err;
    }
  }

  /** @internal StreamSink */
  overflow(): void {
    this.slowConsumer();
  }

  /** @internal StreamSink */
  gap(): void {
    this.ctx.metrics.gaps.inc();
  }

  /** The latest position of `channel` in history (from the hub, after the broker's link came back). */
  catchUp(channel: string, latest: StreamPosition): void {
    this.streams.get(channel)?.catchUp(latest);
  }

  /** A live publication for `channel` (from the hub). */
  deliver(channel: string, message: Extract<BrokerMessage, { kind: 'message' }>): void {
    this.streams.get(channel)?.live(message.epoch, message.offset, message.frame);
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
      if (this.held.length > this.ctx.sessionOptions.maxRecoveryMessages) this.slowConsumer();
      return;
    }
    if (this.ws.bufferedAmount + this.batchBytes + frame.length > this.ctx.sessionOptions.maxOutboundBytes) {
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
  reply(id: FrameId | undefined, result: ReplyResult): void {
    if (!result.ok) this.ctx.metrics.errors.inc({ code: result.code });
    if (id === undefined) {
      if (!result.ok) this.sendFrame({ type: 'error', error: { code: result.code, message: result.message } });
      return;
    }
    if (result.ok) this.sendFrame({ type: 'reply', id, ...result, ok: true });
    else this.sendFrame({ type: 'reply', id, ok: false, error: { code: result.code, message: result.message } });
  }

  /** One client frame: counted once (by frame type), rate limited, parsed, queued in arrival order. */
  private onMessage(data: Buffer, isBinary: boolean): void {
    this.alive = true;
    if (this.closed) return;
    const o = this.ctx.sessionOptions;
    const verdict = (this.limiter ??= new FrameRateLimiter(o.rateLimitPerSecond, o.rateLimitBurst, o.rateLimitMaxRejected)).check();
    if (verdict === 'close') {
      this.close(CloseCode.RATE_LIMITED, 'rate limit exceeded');
      return;
    }
    const metrics = this.ctx.metrics;
    const text = isBinary ? undefined : data.toString('utf8');
    if (text === 'ping') {
      metrics.countFrame('ping');
      if (verdict === 'ok') this.sendRaw('pong');
      return;
    }
    if (text === undefined) {
      metrics.countFrame('binary');
      const limited = verdict === 'rejected';
      this.reply(
        undefined,
        limited
          ? this.rateLimited()
          : { ok: false, code: ERRORS.ERR_BAD_FRAME.code, message: 'binary frames are not supported; send JSON text' },
      );
      return;
    }
    const parsed = parseClientFrame(text);
    metrics.countFrame(parsed.ok ? parsed.frame.type : 'invalid');
    if (verdict === 'rejected') {
      this.reply(parsed.ok ? parsed.frame.id : parsed.id, this.rateLimited());
      return;
    }
    if (!parsed.ok) {
      this.reply(parsed.id, { ok: false, code: ERRORS.ERR_BAD_FRAME.code, message: parsed.message });
      return;
    }
    // Frames are taken in arrival order, and replies keep it. A publication is handed to the store
    // and the next frame taken without waiting for the answer; any other frame waits for the
    // publications before it to be answered, then is carried out alone.
    const frame = parsed.frame;
    if (frame.type === 'send' || frame.type === 'publish') {
      this.inbox = this.inbox.then(() => this.pipeline(frame));
      return;
    }
    this.inbox = this.inbox.then(async () => {
      if (this.closed) return;
      await this.answered;
      await handleFrame(this, frame, this.ctx);
    });
  }

  /**
   * Takes one publication: the store has it when `answerPublication` returns, so offsets follow the
   * frames' order; its reply is written after the replies of earlier publications. Waits only
   * when {@link PUBLICATIONS_IN_FLIGHT} are unanswered.
   */
  private async pipeline(frame: SendFrame | PublishFrame): Promise<void> {
    if (this.closed) return;
    const answer = answerPublication(this, frame, this.ctx);
    this.unanswered++;
    this.answered = this.answered
      .then(() => answer)
      .then((result) => {
        // Never rejects: the next reply and every later frame wait on this chain.
        try {
          this.reply(frame.id, result);
        } catch (err) {
          this.ctx.log.error({ err, session: this.id }, 'reply failed');
        }
        this.unanswered--;
        const room = this.room;
        this.room = undefined;
        room?.();
      });
    if (this.unanswered >= PUBLICATIONS_IN_FLIGHT) await new Promise<void>((resolve) => (this.room = resolve));
  }

  private rateLimited(): ReplyResult {
    return {
      ok: false,
      code: ERRORS.ERR_RATE_LIMITED.code,
      message: `over ${this.ctx.sessionOptions.rateLimitPerSecond} frames/s; frame dropped`,
    };
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
      const channels = [...this.streams.keys()];
      for (const channel of channels) this.detach(channel);
      await this.ctx.sessionGone(this, channels);
    })();
    return this.cleanup;
  }
}
